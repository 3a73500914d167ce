package intake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/workflows"
)

// The typed search attributes an identity workflow starts with, so the UI
// finds a person's runs at once.
var (
	employeeIDKey = temporal.NewSearchAttributeKeyKeyword(contract.SAEmployeeID)
	stateKey      = temporal.NewSearchAttributeKeyKeyword(contract.SAState)
	eventKey      = temporal.NewSearchAttributeKeyKeyword(contract.SAEvent)
)

// Submit delivers a validated event to the person's identity workflow. A
// person without one gets it started with the event as its input (fewer
// history events than an update); otherwise the event goes by update, which
// returns once the workflow has recorded (or recognized as a duplicate) the
// event. Safe to repeat: the workflow dedupes by event ID.
//
// A *RejectedError means the workflow's update validator (or handler)
// refused the event, and a *ConflictError that the event ID was received
// before with different content: resending will not help. Any other error —
// Temporal unreachable, or refusing the request itself (a search attribute
// not registered, an unknown namespace, no permission) — means the event
// was not delivered: retry later.
func Submit(ctx context.Context, c client.Client, ev hr.Event) (workflows.EventAccepted, error) {
	id := ev.EmployeeID()
	if err := workflows.ValidateEvent(id, ev); err != nil {
		return workflows.EventAccepted{}, &RejectedError{Msg: err.Error()}
	}
	in, res := workflows.FirstEvent(ev)
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        contract.IdentityWorkflowID(id),
		TaskQueue: contract.TaskQueue,
		// Started means recorded; a running identity answers "already
		// started" and gets the event by update.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// A worker in this process (worker --dev, serve beside a worker)
		// takes the first workflow task inline, skipping matching.
		EnableEagerStart: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(employeeIDKey.ValueSet(id),
			stateKey.ValueSet(contract.StateRunning), eventKey.ValueSet(workflows.FirstEventKind(ev))),
	}, contract.IdentityWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return res, nil
	case !errors.As(err, &started):
		return res, fmt.Errorf("intake: start %s with event %s: %w", contract.IdentityWorkflowID(id), ev.EventID, err)
	}
	// update-with-start still: the identity may end (an operator
	// terminates it) between the refused start and the update.
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.IdentityWorkflowID(id),
		TaskQueue:                contract.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(employeeIDKey.ValueSet(id), stateKey.ValueSet(contract.StateIdle)),
	}, contract.IdentityWorkflowName, workflows.IdentityInput{EmployeeID: id, Version: workflows.IdentityVersion})
	res = workflows.EventAccepted{}
	handle, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   contract.UpdateHREvent,
			Args:         []any{workflows.HREventRequest{Event: ev}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = handle.Get(ctx, &res)
	}
	if err != nil {
		// Only the update's own outcome — the workflow's validator or
		// handler returned an error, which reaches the client as an
		// ApplicationError — refuses the event. A service error (even
		// InvalidArgument, e.g. a search attribute the namespace lacks) is
		// Temporal refusing the request: not the event's fault.
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return res, &RejectedError{Msg: app.Error()}
		}
		return res, fmt.Errorf("intake: deliver event %s to %s: %w", ev.EventID, contract.IdentityWorkflowID(id), err)
	}
	if res.WorkflowID == "" {
		res.WorkflowID = contract.IdentityWorkflowID(id)
	}
	if res.Conflict {
		return res, &ConflictError{EventID: ev.EventID, WorkflowID: res.WorkflowID}
	}
	return res, nil
}

// Known reports whether jml has an identity workflow for employee id (one
// that is running, or closed but not yet past the namespace's retention).
func Known(ctx context.Context, c client.Client, id string) (bool, error) {
	_, err := c.DescribeWorkflowExecution(ctx, contract.IdentityWorkflowID(id), "")
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf):
		return false, nil
	}
	return false, fmt.Errorf("intake: look up %s: %w", contract.IdentityWorkflowID(id), err)
}

// Holder is the employee ID of the identity that already holds id with
// other letter case (AB12345 for ab12345), "" when none: the identity
// workflow IDs of the lower- and upper-case spellings are looked up.
func Holder(ctx context.Context, c client.Client, id string) (string, error) {
	for _, v := range []string{strings.ToLower(id), strings.ToUpper(id)} {
		if v == id {
			continue
		}
		switch ok, err := Known(ctx, c, v); {
		case err != nil:
			return "", err
		case ok:
			return v, nil
		}
	}
	return "", nil
}

// UnknownPersonError is a change or termination for an employee ID jml has
// no identity for: there is no account to change, so nothing is started.
type UnknownPersonError struct {
	EmployeeID, Type string
}

func (e *UnknownPersonError) Error() string {
	return fmt.Sprintf("employee_id %s: jml has no identity for this person, so a %s has nothing to act on: send a hire first (nothing was started)", e.EmployeeID, e.Type)
}

// CaseConflictError is a new person whose employee ID differs only by
// letter case from an existing identity's: jml refuses it rather than
// guess whether the two are one person (docs/intake.md).
type CaseConflictError struct {
	EmployeeID, Existing string
}

func (e *CaseConflictError) Error() string {
	return fmt.Sprintf("employee_id %s differs only by case from existing employee %s (%s): employee IDs are compared exactly, and two that differ only by case are refused as a new person; send the existing ID, or give the new person an ID that differs by more than case (nothing was started)",
		e.EmployeeID, e.Existing, contract.IdentityWorkflowID(e.Existing))
}

// RejectedError is an event the identity workflow refused (its update
// validator or handler returned an error): resending it will not help.
type RejectedError struct{ Msg string }

func (e *RejectedError) Error() string { return "event rejected by the workflow: " + e.Msg }

// ConflictError is an event whose ID the identity workflow received before
// with different content. WorkflowID is the run that holds the first one.
// The HR system must send the change under a new event ID.
type ConflictError struct {
	EventID    string
	WorkflowID string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("event %s was received before with different content (held by workflow %s): send the change with a new event ID", e.EventID, e.WorkflowID)
}
