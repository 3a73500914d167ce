package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/workflows"
)

// TestReplay replays histories recorded from a real end-to-end run
// (regenerate: JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// TestHireChangeTerminate50). A workflow change that would break running
// workflows fails here; guard such changes with workflow.GetVersion.
// Histories of older code stay beside the current ones, so every shape
// keeps replaying: *-before-links (before account links and the GetVersion
// guards), *-sessions (worker sessions, before the host-queues version),
// *-waiting-sessions (a joiner of the session shape waiting in
// NeedsAttention, and its identity: such runs resume on the session path),
// *-v2 (host queues, before the operator-UI shape 3; identity-continued-v2
// and identity-after-continue-v2 likewise), identity-update-start (an identity started by update-with-start, before
// the first event came as its input), identity-continued and
// identity-after-continue (a run that continued as new and its successor;
// regenerate: JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// TestIdentityContinuesAsNew), identity-link-waiting and
// joiner-link-waiting (a joiner that reports its new account to the
// identity at once, then waits in NeedsAttention until skipped; regenerate:
// JML_UPDATE_HISTORIES=1 go test ./workflows -run
// TestReconcileLeavesWaitingJoinersAccount).
func TestReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no saved histories under testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workflows.RegisterWorkflows(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
