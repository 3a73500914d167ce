package activities

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"
)

// WipeClosedRuns wipes, every interval until ctx is done, the vault entries
// of runs that are no longer running: canceled, terminated, timed out or
// finished without their own wipe. The run's wipe activity is the fast
// path; this is the guarantee, since a terminated run executes nothing.
func (a *Activities) WipeClosedRuns(ctx context.Context, interval time.Duration) {
	if a.cfg.Client == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, owner := range a.cfg.Vault.Owners() {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			d, err := a.cfg.Client.DescribeWorkflowExecution(dctx, owner, "")
			cancel()
			if err != nil {
				continue // unknown now: try again next time; the TTL is the backstop
			}
			if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				a.cfg.Vault.DeleteOwner(owner)
				a.log.Info("vault entries of a closed run wiped", zap.String("workflow_id", owner))
			}
		}
	}
}
