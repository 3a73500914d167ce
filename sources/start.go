package sources

import (
	"context"
	"fmt"
	"maps"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// Register registers the SourcePoll activity on w (the SourcePoller
// workflow is registered with the others by workflows.Register).
func Register(w worker.ActivityRegistry, p *Poller) {
	w.RegisterActivityWithOptions(p.Poll, activity.RegisterOptions{Name: contract.SourcePollActivityName})
}

var (
	stateKey = temporal.NewSearchAttributeKeyKeyword(contract.SAState)
	eventKey = temporal.NewSearchAttributeKeyKeyword(contract.SAEvent)
)

// EnsurePollers starts the poller of every source of the policy that is
// not running yet; a running one keeps its state (it reads the policy
// afresh at every poll). A poller whose source left the policy ends at
// its next poll.
func EnsurePollers(ctx context.Context, c client.Client, p *policy.Policy) error {
	for _, name := range slices.Sorted(maps.Keys(p.Sources)) {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       contract.SourceWorkflowID(name),
			TaskQueue:                contract.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			TypedSearchAttributes:    temporal.NewSearchAttributes(stateKey.ValueSet(contract.StateIdle), eventKey.ValueSet(workflows.SourceEventKind)),
			StaticSummary:            "poller of source " + name,
		}, contract.SourcePollerWorkflowName, workflows.SourcePollerInput{Source: name})
		if err != nil {
			return fmt.Errorf("start poller of source %s: %w", name, err)
		}
	}
	return nil
}
