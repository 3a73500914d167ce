package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestSyncCommand runs `starter sync` against a real Temporal server, a
// worker and the SCIMMY peer.
func TestSyncCommand(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t, scimtest.WithUsers(3))
	conn, err := scim.New(ctx, scim.Config{BaseURL: peer.BaseURL, Auth: scim.Auth{BearerToken: peer.Token}})
	require.NoError(t, err)
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	t.Setenv("TEMPORAL_ADDRESS", ts.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ts.GetDefaultNamespace())

	dir := activities.StaticDirectory{{EmployeeID: "E1", Status: contract.StatusActive,
		Attributes: map[string]string{"username": "seed00001", "email": "new.address@example.com"}}}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "scim", BaseURL: peer.BaseURL}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_name": "{username}", "email": "{email}"}}}}},
		},
		Targets: map[string]any{"app": conn}, Directory: dir,
	})
	w := worker.New(ts.GetDefaultClient(), contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	var out, errb bytes.Buffer
	peer.Reset()
	require.Equal(t, 0, run(ctx, []string{"sync", "E1", "--json"}, &out, &errb), errb.String())
	var got syncOutput
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, 1, got.Result.IdentitiesChecked)
	assert.Equal(t, 1, got.Result.AttributesWritten)
	assert.Equal(t, map[string]int{"PATCH": 1}, peer.Writes())

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"sync", "E1"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "Already in sync: nothing written.")

	out.Reset()
	assert.Equal(t, 1, run(ctx, []string{"sync", "E404"}, &out, &errb))
	assert.Contains(t, out.String(), "unknown identity")

	for _, args := range [][]string{{"sync"}, {"sync", "a/b"}, {"sync", "E1", "--all"}, {"sync", "--bogus"}} {
		assert.Equal(t, 2, run(ctx, args, &out, &errb), args)
	}
	errb.Reset()
	assert.Equal(t, 1, run(ctx, []string{"sync", "--all"}, &out, &errb), "no schedule yet")
	assert.Contains(t, errb.String(), contract.AttributeSyncScheduleID)
}
