package intake

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/workflows"
)

// employeeIDKey is the typed search attribute set when the identity
// workflow starts, so the UI can find a person's runs.
var employeeIDKey = temporal.NewSearchAttributeKeyKeyword(workflows.SAEmployeeID)

// Submit delivers a validated event to the person's identity workflow with
// update-with-start: the workflow is started if it is not running, and the
// update returns once the workflow has recorded (or recognized as a
// duplicate) the event. Safe to repeat: the workflow dedupes by event ID.
//
// A *RejectedError means the workflow refused the event (do not retry);
// any other error means it was not delivered (retry later).
func Submit(ctx context.Context, c client.Client, ev hr.Event) (workflows.EventAccepted, error) {
	id := ev.EmployeeID()
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.IdentityWorkflowID(id),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(employeeIDKey.ValueSet(id)),
	}, workflows.IdentityWorkflowName, workflows.IdentityInput{EmployeeID: id})
	handle, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   workflows.UpdateHREvent,
			Args:         []any{workflows.HREventRequest{Event: ev}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var res workflows.EventAccepted
	if err == nil {
		err = handle.Get(ctx, &res)
	}
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return res, &RejectedError{Msg: app.Error()}
		}
		var inv *serviceerror.InvalidArgument
		if errors.As(err, &inv) {
			return res, &RejectedError{Msg: inv.Error()}
		}
		return res, fmt.Errorf("intake: deliver event %s to %s: %w", ev.EventID, workflows.IdentityWorkflowID(id), err)
	}
	if res.WorkflowID == "" {
		res.WorkflowID = workflows.IdentityWorkflowID(id)
	}
	return res, nil
}

// RejectedError is an event the identity workflow refused (its update
// validator or handler returned an error): resending it will not help.
type RejectedError struct{ Msg string }

func (e *RejectedError) Error() string { return "event rejected by the workflow: " + e.Msg }
