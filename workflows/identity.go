package workflows

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
)

// maxHandled bounds the event IDs an identity remembers across
// continue-as-new. Older duplicates are still caught: a child workflow ID
// is derived from the event ID and never reused (REJECT_DUPLICATE).
const maxHandled = 500

type running struct {
	kind, eventID, workflowID string
	enableAt                  time.Time
	cancel                    workflow.CancelFunc
	child                     workflow.ChildWorkflowFuture
}

type identity struct {
	in       IdentityInput
	handled  map[string]bool
	current  *running
	changed  bool // the queue changed: re-evaluate the head's timer
	schedule map[string]activities.Schedule
	// hostQueues: children run secret steps on the holder's task queue.
	hostQueues bool
	// publish: this run keeps its IdentityRecord memo current
	// (PublishIdentity), read by the attribute sync and the governor's
	// population count. Runs started before that change do not.
	publish bool
	// shown: the search attributes the run started with, when they
	// already show the first state it would set (see FirstEvent).
	shown *shownState
	// version is the shape this run took (IdentityVersion at its start).
	version workflow.Version
}

type shownState struct{ state, kind string }

// Identity is the per-person ordering workflow (ID identity/<employeeId>).
// Design:
//
//   - HR events arrive by Update (validated: same employee, known type,
//     event ID) or Signal; an event ID seen before answers Duplicate.
//   - Events run strictly one at a time, in arrival order, each as a child
//     workflow joiner|mover|leaver/<employeeId>/<eventId>; a mover queued
//     behind a joiner therefore waits for it.
//   - The head of the queue waits on a durable timer until its effective
//     time (Schedule local activity: policy offset, local time in the
//     employee's time zone). Any queue change wakes the wait and re-reads
//     the head, which is how a later event moves or cancels a timer: a new
//     hire replaces a queued hire (new start date), a new termination a
//     queued termination, and a termination drops queued hires and cancels
//     a running joiner still waiting for its start date.
//   - A hire or rehire after a leaver runs the joiner flow as a rehire
//     (accounts reactivated); a change after a leaver only records the
//     attributes: it grants nothing.
//   - Continue-as-new when suggested, between events, after every handler
//     finished, carrying queue, handled IDs, attributes and accounts.
func Identity(ctx workflow.Context, in IdentityInput) error {
	s := &identity{in: in, handled: map[string]bool{}, schedule: map[string]activities.Schedule{}}
	for _, id := range in.Handled {
		s.handled[id] = true
	}
	if s.in.Attributes == nil {
		s.in.Attributes = map[string]string{}
	}
	if s.in.Accounts == nil {
		s.in.Accounts = map[string]string{}
	}
	if s.in.Identifiers == nil {
		s.in.Identifiers = map[string]string{}
	}
	if s.in.AccountStates == nil {
		s.in.AccountStates = map[string]string{}
	}
	if s.in.Receipts == nil {
		s.in.Receipts = map[string]Receipt{}
	}
	if err := s.registerHandlers(ctx); err != nil {
		return err
	}
	signals := workflow.GetSignalChannel(ctx, contract.SignalHREvent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var req HREventRequest
			signals.Receive(ctx, &req)
			if s.validate(req) == nil {
				s.enqueue(ctx, req.Event)
			}
		}
	})
	sa := workflow.GetTypedSearchAttributes(ctx)
	switch st, _ := sa.GetKeyword(saState); {
	case st == contract.StateRunning && len(s.in.Pending) > 0:
		// Started by its first event (FirstEvent), already shown as
		// running it: the first run needs no upsert of its own.
		kind, _ := sa.GetKeyword(saEvent)
		s.shown = &shownState{state: st, kind: kind}
	case st != contract.StateIdle:
		s.setState(ctx, contract.StateIdle, "") // (older intakes start identities Idle)
	}
	// 1: publish the IdentityRecord memo; 2: children run without worker
	// sessions (LifecycleInput.HostQueues), and a new identity publishes
	// once it knows something.
	v := workflow.Version(s.in.Version)
	if v == 0 {
		v = workflow.GetVersion(ctx, "publish-identity", workflow.DefaultVersion, IdentityVersion)
		if v >= VersionOperatorUI {
			s.in.Version = int(v) // continue-as-new carries it
		}
	}
	s.publish, s.hostQueues, s.version = v >= 1, v >= 2, v
	if v >= VersionOperatorUI {
		s.mirrorChildren(ctx)
	}
	s.recordLinks(ctx)
	if s.publish && (v < 2 || len(s.in.Attributes) > 0 || s.in.Status != "") {
		s.publishRecord(ctx)
	}

	for {
		err := workflow.Await(ctx, func() bool {
			return len(s.in.Pending) > 0 || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		})
		if err != nil {
			return err
		}
		if len(s.in.Pending) == 0 {
			return s.continueAsNew(ctx, signals)
		}
		head := s.in.Pending[0]
		sched, err := s.scheduleOf(ctx, head)
		if err != nil {
			if workflow.GetVersion(ctx, "schedule-needs-attention", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				workflow.GetLogger(ctx).Error("event cannot be scheduled; dropped", "event_id", head.EventID, "error", errorText(err))
				s.done(head.EventID)
				continue
			}
			// An event that cannot be scheduled (bad time zone) runs at
			// once as a run waiting for an operator, who corrects it: it
			// is never dropped.
			s.in.Pending = s.in.Pending[1:]
			s.runEvent(ctx, head, activities.Schedule{}, errorText(err))
			s.afterEvent(ctx)
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return s.continueAsNew(ctx, signals)
			}
			continue
		}
		if wait := sched.RunAt.Sub(workflow.Now(ctx)); wait > 0 {
			s.changed = false
			s.setState(ctx, contract.StateWaiting, kindOf(head, s.in.Status))
			changed, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout:      wait,
				TimerOptions: workflow.TimerOptions{Summary: "wait for effective date"},
			}, func() bool { return s.changed })
			if err != nil {
				return err
			}
			if changed {
				continue // the queue changed: look at the head again
			}
		}
		s.in.Pending = s.in.Pending[1:]
		if head.Type == hr.Change && s.in.Status == contract.StatusDeprovisioned &&
			workflow.GetVersion(ctx, "no-mover-after-leaver", workflow.DefaultVersion, 1) == 1 {
			// A change for someone who has left (often a late or reordered
			// delivery) must not grant access again: its attributes are
			// kept for a rehire, and no mover runs.
			maps.Copy(s.in.Attributes, head.Employee)
			workflow.GetLogger(ctx).Info("change after termination: attributes recorded, no access granted", "event_id", head.EventID)
			s.done(head.EventID)
			continue
		}
		s.runEvent(ctx, head, sched, "")
		s.afterEvent(ctx)
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return s.continueAsNew(ctx, signals)
		}
	}
}

func (s *identity) afterEvent(ctx workflow.Context) {
	if s.publish {
		s.publishRecord(ctx)
	}
	s.setState(ctx, contract.StateIdle, "")
	if s.version >= VersionOperatorUI {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Idle (%s); last run %s.", orUnknown(s.in.Status), s.in.LastRun))
	}
}

// childSummary is a child run's static summary and details: the event,
// never the person's attributes (the UI shows them to every viewer).
func childSummary(kind string, ev hr.Event, in LifecycleInput) (string, string) {
	summary := fmt.Sprintf("%s for %s, event %s (%s)", kind, in.EmployeeID, ev.EventID, ev.Type)
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** run for employee `%s`\n\n- HR event `%s`, type `%s`\n", kind, in.EmployeeID, ev.EventID, ev.Type)
	if !ev.EffectiveAt.IsZero() {
		fmt.Fprintf(&b, "- effective %s\n", ev.EffectiveAt.UTC().Format(time.RFC3339))
	}
	if !in.EnableAt.IsZero() {
		fmt.Fprintf(&b, "- accounts enabled on %s\n", in.EnableAt.UTC().Format(time.RFC3339))
	}
	if in.Rehire {
		b.WriteString("- rehire: disabled accounts are reactivated\n")
	}
	b.WriteString("- planned steps: the step table in the current details and the `steps` query\n")
	return summary, b.String()
}

func (s *identity) continueAsNew(ctx workflow.Context, signals workflow.ReceiveChannel) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	for {
		var req HREventRequest
		if !signals.ReceiveAsync(&req) {
			break
		}
		if s.validate(req) == nil {
			s.enqueue(ctx, req.Event)
		}
	}
	if s.in.Version != 0 {
		// A new run has no history to replay: it takes the newest shape.
		s.in.Version = IdentityVersion
	}
	return workflow.NewContinueAsNewError(ctx, contract.IdentityWorkflowName, s.in)
}

// mirrorChildren shows the current child's waiting state (reported by
// SignalChildState) as the identity's own JmlState, JmlFailedStep and
// current details, so the person's workflow says what their run waits for.
func (s *identity) mirrorChildren(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, contract.SignalChildState,
		workflow.SignalChannelOptions{Description: "a lifecycle run reports that it waits or runs again (sent by jml's own runs)"})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var cs ChildState
			ch.Receive(ctx, &cs)
			c := s.current
			if c == nil || c.workflowID != cs.WorkflowID {
				continue // a report from a run that has ended since
			}
			_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(cs.State), saFailedStep.ValueSet(cs.FailedStep))
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("Current run [%s](#%s) is **%s**; act on that run (the commands below address it by employee ID).\n\n%s",
				cs.WorkflowID, cs.WorkflowID, cs.State, cs.Details))
		}
	})
}

// recordLinks records the accounts the current run reports as soon as a
// step has created, adopted or linked them (SignalAccountLinked), and
// publishes them: reconciliation and the attribute sync then see the
// person's account while the run goes on or waits for an operator, and
// never take it for an orphan. The run's result carries them again.
func (s *identity) recordLinks(ctx workflow.Context) {
	ch := workflow.GetSignalChannelWithOptions(ctx, contract.SignalAccountLinked,
		workflow.SignalChannelOptions{Description: "a lifecycle run reports an account it created or linked (sent by jml's own runs)"})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var l AccountLink
			ch.Receive(ctx, &l)
			if c := s.current; c == nil || c.workflowID != l.WorkflowID || l.Target == "" || l.AccountID == "" {
				continue // a report from a run that has ended since
			}
			// Only runs of the "link-at-write" version send this signal, so
			// no history from before it reaches here; the guard can go with
			// the lifecycle's (reportLink), under the same condition. A lean
			// identity (VersionLean) records no marker for it.
			if s.version < VersionLean && workflow.GetVersion(ctx, "link-at-write", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				continue
			}
			s.in.Accounts[l.Target] = l.AccountID
			if l.Identifier != "" {
				s.in.Identifiers[l.Target] = l.Identifier
			}
			if l.State != "" {
				s.in.AccountStates[l.Target] = l.State
			}
			if s.publish {
				s.publishRecord(ctx)
			}
		}
	})
}

func (s *identity) registerHandlers(ctx workflow.Context) error {
	err := workflow.SetQueryHandlerWithOptions(ctx, contract.QueryCurrent, func() (CurrentRun, error) {
		cr := CurrentRun{EmployeeID: s.in.EmployeeID, Status: s.in.Status, LastRun: s.in.LastRun,
			Accounts: s.in.Accounts, Identifiers: s.in.Identifiers, AccountStates: s.in.AccountStates}
		if s.current != nil {
			cr.WorkflowID, cr.Kind, cr.EventID = s.current.workflowID, s.current.kind, s.current.eventID
		}
		for _, ev := range s.in.Pending {
			cr.Pending = append(cr.Pending, ev.EventID)
		}
		return cr, nil
	}, workflow.QueryHandlerOptions{Description: DescCurrent})
	if err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateHREvent,
		func(ctx workflow.Context, req HREventRequest) (EventAccepted, error) {
			if r, ok := s.in.Receipts[req.Event.EventID]; ok && r.Digest != req.Event.Digest() {
				return EventAccepted{WorkflowID: r.WorkflowID, Conflict: true}, nil
			}
			dup := s.enqueue(ctx, req.Event)
			kind := kindOf(req.Event, s.in.Status)
			id := contract.LifecycleWorkflowID(kind, s.in.EmployeeID, req.Event.EventID)
			if r, ok := s.in.Receipts[req.Event.EventID]; ok {
				id = r.WorkflowID
			}
			return EventAccepted{WorkflowID: id, Duplicate: dup}, nil
		},
		workflow.UpdateHandlerOptions{Description: "Deliver an HR event (sent by the intake; operators post events with starter post).",
			Validator: func(ctx workflow.Context, req HREventRequest) error { return s.validate(req) }})
}

func (s *identity) validate(req HREventRequest) error {
	return ValidateEvent(s.in.EmployeeID, req.Event)
}

// enqueue adds ev unless it was seen; reports whether it was a duplicate.
func (s *identity) enqueue(ctx workflow.Context, ev hr.Event) bool {
	if s.handled[ev.EventID] || (s.current != nil && s.current.eventID == ev.EventID) ||
		slices.ContainsFunc(s.in.Pending, func(p hr.Event) bool { return p.EventID == ev.EventID }) {
		return true
	}
	drop := func(types ...string) {
		s.in.Pending = slices.DeleteFunc(s.in.Pending, func(p hr.Event) bool {
			if slices.Contains(types, p.Type) {
				s.done(p.EventID)
				return true
			}
			return false
		})
	}
	switch ev.Type {
	case hr.Terminate:
		// The later termination wins; hires not started yet never happen.
		drop(hr.Terminate, hr.Hire, hr.Rehire)
		if c := s.current; c != nil && c.kind == policy.KindJoiner && c.enableAt.After(workflow.Now(ctx)) {
			c.cancel() // a joiner still waiting for its start date
		} else if c != nil && c.kind != policy.KindLeaver && c.child != nil &&
			workflow.GetVersion(ctx, "terminate-supersedes-waiting-run", workflow.DefaultVersion, 1) == 1 {
			// A run waiting for an operator (or reaching that later) must
			// not hold a termination back: it gives way, and the leaver
			// runs. A run that goes on unaided finishes first.
			c.child.SignalChildWorkflow(ctx, contract.SignalSupersede, nil)
		}
	case hr.Hire, hr.Rehire:
		drop(hr.Hire, hr.Rehire) // a corrected hire moves the start date
		if c := s.current; c != nil && c.kind == policy.KindLeaver && c.child != nil &&
			workflow.GetVersion(ctx, "rehire-supersedes-leaver", workflow.DefaultVersion, 1) == 1 {
			// A rehire during the grace period: the leaver's pending delete
			// never runs, and the rehire reactivates the account at once.
			c.child.SignalChildWorkflow(ctx, contract.SignalSupersede, nil)
		}
	}
	s.in.Pending = append(s.in.Pending, ev)
	s.in.Receipts[ev.EventID] = Receipt{Digest: ev.Digest(), WorkflowID: contract.LifecycleWorkflowID(kindOf(ev, s.in.Status), s.in.EmployeeID, ev.EventID)}
	s.changed = true
	return false
}

func (s *identity) done(eventID string) {
	s.handled[eventID] = true
	s.in.Handled = append(s.in.Handled, eventID)
	if n := len(s.in.Handled); n > maxHandled {
		for _, old := range s.in.Handled[:n-maxHandled] {
			delete(s.handled, old)
			delete(s.in.Receipts, old)
		}
		s.in.Handled = slices.Clone(s.in.Handled[n-maxHandled:])
	}
}

func kindOf(ev hr.Event, status string) string {
	switch ev.Type {
	case hr.Change:
		return policy.KindMover
	case hr.Terminate:
		return policy.KindLeaver
	}
	return policy.KindJoiner
}

func (s *identity) scheduleOf(ctx workflow.Context, ev hr.Event) (activities.Schedule, error) {
	if sc, ok := s.schedule[ev.EventID]; ok {
		return sc, nil
	}
	if ev.EffectiveAt.IsZero() {
		return activities.Schedule{}, nil
	}
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var sc activities.Schedule
	attrs := maps.Clone(s.in.Attributes)
	maps.Copy(attrs, ev.Employee)
	in := activities.ScheduleInput{Kind: kindOf(ev, s.in.Status), EffectiveAt: ev.EffectiveAt, Attributes: attrs}
	if in.Kind == policy.KindMover {
		in.OldAttributes = s.in.Applied
		if in.OldAttributes == nil {
			in.OldAttributes = s.in.Attributes
		}
	}
	if err := workflow.ExecuteLocalActivity(lctx, a.Schedule, in).Get(ctx, &sc); err != nil {
		return sc, err
	}
	s.schedule[ev.EventID] = sc
	return sc, nil
}

func (s *identity) publishRecord(ctx workflow.Context) {
	if err := PublishIdentity(ctx, s.in); err != nil {
		workflow.GetLogger(ctx).Error("identity record not published", "error", err)
	}
}

func (s *identity) setState(ctx workflow.Context, state, kind string) {
	if sh := s.shown; sh != nil {
		s.shown = nil
		if sh.state == state && sh.kind == kind {
			return
		}
	}
	upd := []temporal.SearchAttributeUpdate{saEmployeeID.ValueSet(s.in.EmployeeID), saState.ValueSet(state)}
	if kind != "" {
		upd = append(upd, saEvent.ValueSet(kind))
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, upd...)
}

// runEvent runs one event's lifecycle child and folds its result into the
// identity's state.
func (s *identity) runEvent(ctx workflow.Context, ev hr.Event, sched activities.Schedule, schedErr string) {
	defer s.done(ev.EventID)
	kind := kindOf(ev, s.in.Status)
	attrs := maps.Clone(s.in.Attributes)
	maps.Copy(attrs, ev.Employee)
	in := LifecycleInput{
		Kind: kind, EmployeeID: s.in.EmployeeID, EventID: ev.EventID,
		Attributes: attrs, Accounts: s.in.Accounts, Identifiers: s.in.Identifiers, AccountStates: s.in.AccountStates,
		Rehire:        kind == policy.KindJoiner && (ev.Type == hr.Rehire || s.in.Status == contract.StatusDeprovisioned),
		EnableAt:      sched.EnableAt,
		ScheduleError: schedErr,
		HostQueues:    s.hostQueues,
		Version:       int(s.version),
		// The HR effective time: the run's reschedule needs it after a
		// schedule error; the audit trail (a leaver's SLA) always.
		EffectiveAt: ev.EffectiveAt,
	}
	applied := s.in.Applied
	if applied == nil {
		applied = s.in.Attributes
	}
	if kind == policy.KindMover {
		in.OldAttributes = applied
		if s.hostQueues && s.publish {
			// HR's new word is published before the mover writes it, so a
			// scheduled attribute sync in between does not write the old
			// values back over the mover's.
			s.in.Attributes = attrs
			s.publishRecord(ctx)
		}
	}
	id := contract.LifecycleWorkflowID(kind, s.in.EmployeeID, ev.EventID)
	cctx, cancel := workflow.WithCancel(ctx)
	summary, details := kind+" run", ""
	if s.version >= VersionOperatorUI {
		summary, details = childSummary(kind, ev, in)
	}
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WaitForCancellation:   true,
		StaticSummary:         summary,
		StaticDetails:         details,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			saEmployeeID.ValueSet(s.in.EmployeeID), saEvent.ValueSet(kind), saState.ValueSet(contract.StateRunning)),
	})
	s.current = &running{kind: kind, eventID: ev.EventID, workflowID: id, enableAt: sched.EnableAt, cancel: cancel}
	s.setState(ctx, contract.StateRunning, kind)
	if s.version >= VersionOperatorUI {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Running %s [%s](#%s) for event `%s`.", kind, id, id, ev.EventID))
	}
	name := map[string]string{policy.KindJoiner: contract.JoinerWorkflowName, policy.KindMover: contract.MoverWorkflowName, policy.KindLeaver: contract.LeaverWorkflowName}[kind]
	var res LifecycleResult
	s.current.child = workflow.ExecuteChildWorkflow(cctx, name, in)
	err := s.current.child.Get(ctx, &res)
	s.current, s.in.LastRun = nil, id
	cancel()
	if !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		// HR's latest word, whatever the run's outcome: the next event's
		// lookups start from it. Until a run completes, movers diff from
		// what was last applied.
		s.in.Attributes = attrs
		if err != nil || !completed(res.State) {
			s.in.Applied = applied
		}
	}
	switch {
	case err == nil:
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		return // this event ran before (beyond the remembered IDs)
	case temporal.IsCanceledError(err):
		workflow.GetLogger(ctx).Info("lifecycle run canceled", "workflow_id", id)
		return
	case temporal.IsTerminatedError(err):
		// An operator's `starter terminate` (or Temporal's): no failure of jml's.
		workflow.GetLogger(ctx).Warn("lifecycle run terminated", "workflow_id", id)
		return
	default:
		workflow.GetLogger(ctx).Error("lifecycle run failed", "workflow_id", id, "error", errorText(err))
		return
	}
	if res.Accounts != nil {
		s.in.Accounts = res.Accounts
	}
	if res.Identifiers != nil {
		s.in.Identifiers = res.Identifiers
	}
	if res.Accounts != nil {
		// States follow the links: a run from before them returns none,
		// and a state whose link is gone goes with it.
		if res.AccountStates != nil {
			s.in.AccountStates = res.AccountStates
		}
		maps.DeleteFunc(s.in.AccountStates, func(t, _ string) bool { return res.Accounts[t] == "" })
	}
	if !completed(res.State) {
		return // aborted: the status stays as it was
	}
	s.in.Attributes, s.in.Applied = res.Attributes, nil // with an operator's corrections
	switch kind {
	case policy.KindJoiner:
		s.in.Status = contract.StatusActive
	case policy.KindLeaver:
		s.in.Status = contract.StatusDeprovisioned
	}
}
