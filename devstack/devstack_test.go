package devstack

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func echo(_ workflow.Context, s string) (string, error) { return s, nil }

// runEcho runs one workflow end to end on st and returns how long it took.
func runEcho(t *testing.T, st *Stack, id string, within time.Duration) time.Duration {
	t.Helper()
	c, err := st.Dial(client.Options{Logger: nopLogger{}})
	require.NoError(t, err)
	defer c.Close()
	w := worker.New(c, "devstack-test", worker.Options{})
	w.RegisterWorkflow(echo)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "devstack-test"}, echo, id)
	require.NoError(t, err)
	var got string
	require.NoError(t, run.Get(ctx, &got))
	assert.Equal(t, id, got)
	return time.Since(start)
}

// TestRestartOnSameFileServesAtOnce: Start returns only when the whole
// server (not just the frontend) serves, also on a restart over an existing
// file, and the earlier workflow is still there.
func TestRestartOnSameFileServesAtOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := Start(ctx, Options{DataDir: dir, UIPort: -1})
	require.NoError(t, err)
	runEcho(t, st, "first", time.Minute)
	st.Stop()

	st, err = Start(ctx, Options{DataDir: dir, UIPort: -1})
	require.NoError(t, err)
	defer st.Stop()
	// A liveness bound, not a benchmark: with stale membership rows the
	// first workflow after a restart waited about a minute.
	took := runEcho(t, st, "second", 30*time.Second)
	t.Logf("first workflow after restart completed in %s", took)

	c, err := st.Dial(client.Options{Logger: nopLogger{}})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.DescribeWorkflowExecution(ctx, "first", "")
	assert.NoError(t, err, "the earlier workflow survived the restart")
}
