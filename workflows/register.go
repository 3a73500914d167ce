package workflows

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
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
	w.RegisterWorkflowWithOptions(Identity, workflow.RegisterOptions{Name: contract.IdentityWorkflowName})
	for _, name := range []string{contract.JoinerWorkflowName, contract.MoverWorkflowName, contract.LeaverWorkflowName} {
		w.RegisterWorkflowWithOptions(Lifecycle, workflow.RegisterOptions{Name: name})
	}
	w.RegisterWorkflowWithOptions(Governor, workflow.RegisterOptions{Name: contract.GovernorWorkflowName})
	w.RegisterWorkflowWithOptions(AttributeSync, workflow.RegisterOptions{Name: contract.AttributeSyncWorkflowName})
	w.RegisterWorkflowWithOptions(PasswordSync, workflow.RegisterOptions{Name: contract.PasswordSyncWorkflowName})
	w.RegisterWorkflowWithOptions(AccessRequest, workflow.RegisterOptions{Name: contract.AccessRequestWorkflowName})
	w.RegisterWorkflowWithOptions(RequestCheck, workflow.RegisterOptions{Name: contract.RequestCheckWorkflowName})
	w.RegisterWorkflowWithOptions(Approval, workflow.RegisterOptions{Name: contract.ApprovalWorkflowName})
	w.RegisterWorkflowWithOptions(SourcePoller, workflow.RegisterOptions{Name: contract.SourcePollerWorkflowName})
}
