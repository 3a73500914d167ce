// Package intaketest runs a real Temporal test server (temporaltest) with
// jml's search attributes and stand-in identity and lifecycle workflows
// that honour the contract of package workflows: update-with-start of
// HREvent deduplicated by event ID (a resend with other content is a
// Conflict), the current and steps queries, and the
// RetryStep / SkipStep / Abort / Release updates of a run that needs an
// operator. Tests of the intake and the operator CLI use it until — and
// alongside — the real workflows.
package intaketest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/workflows"
)

// Attributes of a test event's employee that steer the stand-in lifecycle.
const (
	AttrFailStep  = "test_fail_step"  // this step fails for good → NeedsAttention
	AttrBlockStep = "test_block_step" // this step hits the safety limit → Blocked
	// AttrReject makes the identity workflow's update validator refuse the
	// event with this message.
	AttrReject = "test_reject"
)

// Steps are the stand-in lifecycle's steps, in order.
var Steps = []string{"okta.sync_identity", "okta.manage_relationships", "scim.sync_identity"}

// LifecycleWorkflowName is the stand-in joiner/mover/leaver.
const LifecycleWorkflowName = "TestLifecycle"

// Env is a running test server with a worker polling workflows.TaskQueue.
type Env struct {
	Server    *temporaltest.TestServer
	Client    client.Client
	Addr      string // frontend host:port
	Namespace string
}

// Options choose what the stand-in workflows do.
type Options struct {
	// Lifecycle makes the identity workflow run a child lifecycle workflow
	// per event (off: it only records events, which is faster).
	Lifecycle bool
	// NoWorker starts no worker (register your own, e.g. the real workflows).
	NoWorker bool
	// NoSearchAttributes leaves jml's search attributes unregistered, like
	// a fresh namespace of a self-hosted cluster or Temporal Cloud.
	NoSearchAttributes bool
}

// Start starts the server, registers jml's search attributes and, unless
// o.NoWorker, a worker with the stand-in workflows. Everything stops when
// the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	tt, ok := t.(*testing.T)
	var opts []temporaltest.TestServerOption
	if ok {
		opts = append(opts, temporaltest.WithT(tt))
	}
	ts := temporaltest.NewServer(opts...)
	if !ok {
		t.Cleanup(ts.Stop)
	}
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !o.NoSearchAttributes {
		sa := map[string]enumspb.IndexedValueType{}
		for _, name := range []string{contract.SAEmployeeID, contract.SAEvent, contract.SAState, contract.SAFailedStep} {
			sa[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
		if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			SearchAttributes: sa, Namespace: ts.GetDefaultNamespace(),
		}); err != nil {
			t.Fatalf("intaketest: add search attributes: %v", err)
		}
	}
	if !o.NoWorker {
		ts.NewWorker(contract.TaskQueue, func(r worker.Registry) { Register(r, o) })
	}
	return &Env{Server: ts, Client: c, Addr: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace()}
}

// Register registers the stand-in workflows on r.
func Register(r worker.Registry, o Options) {
	r.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.IdentityInput) error {
		return identity(ctx, in, o.Lifecycle)
	}, workflow.RegisterOptions{Name: contract.IdentityWorkflowName})
	r.RegisterWorkflowWithOptions(lifecycle, workflow.RegisterOptions{Name: LifecycleWorkflowName})
}

var (
	stateKey  = temporal.NewSearchAttributeKeyKeyword(contract.SAState)
	eventKey  = temporal.NewSearchAttributeKeyKeyword(contract.SAEvent)
	failedKey = temporal.NewSearchAttributeKeyKeyword(contract.SAFailedStep)
	empKey    = temporal.NewSearchAttributeKeyKeyword(contract.SAEmployeeID)
)

// Kind is the lifecycle kind of an event type.
func Kind(eventType string) string {
	switch eventType {
	case hr.Terminate:
		return "leaver"
	case hr.Change:
		return "mover"
	}
	return "joiner"
}

func identity(ctx workflow.Context, in workflows.IdentityInput, runChildren bool) error {
	handled := slices.Clone(in.Handled)
	pending := slices.Clone(in.Pending)
	// first remembers each event ID's content and run, so a resend with
	// other content is a conflict, not a duplicate.
	type seen struct{ digest, workflowID string }
	first := map[string]seen{}
	for id, r := range in.Receipts { // a first event comes in the input
		first[id] = seen{r.Digest, r.WorkflowID}
	}
	for _, ev := range pending {
		handled = append(handled, ev.EventID)
	}
	cur := workflows.CurrentRun{EmployeeID: in.EmployeeID}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateHREvent,
		func(ctx workflow.Context, req workflows.HREventRequest) (workflows.EventAccepted, error) {
			ev := req.Event
			id := contract.LifecycleWorkflowID(Kind(ev.Type), in.EmployeeID, ev.EventID)
			if f, ok := first[ev.EventID]; ok && f.digest != ev.Digest() {
				return workflows.EventAccepted{WorkflowID: f.workflowID, Conflict: true}, nil
			}
			if slices.Contains(handled, ev.EventID) {
				return workflows.EventAccepted{WorkflowID: id, Duplicate: true}, nil
			}
			handled = append(handled, ev.EventID)
			first[ev.EventID] = seen{ev.Digest(), id}
			pending = append(pending, ev)
			return workflows.EventAccepted{WorkflowID: id}, nil
		}, workflow.UpdateHandlerOptions{Validator: func(req workflows.HREventRequest) error {
			if req.Event.EmployeeID() != in.EmployeeID {
				return fmt.Errorf("event for %q sent to identity/%s", req.Event.EmployeeID(), in.EmployeeID)
			}
			if msg := req.Event.Employee[AttrReject]; msg != "" {
				return errors.New(msg)
			}
			return nil
		}}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryCurrent, func() (workflows.CurrentRun, error) {
		c := cur
		for _, ev := range pending {
			c.Pending = append(c.Pending, ev.EventID)
		}
		return c, nil
	}); err != nil {
		return err
	}
	for {
		if err := workflow.Await(ctx, func() bool { return len(pending) > 0 }); err != nil {
			return err
		}
		ev := pending[0]
		pending = pending[1:]
		if !runChildren {
			continue
		}
		kind := Kind(ev.Type)
		id := contract.LifecycleWorkflowID(kind, in.EmployeeID, ev.EventID)
		cur.WorkflowID, cur.Kind, cur.EventID, cur.LastRun = id, kind, ev.EventID, id
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: id,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				empKey.ValueSet(in.EmployeeID), eventKey.ValueSet(ev.Type), stateKey.ValueSet(contract.StateRunning)),
		})
		_ = workflow.ExecuteChildWorkflow(cctx, LifecycleWorkflowName, ev).Get(ctx, nil)
		cur.WorkflowID, cur.Kind, cur.EventID = "", "", ""
	}
}

// lifecycle runs Steps; a step named by AttrFailStep fails and waits for
// RetryStep / SkipStep / Abort, one named by AttrBlockStep waits for Release.
func lifecycle(ctx workflow.Context, ev hr.Event) error {
	steps := make([]workflows.StepInfo, len(Steps))
	for i, name := range Steps {
		target, action, _ := strings.Cut(name, ".")
		steps[i] = workflows.StepInfo{Name: name, Action: action, Target: target, State: workflows.StepPending}
	}
	if err := workflow.SetQueryHandler(ctx, contract.QuerySteps, func() ([]workflows.StepInfo, error) { return steps, nil }); err != nil {
		return err
	}
	var (
		waitingOn string // the failed or blocked step
		decision  string // done | skipped | aborted
	)
	mustBe := func(step string) error {
		if waitingOn == "" {
			return fmt.Errorf("no step is waiting for an operator")
		}
		if step != waitingOn {
			return fmt.Errorf("step %q is not the failed step (%q)", step, waitingOn)
		}
		return nil
	}
	handlers := map[string]func(workflows.StepRequest) string{
		contract.UpdateSkipStep: func(workflows.StepRequest) string { return workflows.StepSkipped },
		contract.UpdateRelease:  func(workflows.StepRequest) string { return workflows.StepDone },
	}
	for name, decide := range handlers {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, name, func(ctx workflow.Context, r workflows.StepRequest) error {
			decision = decide(r)
			return nil
		}, workflow.UpdateHandlerOptions{Validator: func(r workflows.StepRequest) error { return mustBe(r.Step) }}); err != nil {
			return err
		}
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateRetryStep, func(ctx workflow.Context, r workflows.RetryStepRequest) error {
		decision = workflows.StepDone
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(r workflows.RetryStepRequest) error { return mustBe(r.Step) }}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateAbort, func(ctx workflow.Context, r workflows.StepRequest) error {
		decision = contract.StateAborted
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(r workflows.StepRequest) error {
		if r.Step != "" {
			return mustBe(r.Step)
		}
		return nil
	}}); err != nil {
		return err
	}

	for i := range steps {
		s := &steps[i]
		s.Attempts++
		s.Time = workflow.Now(ctx)
		switch s.Name {
		case ev.Employee[AttrFailStep]:
			s.State, s.LastError = workflows.StepFailed, "ScimConflict: userName already taken"
			if err := wait(ctx, &waitingOn, &decision, s.Name, contract.StateNeedsAttention); err != nil {
				return err
			}
		case ev.Employee[AttrBlockStep]:
			s.State, s.LastError = workflows.StepBlocked, "safety limit: 30 deprovisions in the last hour (max 25)"
			if err := wait(ctx, &waitingOn, &decision, s.Name, contract.StateBlocked); err != nil {
				return err
			}
		default:
			decision = workflows.StepDone
		}
		if decision == contract.StateAborted {
			return workflow.UpsertTypedSearchAttributes(ctx, stateKey.ValueSet(contract.StateAborted))
		}
		if decision == workflows.StepDone && s.State == workflows.StepFailed {
			s.Attempts++
		}
		s.State = decision
		s.LastError = ""
	}
	return workflow.UpsertTypedSearchAttributes(ctx, stateKey.ValueSet(contract.StateCompleted), failedKey.ValueUnset())
}

func wait(ctx workflow.Context, waitingOn, decision *string, step, state string) error {
	*waitingOn, *decision = step, ""
	if err := workflow.UpsertTypedSearchAttributes(ctx, stateKey.ValueSet(state), failedKey.ValueSet(step)); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return *decision != "" }); err != nil {
		return err
	}
	*waitingOn = ""
	return workflow.UpsertTypedSearchAttributes(ctx, stateKey.ValueSet(contract.StateRunning), failedKey.ValueUnset())
}
