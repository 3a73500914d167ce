package workflows

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
)

// Register registers every jml workflow and activity on w. The worker must
// be created with worker.Options{EnableSessionWorker: true}: steps that
// share a generated password run in one worker session.
func Register(w worker.Registry, a *activities.Activities) {
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
}

// RegisterWorkflows registers the workflows only (replayers).
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(Identity, workflow.RegisterOptions{Name: IdentityWorkflowName})
	for _, name := range []string{JoinerWorkflowName, MoverWorkflowName, LeaverWorkflowName} {
		w.RegisterWorkflowWithOptions(Lifecycle, workflow.RegisterOptions{Name: name})
	}
	w.RegisterWorkflowWithOptions(Governor, workflow.RegisterOptions{Name: GovernorWorkflowName})
	w.RegisterWorkflowWithOptions(AttributeSync, workflow.RegisterOptions{Name: AttributeSyncWorkflowName})
	w.RegisterWorkflowWithOptions(PasswordSync, workflow.RegisterOptions{Name: PasswordSyncWorkflowName})
	w.RegisterWorkflowWithOptions(SourcePoller, workflow.RegisterOptions{Name: SourcePollerWorkflowName})
}
