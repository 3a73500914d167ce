package activities

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/secret"
)

// WipeClosedRuns wipes, every interval until ctx is done, the vault entries
// of runs that are no longer running: canceled, terminated, timed out or
// finished without their own wipe. The run's wipe activity is the fast
// path; this is the guarantee, since a terminated run executes nothing.
// (A function, not a method: every method of Activities is an activity.)
func WipeClosedRuns(ctx context.Context, c client.Client, v *secret.Vault, log *zap.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, owner := range v.Owners() {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			d, err := c.DescribeWorkflowExecution(dctx, owner, "")
			cancel()
			if err != nil {
				continue // unknown now: try again next time; the TTL is the backstop
			}
			if d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				v.DeleteOwner(owner)
				log.Info("vault entries of a closed run wiped", zap.String("workflow_id", owner))
			}
		}
	}
}
