package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
)

// An event ID is unique across people. A person's identity workflow
// remembers the IDs it received; across people the ID is claimed by a
// workflow ID, Temporal's own uniqueness: event-claim/<event_id>, carrying
// the employee ID as a search attribute, started on a queue no worker polls
// and timed out at once. It holds the ID for the namespace's retention.
const (
	ClaimWorkflowName = "jml.EventClaim"
	claimQueue        = "jml-event-claims" // never polled
	claimPrefix       = "event-claim/"
)

// EventHeldError is an event whose ID another person's events already
// used. WorkflowID is the identity workflow that holds it.
type EventHeldError struct {
	EventID, EmployeeID, Holder, WorkflowID string
}

func (e *EventHeldError) Error() string {
	return fmt.Sprintf("event %s was received before for employee %s (held by workflow %s), not %s: an event ID names one change of one person; send this change with a new event ID (nothing was started)",
		e.EventID, e.Holder, e.WorkflowID, e.EmployeeID)
}

// ClaimEvent claims ev's event ID for its person: nil when the ID is new
// or already this person's, an *EventHeldError when another person's.
func ClaimEvent(ctx context.Context, c client.Client, ev hr.Event) error {
	id := ev.EmployeeID()
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       claimPrefix + ev.EventID,
		TaskQueue:                                claimQueue,
		WorkflowExecutionTimeout:                 time.Second,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(employeeIDKey.ValueSet(id)),
	}, ClaimWorkflowName)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &started):
		return fmt.Errorf("intake: claim event %s: %w", ev.EventID, err)
	}
	d, err := c.DescribeWorkflowExecution(ctx, claimPrefix+ev.EventID, "")
	if err != nil {
		return fmt.Errorf("intake: read the claim of event %s: %w", ev.EventID, err)
	}
	var holder string
	if p := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[contract.SAEmployeeID]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &holder); err != nil {
			return fmt.Errorf("intake: read the claim of event %s: %w", ev.EventID, err)
		}
	}
	if holder == "" || holder == id {
		return nil
	}
	return &EventHeldError{EventID: ev.EventID, EmployeeID: id, Holder: holder, WorkflowID: contract.IdentityWorkflowID(holder)}
}
