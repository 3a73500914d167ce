package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

// Typed search attribute keys (keyword).
var (
	saEmployeeID = temporal.NewSearchAttributeKeyKeyword(contract.SAEmployeeID)
	saEvent      = temporal.NewSearchAttributeKeyKeyword(contract.SAEvent)
	saState      = temporal.NewSearchAttributeKeyKeyword(contract.SAState)
	saFailedStep = temporal.NewSearchAttributeKeyKeyword(contract.SAFailedStep)
)

// stepRetry is the retry policy of every step: retryable errors back off
// from 1s to 5m for up to 20 attempts (about an hour, so a target's short
// outage heals by itself), then the run goes to NeedsAttention. A 429 uses
// the server's delay plus jitter (NextRetryDelay); permanent errors are
// non-retryable ApplicationErrors and stop at once.
var stepRetry = temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    5 * time.Minute,
	MaximumAttempts:    20,
}

// LifecycleInput starts a joiner, mover or leaver run.
type LifecycleInput struct {
	Kind       string `json:"kind"` // joiner | mover | leaver
	EmployeeID string `json:"employee_id"`
	EventID    string `json:"event_id"`
	// Attributes are the employee's attributes after the event;
	// OldAttributes the previous ones (mover group diff).
	Attributes    map[string]string `json:"attributes"`
	OldAttributes map[string]string `json:"old_attributes,omitempty"`
	// Accounts known from earlier runs (the person's links), by target
	// name; Identifiers their unique identifiers as chosen at creation.
	Accounts    map[string]string `json:"accounts,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// AccountStates are the linked accounts' states as last read back
	// (contract.AccountActive, AccountDisabled), by target.
	AccountStates map[string]string `json:"account_states,omitempty"`
	// Rehire reactivates accounts a leaver disabled.
	Rehire bool `json:"rehire,omitempty"`
	// EnableAt (pre-hire): accounts are created disabled and enabled at
	// this time, the start date.
	EnableAt time.Time `json:"enable_at,omitempty"`
	// ScheduleError: the identity could not compute the event's effective
	// time (e.g. a bad time zone). The run waits for an operator, whose
	// RetryStep (with corrected attributes) schedules it again.
	ScheduleError string    `json:"schedule_error,omitempty"`
	EffectiveAt   time.Time `json:"effective_at,omitempty"`
	// HostQueues: secret steps run on the task queue of the worker that
	// holds the secret; false (runs started by older identities): in a
	// worker session.
	HostQueues bool `json:"host_queues,omitempty"`
	// Version is the starting identity's shape (IdentityVersion); from
	// VersionOperatorUI the run reports to its identity, takes one safety
	// permit per person and ends CompletedWithSkips after a skip.
	Version int `json:"version,omitempty"`
}

// LifecycleResult is what the identity workflow carries forward.
type LifecycleResult struct {
	State       string            `json:"state"` // Completed | Aborted
	Attributes  map[string]string `json:"attributes"`
	Accounts    map[string]string `json:"accounts,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// AccountStates: LifecycleInput.AccountStates after the run.
	AccountStates map[string]string `json:"account_states,omitempty"`
	// LeftInPlace lists, on an aborted run, what it created and left
	// (accounts, group grants), for the operator to keep or undo.
	LeftInPlace []string `json:"left_in_place,omitempty"`
	// Skipped lists the steps an operator skipped (state
	// CompletedWithSkips); Decisions every operator update, who and why.
	Skipped   []string   `json:"skipped,omitempty"`
	Decisions []Decision `json:"decisions,omitempty"`
}

// completed reports whether a run's result state means it ran to its end.
func completed(state string) bool {
	return state == contract.StateCompleted || state == contract.StateCompletedWithSkips
}

// decision is an operator's answer to NeedsAttention or Blocked.
type decision struct {
	update   string // UpdateRetryStep | UpdateSkipStep | UpdateAbort | UpdateRelease
	attrs    map[string]string
	rollback bool
	// cascade: the later steps a SkipStep with cascade skips too.
	cascade []string
	// record: who decided and why (ui runs).
	record Decision
}

type lifecycle struct {
	in       LifecycleInput
	plan     activities.Plan
	steps    []StepInfo
	attrs    map[string]string
	outputs  map[string]map[string]string
	secrets  map[string]activities.SecretRef
	accounts map[string]string
	idents   map[string]string
	states   map[string]string // linked accounts' states by target
	// reporting: the run waits on its state signal to the identity.
	reporting bool
	// made is what this run created (accounts, grants), listed on abort;
	// created the accounts it created, by target (abort --rollback).
	made    []string
	created []string
	// superseded: a rehire arrived; skipRest: so the delayed step it cut
	// short and the steps after it do not run.
	superseded, skipRest bool
	state                string
	// waitingOn is the failed or blocked step an operator must act on.
	waitingOn string
	decision  *decision
	session   workflow.Context
	// queues: secret steps run on the task queue of the worker whose vault
	// holds the run's secrets (holder), not in a worker session (runs
	// started before this change keep their sessions).
	queues  bool
	holder  string
	forgets int // numbers the vault.forget activity IDs
	// execs counts activity executions per step: a re-run gets the ID
	// "<step>#2", as the abandoned attempt of a lost session may still be
	// open on the server under the plain name.
	execs map[string]int
	// ui (in.Version >= VersionOperatorUI): report to the identity, one
	// permit per person, CompletedWithSkips.
	ui bool
	// lean (in.Version >= VersionLean): the changes guarded by
	// link-at-write, link-state, revoke-grants and audit-trail are given,
	// with no version marker (see newer).
	lean bool
	// permitted: the safety limit let this person's destructive steps
	// run (granted or released); later ones (a delayed delete) do not ask.
	permitted bool
	decisions []Decision
	skipped   []string
	// failedAt is when the step an operator must act on last failed;
	// current the step running (current details).
	failedAt time.Time
	current  string
	// audit emits the run's audit records (audit.go).
	audit auditTrail
}

// Lifecycle runs the policy steps of one HR event, registered as Joiner,
// Mover and Leaver. Design:
//
//   - The steps come from a Plan activity (policy + conditions), recorded
//     in history, so a policy edit never changes a running workflow.
//   - One activity per step, ActivityID = step name, PII-free Summary.
//   - Steps run in a worker session when the plan makes or reads a secret:
//     the vault lives in that worker's memory. A lost session (worker died)
//     is recreated and the step re-run; a step whose vault handle no longer
//     resolves sets a new password and says so in the step table.
//   - The session (and the run's vault entries) is released before every
//     long wait: a delay, NeedsAttention, Blocked, the start date.
//   - A step failing for good sets NeedsAttention and waits for RetryStep,
//     SkipStep or Abort; a destructive step the governor refuses waits
//     Blocked for Release or Abort.
func Lifecycle(ctx workflow.Context, in LifecycleInput) (LifecycleResult, error) {
	r := &lifecycle{
		in:       in,
		attrs:    maps.Clone(in.Attributes),
		outputs:  map[string]map[string]string{},
		secrets:  map[string]activities.SecretRef{},
		accounts: maps.Clone(in.Accounts),
		idents:   maps.Clone(in.Identifiers),
		states:   maps.Clone(in.AccountStates),
		state:    contract.StateRunning,
		execs:    map[string]int{},
		ui:       in.Version >= VersionOperatorUI,
		lean:     in.Version >= VersionLean,
	}
	if r.accounts == nil {
		r.accounts = map[string]string{}
	}
	if r.idents == nil {
		r.idents = map[string]string{}
	}
	if r.states == nil {
		r.states = map[string]string{}
	}
	if err := r.registerHandlers(ctx); err != nil {
		return LifecycleResult{}, err
	}
	r.countState(ctx) // started: Running
	workflow.Go(ctx, func(ctx workflow.Context) {
		workflow.GetSignalChannel(ctx, contract.SignalSupersede).Receive(ctx, nil)
		r.superseded = true
	})
	// The identity workflow decides the shape (its own version): no
	// version marker per run.
	r.queues = in.HostQueues
	if st, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(saState); !r.queues || st != contract.StateRunning {
		// (The identity workflow starts each run with its attributes set:
		// upsert only what the start did not.)
		r.setState(ctx, contract.StateRunning, "")
	}

	if in.ScheduleError != "" {
		if err := r.reschedule(ctx); err != nil || r.state == contract.StateAborted {
			// Aborted before the run had a plan: the decision is recorded.
			r.startAudit(ctx)
			r.endAudit(ctx)
			return r.result(), err
		}
	}
	if err := r.planSteps(ctx); err != nil {
		return LifecycleResult{}, err
	}
	r.startAudit(ctx)
	if r.state == contract.StateAborted {
		r.endAudit(ctx)
		return r.result(), nil
	}
	for _, s := range r.plan.Steps {
		if s.Traits().Notification && !s.OnCompleted {
			continue // fires only on NeedsAttention
		}
		row := StepInfo{Name: s.Name, Action: s.Action, Target: s.Target, State: StepPending}
		if s.SkipReason != "" {
			row.State, row.Note = StepSkipped, s.SkipReason
		}
		r.steps = append(r.steps, row)
	}

	err := r.run(ctx)
	// Wipe the run's secrets whatever happened, even when canceled. (A run
	// that completes leaves that to the holder's janitor, which wipes the
	// entries of closed runs: one activity less per run.)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if !r.queues || err != nil {
		r.releaseSecrets(dctx)
	}
	r.endAudit(ctx)
	res := r.result()
	if err != nil {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			r.setState(dctx, contract.StateAborted, "")
			return res, temporal.NewCanceledError()
		}
		return res, err
	}
	return res, nil
}

func (r *lifecycle) registerHandlers(ctx workflow.Context) error {
	err := workflow.SetQueryHandlerWithOptions(ctx, contract.QuerySteps, func() ([]StepInfo, error) { return r.steps, nil },
		workflow.QueryHandlerOptions{Description: DescSteps})
	if err != nil {
		return err
	}
	onFailed := func(step string) error {
		if r.state != contract.StateNeedsAttention {
			return fmt.Errorf("no failed step: the run is %s", r.state)
		}
		if step != r.waitingOn {
			return fmt.Errorf("step %q is not the failed step %q", step, r.waitingOn)
		}
		return nil
	}
	handlers := []struct {
		name, desc string
		validate   func(StepRequest) error
	}{
		{contract.UpdateSkipStep, DescSkipStep, func(q StepRequest) error {
			if q.Step == stepPlan || q.Step == stepSchedule {
				return fmt.Errorf("step %q cannot be skipped: retry it (with corrected attributes) or abort", q.Step)
			}
			if err := onFailed(q.Step); err != nil {
				return err
			}
			if deps := r.dependants(q.Step); len(deps) > 0 && !q.Cascade {
				return fmt.Errorf("later steps use the outputs of %s: %s; retry it, or skip with \"cascade\": true (starter skip --cascade) to skip them too",
					q.Step, strings.Join(deps, ", "))
			}
			return nil
		}},
		{contract.UpdateAbort, DescAbort, func(q StepRequest) error {
			if r.state != contract.StateNeedsAttention && r.state != contract.StateBlocked {
				return fmt.Errorf("nothing to abort: the run is %s", r.state)
			}
			if q.Step != "" && q.Step != r.waitingOn {
				return fmt.Errorf("step %q is not the waiting step %q", q.Step, r.waitingOn)
			}
			return nil
		}},
		{contract.UpdateRelease, DescRelease, func(q StepRequest) error {
			if r.state != contract.StateBlocked {
				return fmt.Errorf("nothing blocked: the run is %s (Release is for the safety limit; a failed step takes RetryStep, SkipStep or Abort)", r.state)
			}
			if q.Step != "" && q.Step != r.waitingOn {
				return fmt.Errorf("step %q is not the blocked step %q", q.Step, r.waitingOn)
			}
			return nil
		}},
	}
	for _, h := range handlers {
		name, validate := h.name, h.validate
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, q StepRequest) (string, error) {
				d := &decision{update: name, rollback: q.Rollback && name == contract.UpdateAbort,
					record: Decision{Update: name, Step: r.waitingOn, Operator: q.Operator, Reason: q.Reason, Time: workflow.Now(ctx)}}
				if name == contract.UpdateSkipStep && q.Cascade {
					d.cascade = r.dependants(q.Step)
				}
				r.decision = d
				return r.applied(ctx, d), nil
			},
			workflow.UpdateHandlerOptions{Description: h.desc,
				Validator: func(ctx workflow.Context, q StepRequest) error { return validate(q) }})
		if err != nil {
			return err
		}
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateRetryStep,
		func(ctx workflow.Context, q RetryStepRequest) (string, error) {
			r.decision = &decision{update: contract.UpdateRetryStep, attrs: q.Attributes,
				record: Decision{Update: contract.UpdateRetryStep, Step: r.waitingOn, Operator: q.Operator, Reason: q.Reason, Time: workflow.Now(ctx)}}
			return r.applied(ctx, r.decision), nil
		},
		workflow.UpdateHandlerOptions{Description: DescRetryStep, Validator: func(ctx workflow.Context, q RetryStepRequest) error {
			if q.Attributes["employee_id"] != "" && q.Attributes["employee_id"] != r.in.EmployeeID {
				return errors.New("employee_id cannot be changed")
			}
			return onFailed(q.Step)
		}})
}

// applied waits until the run has taken the decision (the step table
// then shows it: skipped, aborted, pending again) and returns the answer.
// Messages and timing within the workflow task change, not commands, so
// running workflows replay.
func (r *lifecycle) applied(ctx workflow.Context, d *decision) string {
	msg := r.answer(d) // before the run clears what it waits on
	// (Taking it reports Running to the identity, a signal the run waits
	// for; the decision is applied right after.)
	_ = workflow.Await(ctx, func() bool { return r.decision != d && !r.reporting })
	return msg
}

// answer is an update's result: what the run does now, in one line.
func (r *lifecycle) answer(d *decision) string {
	step := r.waitingOn
	next := r.nextAfter(step, d.cascade)
	switch d.update {
	case contract.UpdateRetryStep:
		n := 1
		if row := r.row(step); row != nil {
			n = row.Attempts + 1
		}
		msg := fmt.Sprintf("retrying %s (attempt %d)", step, n)
		if len(d.attrs) > 0 {
			msg += " with " + strings.Join(slices.Sorted(maps.Keys(d.attrs)), ", ") + " corrected" +
				" (for this step and the later ones; steps already done keep the old value until the next attribute sync)"
		}
		return msg
	case contract.UpdateSkipStep:
		msg := "skipped " + step
		if len(d.cascade) > 0 {
			msg += " and " + strings.Join(d.cascade, ", ")
		}
		return msg + "; next " + next
	case contract.UpdateRelease:
		return "released " + step + "; running it now"
	case contract.UpdateAbort:
		msg := "aborting at " + step
		if d.rollback {
			msg += "; rolling back the accounts this run created"
		}
		return fmt.Sprintf("%s; %d item(s) created by this run are listed in its result", msg, len(r.made))
	}
	return d.update
}

// nextAfter names the step that runs after step, not counting the ones
// skipped ("end of run" when none).
func (r *lifecycle) nextAfter(step string, skipping []string) string {
	after := false
	for _, row := range r.steps {
		if row.Name == step {
			after = true
			continue
		}
		if after && row.State == StepPending && !slices.Contains(skipping, row.Name) {
			return row.Name
		}
	}
	return "end of run"
}

// dependants lists the pending later steps that need what step would
// have produced: outputs their templates reference ({OktaUser.id}), or
// the account it creates on a target where the run has no linked account
// yet. Transitive: a dependant's own dependants are listed too.
func (r *lifecycle) dependants(step string) []string {
	if !r.ui {
		return nil
	}
	var deps []string
	entities, targets := map[string]bool{}, map[string]bool{}
	produces := func(st activities.PlannedStep) {
		if st.Produces != "" {
			entities[st.Produces] = true
		}
		if st.Traits().Links && r.accounts[st.Target] == "" {
			targets[st.Target] = true
		}
	}
	after := false
	for _, st := range r.plan.Steps {
		if !after {
			if st.Name == step {
				after = true
				produces(st)
			}
			continue
		}
		if row := r.row(st.Name); row == nil || row.State != StepPending {
			continue
		}
		usesAccount := targets[st.Target] && st.Traits().UsesAccount
		if usesAccount || slices.ContainsFunc(st.Uses, func(e string) bool { return entities[e] }) {
			deps = append(deps, st.Name)
			produces(st)
		}
	}
	return deps
}

func (r *lifecycle) setState(ctx workflow.Context, state, failedStep string) {
	prev := r.state
	r.state = state
	if state != prev && state != contract.StateRunning {
		r.countState(ctx)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		saEmployeeID.ValueSet(r.in.EmployeeID),
		saEvent.ValueSet(r.in.Kind),
		saState.ValueSet(state),
		saFailedStep.ValueSet(failedStep))
	r.showDetails(ctx)
	if r.ui {
		r.report(ctx, prev)
	}
}

// countState counts the run entering its state (contract.MetricRuns; the
// SDK's handler counts nothing on replay, and metrics are no commands).
func (r *lifecycle) countState(ctx workflow.Context) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": r.in.Kind, "state": r.state}).
		Counter(contract.MetricRuns).Inc(1)
}

// waitStates are the states a run reports to its identity, which mirrors
// them (and the way back to Running).
var waitStates = []string{contract.StateNeedsAttention, contract.StateBlocked, contract.StateWaiting}

// report tells the parent identity the run's state when it starts or
// stops waiting, so the person's identity workflow shows it too.
func (r *lifecycle) report(ctx workflow.Context, prev string) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil || ctx.Err() != nil || prev == r.state ||
		!slices.Contains(waitStates, r.state) && !(r.state == contract.StateRunning && slices.Contains(waitStates, prev)) {
		return
	}
	cs := ChildState{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, State: r.state, FailedStep: r.waitingOn,
		Details: r.details(ctx)}
	// Best effort: the identity learns the final state from the result.
	r.reporting = true
	_ = workflow.SignalExternalWorkflow(ctx, parent.ID, "", contract.SignalChildState, cs).Get(ctx, nil)
	r.reporting = false
}

// reportLink tells the parent identity the account a step has just
// created, adopted or linked in target, so reconciliation, the attribute
// sync and starter status see it while the run goes on or waits for an
// operator (a link known only at the run's end made a waiting joiner's
// new account an orphan). Not waited for: the result carries it too.
//
// The "link-at-write" guard keeps runs started before it (no marker: no
// signal) replaying; joiner.json, mover.json, leaver.json and the
// *-before-links.json fixtures replay that old branch. It can go, with
// those fixtures, once no lifecycle run started before 2026-12-07 is open
// (a run can wait for an operator indefinitely: check with
// `starter list --state NeedsAttention`).
func (r *lifecycle) reportLink(ctx workflow.Context, target string) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil || r.accounts[target] == "" || !r.newer(ctx, "link-at-write") {
		return
	}
	workflow.SignalExternalWorkflow(ctx, parent.ID, "", contract.SignalAccountLinked, AccountLink{
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Target: target,
		AccountID: r.accounts[target], Identifier: r.idents[target], State: r.states[target]})
}

// reportState tells the parent identity that a linked account's state
// changed while its link did not (a leaver's disable, a pre-hire's enable,
// a mover's reactivation), so starter status reads "disabled" while the
// run waits for its delete. The "link-state" guard keeps runs of the
// link-at-write shape started before it (2026-12-07) replaying without the
// signal: a pre-hire joiner that enables its account on the start date
// (guard-link-state-old.json replays it), or a run whose step result, with
// the state, a newer worker recorded while an older one ran its workflow
// task. Runs from before link-at-write ask too, but reportLink's own guard
// stops them. It can go, with that fixture, together with "link-at-write"
// (a pre-hire joiner waits for its start date: check with `starter list
// --state Waiting` as well).
func (r *lifecycle) reportState(ctx workflow.Context, target string) {
	if workflow.GetInfo(ctx).ParentWorkflowExecution == nil || r.accounts[target] == "" || !r.newer(ctx, "link-state") {
		return
	}
	r.reportLink(ctx, target)
}

// newer reports whether the run takes the change guarded by changeID (a
// guard of version 1 over workflow.DefaultVersion). A lean run
// (VersionLean) takes every change older than it without a marker: each
// GetVersion costs a marker event and a TemporalChangeVersion upsert, a
// visibility write, per run.
func (r *lifecycle) newer(ctx workflow.Context, changeID string) bool {
	return r.lean || workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, 1) == 1
}

// showDetails sets the run's current details (the UI's run page).
func (r *lifecycle) showDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, r.details(ctx))
}

// details is the run's current details in Markdown: the state, where the
// run is, and for a run waiting on an operator what happened and the exact
// command and Update payload that resolve it; then the step table.
func (r *lifecycle) details(ctx workflow.Context) string {
	var b strings.Builder
	emp := r.in.EmployeeID
	step := r.waitingOn
	if step == "" {
		step = r.current
	}
	shown := ShownSteps(r.steps)
	n, m := 0, len(shown)
	for i, row := range shown {
		if row.Name == step {
			n = i + 1
		}
	}
	at := ""
	if n > 0 {
		at = fmt.Sprintf(" at step %d of %d", n, m)
	}
	does := ""
	if st, ok := r.planned(step); ok {
		does = " — " + st.Does()
	}
	switch r.state {
	case contract.StateNeedsAttention, contract.StateBlocked:
		what := "failed"
		if r.state == contract.StateBlocked {
			what = "is blocked by the mass-change safety limit"
		}
		fmt.Fprintf(&b, "**%s**%s: `%s`%s %s.\n\n", r.state, at, step, does, what)
		if row := r.row(step); row != nil {
			if r.state == contract.StateNeedsAttention {
				fmt.Fprintf(&b, "Attempts: %d · last failure %s\n\n", max(row.Attempts, 1), r.failedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
			}
			fmt.Fprintf(&b, "Error: %s\n\n", row.LastError)
		}
		b.WriteString("**To resolve** (CLI, or More Actions → Send an Update with this payload):\n\n")
		if r.state == contract.StateNeedsAttention {
			fmt.Fprintf(&b, "- Fix the cause, then retry: `starter retry %s --step %s` · RetryStep `{\"step\": %q, \"reason\": \"…\", \"operator\": \"…\"}`\n", emp, step, step)
			if step != stepPlan && step != stepSchedule {
				if deps := r.dependants(step); len(deps) > 0 {
					fmt.Fprintf(&b, "- Skip it and the steps that use its outputs (%s): `starter skip %s --step %s --cascade --reason …` · SkipStep `{\"step\": %q, \"cascade\": true, \"reason\": \"…\"}`\n",
						strings.Join(deps, ", "), emp, step, step)
				} else {
					fmt.Fprintf(&b, "- Skip it: `starter skip %s --step %s --reason …` · SkipStep `{\"step\": %q, \"reason\": \"…\"}`\n", emp, step, step)
				}
			}
		} else {
			fmt.Fprintf(&b, "- Release (one release covers all of this person's destructive steps): `starter release %s` or `starter release --all` · Release `{\"step\": %q, \"reason\": \"…\"}`\n", emp, step)
		}
		fmt.Fprintf(&b, "- Stop the run: `starter abort %s --reason …` · Abort `{\"reason\": \"…\"}`\n\n", emp)
	case contract.StateRunning:
		fmt.Fprintf(&b, "**Running**%s: `%s`%s\n\n", at, step, does)
	case contract.StateWaiting:
		if step != "" {
			fmt.Fprintf(&b, "**Waiting** before step %d of %d `%s`%s\n\n", n, m, step, does)
		} else {
			b.WriteString("**Waiting** for the start date\n\n")
		}
	default:
		fmt.Fprintf(&b, "**%s**", r.state)
		if len(r.skipped) > 0 {
			fmt.Fprintf(&b, " — skipped: %s", strings.Join(r.skipped, ", "))
		}
		b.WriteString("\n\n")
	}
	b.WriteString("**Steps**\n\n")
	for _, row := range shown {
		fmt.Fprintf(&b, "- `%s` %s", row.Name, row.State)
		if row.Attempts > 1 {
			fmt.Fprintf(&b, " (%d attempts)", row.Attempts)
		}
		if d := row.Decision; d != nil {
			fmt.Fprintf(&b, " — %s by %s", d.Update, orUnknown(d.Operator))
			if d.Reason != "" {
				fmt.Fprintf(&b, ": %s", d.Reason)
			}
		} else if row.Note != "" && row.State == StepSkipped {
			fmt.Fprintf(&b, " — %s", row.Note)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "an operator (no name given)"
	}
	return s
}

// planned returns the planned step named name.
func (r *lifecycle) planned(name string) (activities.PlannedStep, bool) {
	for _, st := range r.plan.Steps {
		if st.Name == name {
			return st, true
		}
	}
	return activities.PlannedStep{}, false
}

func (r *lifecycle) row(name string) *StepInfo {
	for i := range r.steps {
		if r.steps[i].Name == name {
			return &r.steps[i]
		}
	}
	return nil
}

func (r *lifecycle) run(ctx workflow.Context) error {
	// "revoke-grants": every leaver started before it (2026-12-07) replays
	// without the requests.revoke step (leaver*.json replay that branch).
	// It can go, with those fixtures, once none of them is open: a leaver
	// waits for its delayed delete (the policy's delete after, such as
	// 30d) and for an operator indefinitely (`starter list`).
	if r.in.Kind == policy.KindLeaver && r.newer(ctx, "revoke-grants") {
		r.revokeGrants(ctx)
	}
	// "review-grants": movers started before it (2026-12-07) have no
	// GrantReview in their plan and never ask; only a session-shape mover
	// whose Plan activity ran on a newer worker while an older one ran its
	// workflow task takes the old branch (no fixture: none was recorded).
	// It can go once no mover started before it is open.
	if r.in.Kind == policy.KindMover && r.plan.GrantReview != "" &&
		workflow.GetVersion(ctx, "review-grants", workflow.DefaultVersion, 1) == 1 {
		r.reviewGrants(ctx)
	}
	for _, st := range r.plan.Steps {
		if st.Traits().Notification && !st.OnCompleted || st.SkipReason != "" {
			continue
		}
		row := r.row(st.Name)
		if row.State == StepSkipped {
			continue // skipped with an earlier step (SkipStep with cascade)
		}
		r.current = st.Name
		if st.Delay > 0 {
			if err := r.delay(ctx, st); err != nil {
				return err
			}
			// Only what waits for a delay is moot after a rehire.
			r.skipRest = r.superseded
		}
		if r.skipRest && !st.Traits().Notification {
			row.State, row.Note, row.Time = StepSuperseded, "a newer HR event arrived: not run", workflow.Now(ctx)
			continue
		}
		if st.Destructive && r.plan.Limited() && !r.permitted {
			if err := r.permit(ctx, st, row); err != nil {
				return err
			}
			if r.state == contract.StateAborted {
				return nil
			}
		}
		if st.Action == policy.ActionApproval {
			approved, err := r.approval(ctx, st, row)
			if err != nil || !approved && r.state == contract.StateAborted {
				return err
			}
			continue
		}
		for {
			row.State, row.Time = StepRunning, workflow.Now(ctx)
			row.Attempts++
			r.showDetails(ctx)
			res, err := r.exec(ctx, st, notice{outcome: contract.OnCompleted})
			if err == nil {
				before, state := r.accounts[st.Target]+"\x00"+r.idents[st.Target], r.states[st.Target]
				r.record(st, res, row)
				r.auditStep(ctx, st, res)
				if r.accounts[st.Target]+"\x00"+r.idents[st.Target] != before {
					r.reportLink(ctx, st.Target)
				} else if r.states[st.Target] != state {
					r.reportState(ctx, st.Target)
				}
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.sessionLost() || r.holderLost(ctx, err) {
				row.Attempts--
				continue // a live worker re-runs the step (and re-issues the secret)
			}
			row.State, row.LastError, row.Time = StepFailed, errorText(err), workflow.Now(ctx)
			r.auditFailure(ctx, st, err)
			d, err := r.waitForOperator(ctx, st, contract.StateNeedsAttention, row.LastError)
			if err != nil {
				return err
			}
			if d.update == contract.UpdateAbort {
				return nil
			}
			if d.update == contract.UpdateSkipStep {
				r.skip(ctx, row, d)
				break
			}
			maps.Copy(r.attrs, d.attrs) // RetryStep with corrected attributes
		}
	}
	if !r.in.EnableAt.IsZero() && r.in.EnableAt.After(workflow.Now(ctx)) {
		if err := r.enableOnStartDate(ctx); err != nil || r.state == contract.StateAborted {
			return err
		}
	}
	r.current = ""
	final := contract.StateCompleted
	if r.ui && len(r.skipped) > 0 {
		final = contract.StateCompletedWithSkips
	}
	r.setState(ctx, final, "")
	return nil
}

// skip marks a failed step skipped (and, with cascade, the later steps
// that need its outputs), as an operator decided.
func (r *lifecycle) skip(ctx workflow.Context, row *StepInfo, d decision) {
	row.State, row.Time = StepSkipped, workflow.Now(ctx)
	r.skipped = append(r.skipped, row.Name)
	for _, name := range d.cascade {
		if dep := r.row(name); dep != nil && dep.State == StepPending {
			dep.State, dep.Note, dep.Time = StepSkipped, "skipped with "+row.Name+" (cascade)", workflow.Now(ctx)
			r.skipped = append(r.skipped, name)
		}
	}
}

// delay waits before a delayed step (a leaver's delete after the grace
// period). A rehire's SignalSupersede ends the wait: the step and the ones
// after it are superseded.
func (r *lifecycle) delay(ctx workflow.Context, st activities.PlannedStep) error {
	r.releaseSecrets(ctx)
	r.setState(ctx, contract.StateWaiting, "")
	opts := workflow.TimerOptions{Summary: "wait before " + st.Name}
	if workflow.GetVersion(ctx, "supersede-delay", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		if err := workflow.NewTimerWithOptions(ctx, st.Delay, opts).Get(ctx, nil); err != nil {
			return err
		}
	} else if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: st.Delay, TimerOptions: opts},
		func() bool { return r.superseded }); err != nil {
		return err
	}
	r.setState(ctx, contract.StateRunning, "")
	return nil
}

// permit asks the governor; when blocked, waits for Release or Abort.
func (r *lifecycle) permit(ctx workflow.Context, st activities.PlannedStep, row *StepInfo) error {
	var a *activities.Activities
	gctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID: "governor." + st.Name, Summary: "ask safety limit before " + st.Name,
		StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry,
	})
	var p activities.Permit
	// One permit per person (run): the limit counts people, and a later
	// destructive step of the same run (a delayed delete) is covered.
	key := workflow.GetInfo(ctx).WorkflowExecution.ID
	if !r.ui {
		key += "/" + st.Name
	}
	call := activities.GovernorCall{
		WorkflowID: contract.GovernorWorkflowID, WorkflowType: contract.GovernorWorkflowName, TaskQueue: contract.TaskQueue, Update: contract.UpdatePermit,
		Request: activities.PermitRequest{Key: key,
			MaxPerHour: r.plan.MaxDestructivePerHour, MaxPercent: r.plan.MaxDestructivePercent},
	}
	if err := workflow.ExecuteActivity(gctx, a.AskGovernor, call).Get(ctx, &p); err != nil {
		// The governor unreachable for good: fail safe, wait for an operator.
		p = activities.Permit{Reason: "safety limit unavailable: " + errorText(err)}
	}
	if p.Granted {
		r.permitted = r.ui
		return nil
	}
	row.State, row.LastError, row.Time = StepBlocked, p.Reason, workflow.Now(ctx)
	r.emit(ctx, audit.Record{Action: audit.SafetyHold, Target: st.Target, Step: st.Name, Detail: p.Reason})
	if workflow.GetVersion(ctx, "notify-blocked", workflow.DefaultVersion, 1) == 1 {
		r.notify(ctx, notice{outcome: contract.OnBlocked, step: st.Name, err: p.Reason},
			func(p activities.PlannedStep) bool { return p.OnBlocked })
	}
	d, err := r.waitForOperator(ctx, st, contract.StateBlocked, p.Reason)
	if err != nil || d.update == contract.UpdateAbort {
		return err
	}
	row.State, row.LastError = StepPending, ""
	r.permitted = r.ui
	return nil
}

// waitForOperator parks the run in state (NeedsAttention or Blocked) until
// an operator update arrives.
func (r *lifecycle) waitForOperator(ctx workflow.Context, st activities.PlannedStep, state, reason string) (decision, error) {
	r.releaseSecrets(ctx)
	r.waitingOn = st.Name
	r.decision = nil
	r.failedAt = workflow.Now(ctx)
	r.setState(ctx, state, st.Name)
	if state == contract.StateNeedsAttention {
		r.alert(ctx, notice{outcome: contract.OnNeedsAttention, step: st.Name, err: reason})
	}
	// A newer HR event the run must give way to (a termination, or a
	// rehire of a leaver) ends the wait as an abort.
	gives := workflow.GetVersion(ctx, "supersede-operator-wait", workflow.DefaultVersion, 1) == 1
	if err := workflow.Await(ctx, func() bool { return r.decision != nil || gives && r.superseded }); err != nil {
		return decision{}, err
	}
	if r.decision == nil {
		r.decision = &decision{update: contract.UpdateAbort, record: Decision{Update: contract.UpdateAbort, Operator: "jml",
			Reason: "superseded: a newer HR event for this person (a termination, or a rehire) is queued", Time: workflow.Now(ctx)}}
	}
	d := *r.decision
	r.decision, r.waitingOn = nil, ""
	d.record.Step = st.Name
	r.decisions = append(r.decisions, d.record)
	r.auditDecision(ctx, st, d, state == contract.StateBlocked, reason)
	if row := r.row(st.Name); row != nil {
		rec := d.record
		row.Decision = &rec
	}
	if d.update == contract.UpdateAbort {
		if row := r.row(st.Name); row != nil {
			row.State, row.Time = StepAborted, workflow.Now(ctx)
		}
		if d.rollback {
			r.rollback(ctx)
		}
		r.setState(ctx, contract.StateAborted, "")
		left := "nothing"
		if len(r.made) > 0 {
			left = "\n- " + strings.Join(r.made, "\n- ")
		}
		by := "by " + orUnknown(d.record.Operator)
		if d.record.Reason != "" {
			by += ": " + d.record.Reason
		}
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Aborted** at step `%s` %s.\n\nLeft in place by this run: %s\n\n%s",
			st.Name, by, left, r.details(ctx)))
		r.notify(ctx, notice{outcome: contract.OnAborted, step: st.Name, err: reason},
			func(p activities.PlannedStep) bool { return p.OnAborted })
		return d, nil
	}
	r.setState(ctx, contract.StateRunning, "")
	return d, nil
}

// alert fires the notify steps that ask for NeedsAttention (best effort).
func (r *lifecycle) alert(ctx workflow.Context, n notice) {
	r.notify(ctx, n, func(p activities.PlannedStep) bool { return p.OnNeedsAttention })
}

// notify fires the notify steps that want n (best effort).
func (r *lifecycle) notify(ctx workflow.Context, n notice, wants func(activities.PlannedStep) bool) {
	for _, st := range r.plan.Steps {
		if !st.Traits().Notification || !wants(st) || st.SkipReason != "" {
			continue
		}
		res, err := r.exec(ctx, st, n)
		if err != nil {
			workflow.GetLogger(ctx).Warn("notification failed", "step", st.Name, "outcome", n.outcome)
			r.auditFailure(ctx, st, err)
			continue
		}
		r.auditStep(ctx, st, res)
	}
	r.releaseSecrets(ctx)
}

func (r *lifecycle) record(st activities.PlannedStep, res activities.StepResult, row *StepInfo) {
	row.State, row.LastError, row.Note = StepDone, "", res.Note
	if res.EntityType != "" && len(res.Outputs) > 0 {
		if r.outputs[res.EntityType] == nil {
			r.outputs[res.EntityType] = map[string]string{}
		}
		maps.Copy(r.outputs[res.EntityType], res.Outputs)
	}
	maps.Copy(r.secrets, res.Secrets)
	if res.Queue != "" {
		r.holder = res.Queue
	}
	if res.Correlation != "" {
		row.Note = res.Correlation + ": " + res.Note
	}
	if res.AccountState != "" && res.AccountID != "" && (st.Traits().Links || res.AccountID == r.accounts[st.Target]) {
		r.states[st.Target] = res.AccountState
	}
	if st.Traits().Links && res.AccountID != "" {
		r.accounts[st.Target] = res.AccountID
		if res.Identifier != "" {
			r.idents[st.Target] = res.Identifier
		}
		if res.Correlation == activities.Created {
			r.created = append(r.created, st.Target)
			r.made = append(r.made, fmt.Sprintf("account %s in %s (created by this run)", res.AccountID, st.Target))
		}
	}
	if st.Traits().Groups && res.AccountID != "" {
		r.made = append(r.made, fmt.Sprintf("group changes in %s for account %s: %s", st.Target, res.AccountID, res.Note))
	}
	if st.Traits().Unlinks {
		delete(r.accounts, st.Target)
		delete(r.idents, st.Target)
		delete(r.states, st.Target)
	}
}

// notice is what a notify step reports: the run's outcome
// (contract.OnCompleted, contract.OnNeedsAttention) and the failed step.
type notice struct{ outcome, step, err string }

func (r *lifecycle) exec(ctx workflow.Context, st activities.PlannedStep, n notice) (activities.StepResult, error) {
	sctx, err := r.stepContext(ctx)
	if err != nil {
		return activities.StepResult{}, err
	}
	r.execs[st.Name]++
	id := st.Name
	if n := r.execs[st.Name]; n > 1 {
		id = fmt.Sprintf("%s#%d", st.Name, n)
	}
	opts := workflow.ActivityOptions{
		ActivityID:          id,
		Summary:             st.Summary(),
		StartToCloseTimeout: r.plan.StepTimeout,
		RetryPolicy:         &stepRetry,
	}
	if st.MaxAttempts > 0 {
		// A notify step's own max_attempts (only plans made since carry it).
		rp := stepRetry
		rp.MaximumAttempts = int32(st.MaxAttempts)
		opts.RetryPolicy = &rp
	}
	if r.queues && st.Secret && r.holder != "" {
		// The worker that holds the run's secrets; if it does not pick
		// the step up soon, it is gone (holderLost).
		opts.TaskQueue, opts.ScheduleToStartTimeout = r.holder, r.hostTimeout()
	}
	actx := workflow.WithActivityOptions(sctx, opts)
	in := activities.StepInput{
		Owner:         workflow.GetInfo(ctx).WorkflowExecution.ID,
		Kind:          r.in.Kind,
		Step:          st,
		Attributes:    r.attrs,
		OldAttributes: r.in.OldAttributes,
		Outputs:       r.outputs,
		Secrets:       r.secrets,
		Accounts:      r.accounts,
		Identifiers:   r.idents,
		Rerun:         r.execs[st.Name] > 1,
		Inactive:      !r.in.EnableAt.IsZero() && r.in.EnableAt.After(workflow.Now(ctx)),
		Reactivate:    r.in.Kind == policy.KindJoiner,
	}
	if st.Traits().Notification {
		in.Outcome, in.FailedStep, in.Error = n.outcome, n.step, n.err
	}
	var res activities.StepResult
	err = workflow.ExecuteActivity(actx, st.Activity(), in).Get(ctx, &res)
	return res, err
}

// stepContext returns the context steps run in: a worker session when the
// plan handles secrets.
func (r *lifecycle) stepContext(ctx workflow.Context) (workflow.Context, error) {
	if r.queues || !r.plan.NeedsSession {
		return ctx, nil
	}
	if r.session != nil && !r.sessionLost() {
		return r.session, nil
	}
	r.releaseSecrets(ctx)
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: r.plan.StepTimeout})
	for {
		s, err := workflow.CreateSession(sctx, &workflow.SessionOptions{
			CreationTimeout:  time.Minute,
			ExecutionTimeout: 24 * time.Hour,
			HeartbeatTimeout: r.plan.SessionHeartbeat,
		})
		if err == nil {
			r.session = s
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// No session worker free right now: wait and try again.
		if err := workflow.Sleep(ctx, 10*time.Second); err != nil {
			return nil, err
		}
	}
}

func (r *lifecycle) sessionLost() bool {
	return r.session != nil && workflow.GetSessionInfo(r.session).SessionState == workflow.SessionStateFailed
}

func (r *lifecycle) hostTimeout() time.Duration {
	if r.plan.HostTimeout > 0 {
		return r.plan.HostTimeout
	}
	return 20 * time.Second
}

// holderLost reports whether err says the worker holding the run's
// secrets never picked the step up (it is gone); the run then forgets it,
// and the step re-runs on any worker, which re-issues the secret.
func (r *lifecycle) holderLost(ctx workflow.Context, err error) bool {
	var te *temporal.TimeoutError
	if r.queues && r.holder != "" && errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		workflow.GetLogger(ctx).Warn("the worker holding the run's secrets is gone; the step re-runs elsewhere", "queue", r.holder)
		r.holder = ""
		return true
	}
	return false
}

// releaseSecrets wipes the run's vault entries on the worker that holds
// them (its task queue, or its session, which it then ends), from a
// disconnected context so a canceled run wipes too.
func (r *lifecycle) releaseSecrets(ctx workflow.Context) {
	if r.queues {
		if r.holder == "" {
			return
		}
		var a *activities.Activities
		r.forgets++
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		fctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			ActivityID: fmt.Sprintf("vault.forget.%d", r.forgets), Summary: "wipe secrets of this run",
			TaskQueue: r.holder, ScheduleToStartTimeout: 10 * time.Second,
			StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		_ = workflow.ExecuteActivity(fctx, a.ForgetSecrets, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(dctx, nil)
		r.holder = ""
		return
	}
	if r.session == nil {
		return
	}
	if !r.sessionLost() {
		var a *activities.Activities
		r.forgets++
		// Disconnected: a canceled run must still wipe its secrets.
		sctx, _ := workflow.NewDisconnectedContext(r.session)
		fctx := workflow.WithActivityOptions(sctx, workflow.ActivityOptions{
			ActivityID: fmt.Sprintf("vault.forget.%d", r.forgets), Summary: "wipe secrets of this run",
			StartToCloseTimeout: 10 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2},
		})
		if ctx.Err() == nil {
			_ = workflow.ExecuteActivity(fctx, a.ForgetSecrets, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, nil)
		}
	}
	workflow.CompleteSession(r.session)
	r.session = nil
	// Handles of the wiped entries no longer resolve; a later step that
	// needs the password re-issues it.
}

// enableOnStartDate waits for the start date, then enables every account
// the run created disabled.
func (r *lifecycle) enableOnStartDate(ctx workflow.Context) error {
	r.releaseSecrets(ctx)
	r.setState(ctx, contract.StateWaiting, "")
	wait := r.in.EnableAt.Sub(workflow.Now(ctx))
	if err := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: "wait for start date"}).Get(ctx, nil); err != nil {
		return err
	}
	r.setState(ctx, contract.StateRunning, "")
	var a *activities.Activities
	for _, st := range r.plan.Steps {
		id := r.accounts[st.Target]
		if !st.Traits().Links || id == "" {
			continue
		}
		name := st.Target + ".enable"
		r.steps = append(r.steps, StepInfo{Name: name, Action: "enable", Target: st.Target, State: StepPending})
		row := &r.steps[len(r.steps)-1]
		step := activities.PlannedStep{Name: name, Action: "enable", Target: st.Target}
		for {
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				ActivityID: name, Summary: step.Summary(),
				StartToCloseTimeout: r.plan.StepTimeout, RetryPolicy: &stepRetry,
			})
			row.State, row.Time = StepRunning, workflow.Now(ctx)
			row.Attempts++
			err := workflow.ExecuteActivity(actx, a.EnableAccount, st.Target, id).Get(ctx, nil)
			if err == nil {
				row.State = StepDone
				if r.states[st.Target] != contract.AccountActive {
					r.states[st.Target] = contract.AccountActive
					r.reportState(ctx, st.Target)
				}
				r.auditStep(ctx, step, activities.StepResult{AccountID: id})
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			row.State, row.LastError = StepFailed, errorText(err)
			r.auditFailure(ctx, step, err)
			d, err := r.waitForOperator(ctx, step, contract.StateNeedsAttention, row.LastError)
			if err != nil || d.update == contract.UpdateAbort {
				return err
			}
			if d.update == contract.UpdateSkipStep {
				r.skip(ctx, row, d)
				break
			}
		}
	}
	return nil
}

// errorText is the failure shown in the step table and the UI: the error
// type and the (already scrubbed) message of the activity's failure.
func errorText(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type() + ": " + app.Message()
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timeout: " + to.TimeoutType().String()
	}
	if temporal.IsCanceledError(err) {
		return "canceled"
	}
	if temporal.IsTerminatedError(err) {
		return "terminated"
	}
	return "error"
}

// Pseudo-steps of the step table: computing the run's effective time and
// its plan. They fail like steps and wait for an operator like steps, so
// no HR event ends without a decision.
const (
	stepSchedule = "schedule"
	stepPlan     = "plan"
)

func (r *lifecycle) result() LifecycleResult {
	res := LifecycleResult{State: r.state, Attributes: r.attrs, Accounts: r.accounts, Identifiers: r.idents,
		Skipped: r.skipped, Decisions: r.decisions}
	if len(r.states) > 0 {
		res.AccountStates = r.states
	}
	if r.state == contract.StateAborted {
		res.LeftInPlace = r.made
	}
	return res
}

// planSteps runs the Plan activity. A plan that fails (a policy the event
// does not satisfy) waits for an operator: RetryStep re-plans with the
// current policy and the corrected attributes, Abort ends the run.
func (r *lifecycle) planSteps(ctx workflow.Context) error {
	var a *activities.Activities
	for attempt := 1; ; attempt++ {
		id := stepPlan
		if attempt > 1 {
			id = fmt.Sprintf("%s#%d", stepPlan, attempt)
		}
		in := activities.PlanInput{Kind: r.in.Kind, Rehire: r.in.Rehire, EventID: r.in.EventID, Attributes: r.attrs,
			OldAttributes: r.in.OldAttributes}
		var err error
		if r.queues {
			// A local activity: no task round trip, and its result is still
			// recorded in history (a marker), so a policy edit never
			// changes a running workflow.
			lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
				StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry, Summary: "plan steps from policy",
			})
			err = workflow.ExecuteLocalActivity(lctx, a.Plan, in).Get(ctx, &r.plan)
		} else {
			pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				ActivityID: id, Summary: "plan steps from policy",
				StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry,
			})
			err = workflow.ExecuteActivity(pctx, a.Plan, in).Get(ctx, &r.plan)
		}
		row := r.row(stepPlan)
		if err == nil {
			if row != nil {
				row.State, row.LastError, row.Time = StepDone, "", workflow.Now(ctx)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if workflow.GetVersion(ctx, "plan-needs-attention", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			r.setState(ctx, contract.StateAborted, "")
			return fmt.Errorf("plan: %w", err)
		}
		if row == nil {
			r.steps = append(r.steps, StepInfo{Name: stepPlan, Action: stepPlan})
			row = &r.steps[len(r.steps)-1]
		}
		row.Attempts++
		row.State, row.LastError, row.Time = StepFailed, errorText(err), workflow.Now(ctx)
		d, err := r.waitForOperator(ctx, activities.PlannedStep{Name: stepPlan, Action: stepPlan}, contract.StateNeedsAttention, row.LastError)
		if err != nil || d.update == contract.UpdateAbort {
			return err
		}
		maps.Copy(r.attrs, d.attrs)
	}
}

// reschedule is the schedule pseudo-step of an event the identity could
// not schedule: it waits for an operator's RetryStep (with corrected
// attributes), computes the effective time again, and waits for it.
func (r *lifecycle) reschedule(ctx workflow.Context) error {
	r.steps = append(r.steps, StepInfo{Name: stepSchedule, Action: stepSchedule, State: StepFailed,
		Attempts: 1, LastError: r.in.ScheduleError, Time: workflow.Now(ctx)})
	reason := r.in.ScheduleError
	var a *activities.Activities
	for attempt := 2; ; attempt++ {
		d, err := r.waitForOperator(ctx, activities.PlannedStep{Name: stepSchedule, Action: stepSchedule}, contract.StateNeedsAttention, reason)
		if err != nil || d.update == contract.UpdateAbort {
			return err
		}
		maps.Copy(r.attrs, d.attrs)
		row := r.row(stepSchedule)
		row.State, row.Attempts, row.Time = StepRunning, attempt, workflow.Now(ctx)
		sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID: fmt.Sprintf("%s#%d", stepSchedule, attempt), Summary: "compute the effective time",
			StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry,
		})
		var sc activities.Schedule
		in := activities.ScheduleInput{Kind: r.in.Kind, EffectiveAt: r.in.EffectiveAt, Attributes: r.attrs,
			OldAttributes: r.in.OldAttributes}
		if err := workflow.ExecuteActivity(sctx, a.Schedule, in).Get(ctx, &sc); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			reason = errorText(err)
			row.State, row.LastError = StepFailed, reason
			continue
		}
		row.State, row.LastError = StepDone, ""
		r.in.EnableAt = sc.EnableAt
		if wait := sc.RunAt.Sub(workflow.Now(ctx)); wait > 0 {
			r.setState(ctx, contract.StateWaiting, "")
			if err := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: "wait for effective date"}).Get(ctx, nil); err != nil {
				return err
			}
			r.setState(ctx, contract.StateRunning, "")
		}
		return nil
	}
}

// rollback deprovisions (disables, drops the groups of) every account this
// run created: abort --rollback. It never deletes. Each shows in the step
// table as <target>.rollback; a failure is recorded there, not retried
// by an operator: the run is being aborted.
func (r *lifecycle) rollback(ctx workflow.Context) {
	for _, target := range r.created {
		name := target + ".rollback"
		st := activities.RollbackStep(name, target)
		r.steps = append(r.steps, StepInfo{Name: name, Action: st.Action, Target: target, State: StepRunning, Attempts: 1, Time: workflow.Now(ctx)})
		row := &r.steps[len(r.steps)-1]
		res, err := r.exec(ctx, st, notice{})
		row.Time = workflow.Now(ctx)
		if err != nil {
			row.State, row.LastError = StepFailed, errorText(err)
			r.made = append(r.made, fmt.Sprintf("rollback of account %s in %s failed: %s", r.accounts[target], target, row.LastError))
			continue
		}
		row.State, row.Note = StepDone, "rolled back: "+res.Note
		r.auditStep(ctx, st, res)
		r.made = append(r.made, fmt.Sprintf("rollback: account %s in %s disabled, groups dropped", r.accounts[target], target))
	}
}

// stepRevokeGrants is the leaver's pseudo-step that ends the person's
// time-bound access grants (access requests), first and at once.
const stepRevokeGrants = "requests.revoke"

// revokeGrants signals every open access request of the person and waits
// until each has revoked its grant (read back at the target) or stopped
// asking. A failure is shown in the step table; the leaver goes on (its
// own steps deprovision the accounts).
func (r *lifecycle) revokeGrants(ctx workflow.Context) {
	var a *activities.Activities
	r.grantsStep(ctx, stepRevokeGrants, "revoke time-bound access grants", a.RevokeGrantsOf, r.in.EmployeeID, revokedNote)
}

// revokedNote is the requests.revoke row's note once done.
func revokedNote(n int) string { return fmt.Sprintf("%d access request(s) revoked", n) }

// stepReviewGrants is the mover's pseudo-step that applies
// approvals.on_move to the person's time-bound grants, first.
const stepReviewGrants = "requests.review"

// reviewGrants asks each grant in force to ask its approvers again
// (reapprove), or revokes every open request and waits for them (revoke).
// A failure shows in the step table; the mover goes on.
func (r *lifecycle) reviewGrants(ctx workflow.Context) {
	var a *activities.Activities
	verb := "revoked"
	if r.plan.GrantReview == policy.OnMoveReapprove {
		verb = "asked for approval again"
	}
	r.grantsStep(ctx, stepReviewGrants, r.plan.GrantReview+" time-bound access grants after a move", a.ReviewGrantsOf,
		activities.GrantReview{EmployeeID: r.in.EmployeeID, Action: r.plan.GrantReview, Why: r.plan.GrantReviewWhy},
		func(n int) string { return fmt.Sprintf("%d access request(s) %s (%s)", n, verb, r.plan.GrantReviewWhy) })
}

// grantsStep runs a pseudo-step over the person's access requests as the
// first row of the step table: the activity answers how many requests it
// acted on. A failure shows in the row; the run goes on.
func (r *lifecycle) grantsStep(ctx workflow.Context, name, summary string, activity, arg any, note func(int) string) {
	r.steps = append([]StepInfo{{Name: name, Action: name, State: StepRunning, Attempts: 1,
		Time: workflow.Now(ctx)}}, r.steps...)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: name,
		Summary: summary, StartToCloseTimeout: 10 * time.Minute, HeartbeatTimeout: time.Minute,
		RetryPolicy: &stepRetry})
	var n int
	err := workflow.ExecuteActivity(actx, activity, arg).Get(ctx, &n)
	row := r.row(name)
	row.Time = workflow.Now(ctx)
	if err != nil {
		row.State, row.LastError = StepFailed, errorText(err)
		return
	}
	row.State, row.Note = StepDone, note(n)
}

// approval runs an approval step: an Approval child workflow asks, reminds,
// escalates and times out; the run waits (Waiting) for its answer. Approved,
// the run goes on; denied, it ends Aborted with the denial recorded; when
// no approver can be found (or the child fails) an operator decides, as for
// a failed step (RetryStep asks again).
func (r *lifecycle) approval(ctx workflow.Context, st activities.PlannedStep, row *StepInfo) (bool, error) {
	run := workflow.GetInfo(ctx).WorkflowExecution.ID
	for {
		r.releaseSecrets(ctx)
		r.execs[st.Name]++
		wid := "approval/" + run + "/" + st.Name
		if n := r.execs[st.Name]; n > 1 {
			wid += fmt.Sprintf("#%d", n)
		}
		row.State, row.Time, row.Note = StepRunning, workflow.Now(ctx), "waiting for approval: "+wid
		row.Attempts++
		r.setState(ctx, contract.StateWaiting, "")
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: wid,
			StaticSummary: "approval before the rest of " + run})
		in := activities.ApprovalInput{EmployeeID: r.in.EmployeeID, Attributes: r.attrs, Spec: *st.Spec.Approval, Run: run,
			What: fmt.Sprintf("approval of the %s run of %s to go on (step %s)", r.in.Kind, r.in.EmployeeID, st.Name)}
		var res RequestStatus
		err := workflow.ExecuteChildWorkflow(cctx, contract.ApprovalWorkflowName, in).Get(ctx, &res)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		r.setState(ctx, contract.StateRunning, "")
		now := workflow.Now(ctx)
		var last ApprovalDecision
		if n := len(res.Decisions); n > 0 {
			last = res.Decisions[n-1]
		}
		switch {
		case err == nil && res.Outcome == OutcomeApproved:
			row.State, row.Time, row.Note = StepDone, now, fmt.Sprintf("approved (%d of %d), last by %s via %s", res.Approvals, res.Quorum, last.Approver, last.Via)
			return true, nil
		case err == nil && res.Outcome == OutcomeDenied:
			d := Decision{Update: "Denied", Step: st.Name, Operator: last.Approver, Reason: last.Reason, Time: now}
			if last.Approver == "" {
				d.Operator, d.Reason = "jml", res.Note
			}
			row.State, row.Time, row.Decision = StepAborted, now, &d
			r.decisions = append(r.decisions, d)
			r.setState(ctx, contract.StateAborted, "")
			r.notify(ctx, notice{outcome: contract.OnAborted, step: st.Name, err: "approval denied"},
				func(p activities.PlannedStep) bool { return p.OnAborted })
			return false, nil
		}
		reason := res.Note
		if err != nil {
			reason = errorText(err)
		}
		row.State, row.LastError, row.Time = StepFailed, "approval: "+reason, now
		d, err := r.waitForOperator(ctx, st, contract.StateNeedsAttention, row.LastError)
		if err != nil || d.update == contract.UpdateAbort {
			return false, err
		}
		if d.update == contract.UpdateSkipStep {
			r.skip(ctx, row, d)
			return true, nil
		}
	}
}
