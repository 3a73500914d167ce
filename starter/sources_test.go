package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/sources"
	"github.com/jml-dev/jml/workflows"
)

// TestSourcesCommand drives `starter sources` against a real Temporal
// server and a poller of a CSV file: list, poll now, a Blocked poll and
// its discard.
func TestSourcesCommand(t *testing.T) {
	ctx := context.Background()
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	t.Setenv("TEMPORAL_ADDRESS", ts.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ts.GetDefaultNamespace())
	c := ts.GetDefaultClient()
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ts.GetDefaultNamespace(), SearchAttributes: temporalenv.SearchAttributes()})
	require.NoError(t, err)

	file := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(file, []byte("id,first_name\nE1,Ada\nE2,Bob\n"), 0o600))
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}",
		Every: "1h", Initial: policy.InitialBaseline}}}
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, activities.New(activities.Config{Policy: pol}))
	sources.Register(w, sources.New(sources.Config{Policy: pol, Client: c}))
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	require.NoError(t, sources.EnsurePollers(ctx, c, pol))

	var out, errb bytes.Buffer
	require.Eventually(t, func() bool {
		out.Reset()
		return run(ctx, []string{"sources"}, &out, &errb) == 0 && bytes.Contains(out.Bytes(), []byte("Idle"))
	}, time.Minute, 100*time.Millisecond, errb.String())
	assert.Regexp(t, `(?m)^hr\s+Idle\s+\d{4}-\d\d-\d\d [\d:]+\s+-\s+2\s+-\s+-$`, out.String())

	// One of two gone: more than 5 %, Blocked.
	require.NoError(t, os.WriteFile(file, []byte("id,first_name\nE1,Ada\n"), 0o600))
	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"sources", "poll", "hr", "--json"}, &out, &errb), errb.String())
	var got []workflows.SourceStatus
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Len(t, got, 1)
	require.NotNil(t, got[0].Blocked)
	assert.Equal(t, []string{"E2"}, got[0].Blocked.Terminated)

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"sources"}, &out, &errb))
	assert.Contains(t, out.String(), "hr is Blocked: the poll would terminate 1 of 2 people (50.0 % > 5.0 %), e.g. E2.")
	assert.Contains(t, out.String(), "starter sources discard hr --digest "+got[0].Blocked.Digest)

	errb.Reset()
	assert.Equal(t, 2, run(ctx, []string{"sources", "poll", "hr"}, &out, &errb))
	assert.Contains(t, errb.String(), "release or discard it first")
	errb.Reset()
	assert.Equal(t, 2, run(ctx, []string{"sources", "release", "hr", "--digest", "0000"}, &out, &errb))
	assert.Contains(t, errb.String(), "does not name the blocked poll")

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"sources", "discard", "hr", "--digest", got[0].Blocked.Digest}, &out, &errb), errb.String())
	assert.Regexp(t, `(?m)^hr\s+Idle`, out.String())
	assert.Equal(t, 2, run(ctx, []string{"sources", "frobnicate", "hr"}, &out, &errb))
	assert.Equal(t, 2, run(ctx, []string{"sources", "poll"}, &out, &errb))
}
