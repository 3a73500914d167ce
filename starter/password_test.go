package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// TestPasswordStatusCommand reads an accepted change with `starter
// password status`, against a real Temporal server and two SCIMMY peers.
func TestPasswordStatusCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	corp, wiki := scimtest.Start(t), scimtest.Start(t)
	conns := map[string]any{}
	ids := map[string]string{}
	for name, p := range map[string]*scimtest.Peer{"corp": corp, "wiki": wiki} {
		c, err := scim.New(ctx, scim.Config{BaseURL: p.BaseURL, Auth: scim.Auth{BearerToken: p.Token}})
		require.NoError(t, err)
		a, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "ada.baker"}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		conns[name], ids[name] = c, a.ID
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	t.Setenv("TEMPORAL_ADDRESS", ts.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ts.GetDefaultNamespace())
	pol := &policy.Policy{
		Targets: map[string]policy.Target{"corp": {Type: "scim", BaseURL: corp.BaseURL}, "wiki": {Type: "scim", BaseURL: wiki.BaseURL}},
		PasswordSyncGroups: []policy.PasswordSyncGroup{{Name: "corp", Auth: "corp", Members: []string{"wiki"},
			Rules: policy.PasswordRules{MinLength: 12, RequireUpper: true, RequireDigit: true}}},
	}
	vault := secret.NewVault(time.Hour)
	acts := activities.New(activities.Config{Policy: pol, Vault: vault, Targets: conns,
		Directory: activities.StaticDirectory{{EmployeeID: "E5001", Status: contract.StatusActive, Accounts: ids}}})
	host := contract.HostTaskQueue("cli-test")
	for _, q := range []string{contract.TaskQueue, host} {
		w := worker.New(ts.GetDefaultClient(), q, worker.Options{})
		workflows.Register(w, acts)
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}
	wf, err := workflows.StartPasswordSync(ctx, ts.GetDefaultClient(), vault, host,
		activities.PasswordSyncRequest{Group: "corp", EmployeeID: "E5001"}, secret.New("Correct-Horse-42"))
	require.NoError(t, err)
	require.NoError(t, wf.Get(ctx, nil))
	id := contract.PasswordChangeID(wf.GetID())

	var out, errb bytes.Buffer
	require.Equal(t, 0, run(ctx, []string{"password", "status", id}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "Password change "+id+" (employee E5001, group corp): Changed")
	assert.Regexp(t, `corp \(auth\)\s+`+ids["corp"]+`\s+changed`, out.String())
	assert.Regexp(t, `wiki\s+`+ids["wiki"]+`\s+changed`, out.String())

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"password", "status", wf.GetID(), "--json"}, &out, &errb), errb.String())
	var res workflows.PasswordSyncResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	assert.Equal(t, workflows.PasswordChanged, res.State)
	assert.Len(t, res.Targets, 2)

	for _, bad := range []string{"identity/E5001", "E5001/20200101T000000.000Z", "../E5001/20200101T000000.000Z"} {
		errb.Reset()
		assert.Equal(t, 2, run(ctx, []string{"password", "status", bad}, &out, &errb), bad)
		assert.Contains(t, errb.String(), "no such password change")
	}
}
