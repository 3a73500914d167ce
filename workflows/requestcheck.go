package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
)

// RequestCheck looks an access request's group up at its target before
// the request starts (intake.StartRequest waits for it): the grant's own
// lookup, on a worker, which holds the target's connector. A group that
// does not exist fails it GroupNotFound: nobody is asked to approve what
// cannot be granted.
func RequestCheck(ctx workflow.Context, in activities.AccessRequest) error {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: "check",
		Summary: "look up " + in.Group + " in " + in.Target, StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
	return workflow.ExecuteActivity(actx, a.CheckGrant, in).Get(ctx, nil)
}
