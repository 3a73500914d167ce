package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
)

// auditRetry: a record is retried until the store takes it, however long
// it is down; the run's history holds it meanwhile.
var auditRetry = temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    time.Minute,
	MaximumAttempts:    0, // unlimited
}

// auditTrail emits a run's audit records: each effect and decision is
// written the moment the run knows it, by a RecordAudit activity
// scheduled then (the scheduled activity is in history: durable) or, in a
// lean run, a local activity first (recordAudit), keyed
// <workflow>/<run>/<n>/<i> so it lands once whatever the retries. The run
// goes on while the store is down and waits for its records before it
// closes.
type auditTrail struct {
	// decided: the plan said whether this run records; on: it does.
	decided, on bool
	// pending are the records of decisions taken before the plan (the
	// schedule pseudo-step), sent once it is known.
	pending [][]audit.Record
	n       int
	sent    []workflow.Future
}

// startAudit decides, with the plan, whether the run records: the worker
// that planned it has an audit store, and the run started on code that
// records. The "audit-trail" guard is asked only when the plan says
// "audit", so most older histories (no "audit" in their plan) never reach
// it; its old branch is for a run of the session shape (Plan an activity,
// not a local one) whose Plan a newer worker with a store ran while a
// worker from before the guard ran its workflow task, during the rolling
// upgrade (guard-audit-trail-old.json replays it). It can go, with that
// fixture, once no lifecycle run started before 2026-12-07 is open (a run
// can wait for an operator indefinitely: check with `starter list
// --state NeedsAttention` and `--state Blocked`). A lean run does not ask
// (lifecycle.newer).
func (r *lifecycle) startAudit(ctx workflow.Context) {
	if r.audit.decided {
		return
	}
	r.audit.decided = true
	on := r.plan.Audit
	if r.plan.Flow == "" && len(r.audit.pending) > 0 &&
		workflow.GetVersion(ctx, "audit-unplanned", workflow.DefaultVersion, 1) == 1 {
		// No plan (the schedule or plan pseudo-step failed and an
		// operator aborted it): this worker says whether it records.
		// (Runs without the marker, lean ones too, recorded nothing here;
		// the guard can go once no lifecycle run started before
		// 2026-12-07 is open.)
		on = r.hasAuditStore(ctx)
	}
	r.audit.on = on && r.newer(ctx, "audit-trail")
	if !r.audit.on {
		r.audit.pending = nil
		return
	}
	r.emit(ctx, audit.Record{Action: audit.RunStarted, Detail: r.in.Kind})
	for _, recs := range r.audit.pending {
		r.send(ctx, recs)
	}
	r.audit.pending = nil
}

// hasAuditStore asks this worker whether it has an audit store (a local
// activity: its answer is in history).
func (r *lifecycle) hasAuditStore(ctx workflow.Context) bool {
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry, Summary: "has this worker an audit store",
	})
	var on bool
	if err := workflow.ExecuteLocalActivity(lctx, a.HasAuditStore).Get(ctx, &on); err != nil {
		return false
	}
	return on
}

// emit records recs for this run: run context, time and key added.
func (r *lifecycle) emit(ctx workflow.Context, recs ...audit.Record) {
	if len(recs) == 0 || r.audit.decided && !r.audit.on {
		return
	}
	info := workflow.GetInfo(ctx)
	eff := r.in.EffectiveAt
	if eff.IsZero() {
		eff = info.WorkflowStartTime // an event effective at once
	}
	r.audit.n++
	for i := range recs {
		rec := &recs[i]
		rec.Key = fmt.Sprintf("%s/%s/%d/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, r.audit.n, i)
		rec.Time = workflow.Now(ctx)
		rec.EmployeeID, rec.Kind, rec.EventID, rec.EffectiveAt = r.in.EmployeeID, r.in.Kind, r.in.EventID, eff
		rec.WorkflowID, rec.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
		if rec.Actor == "" {
			rec.Actor = audit.ActorJML
		}
	}
	if !r.audit.decided {
		r.audit.pending = append(r.audit.pending, recs)
		return
	}
	r.send(ctx, recs)
}

func (r *lifecycle) send(ctx workflow.Context, recs []audit.Record) {
	id := fmt.Sprintf("audit.%d", len(r.audit.sent)+1)
	if r.lean {
		r.audit.sent = append(r.audit.sent, recordAudit(ctx, id, recs))
		return
	}
	r.audit.sent = append(r.audit.sent, scheduleAudit(ctx, id, recs))
}

// recordAudit writes recs from the workflow task that knows them, as a
// local activity, and falls back to scheduleAudit when that does not land
// within its few quick attempts (the store is down). A record that lands
// at once costs its run one marker event instead of an activity's three
// and the workflow task its completion wakes; while the store is down the
// fallback's retries are the server's, not markers and timers in the
// run's history. Durable all the same: until the marker is recorded a
// replay runs the local activity again, and the key makes the store take
// each record once.
func recordAudit(ctx workflow.Context, id string, recs []audit.Record) workflow.Future {
	var a *activities.Activities
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	f, set := workflow.NewFuture(dctx)
	workflow.Go(dctx, func(ctx workflow.Context) {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			Summary:             "audit: " + recs[0].Action,
			StartToCloseTimeout: 5 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2},
		})
		if workflow.ExecuteLocalActivity(lctx, a.RecordAudit, recs).Get(ctx, nil) == nil {
			set.Set(nil, nil)
			return
		}
		set.Set(nil, scheduleAudit(ctx, id, recs).Get(ctx, nil))
	})
	return f
}

// scheduleAudit schedules one RecordAudit for recs (keys set), retried
// until the store takes them; the caller waits for the future before its
// workflow closes or continues as new.
func scheduleAudit(ctx workflow.Context, id string, recs []audit.Record) workflow.Future {
	var a *activities.Activities
	// Disconnected: a canceled run still records what it did.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		ActivityID:          id,
		Summary:             "audit: " + recs[0].Action,
		TaskQueue:           contract.TaskQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &auditRetry,
	})
	return workflow.ExecuteActivity(actx, a.RecordAudit, recs)
}

// runTrail is the audit trail of a run that is not a person's lifecycle:
// a source poller's polls and the operators' decisions on them, an
// attribute sync's account updates and its reconciliation's actions and
// decisions (records of kind reconcile). It records once
// the worker that did the work has an audit store (the activity's result
// says so) and the run is on the version that records (the marker named
// version; histories without it replay without RecordAudit).
//   - "source-audit": asked only when a poll result says "audit", so
//     older polls never reach it; its old branch is for a poller whose
//     poll a newer worker with a store ran while a worker from before the
//     guard ran the poller's task, during the rolling upgrade
//     (guard-source-audit-old.json replays it). It can go, with that
//     fixture, once no poller run started before 2026-12-07 is open:
//     pollers continue as new after every applied poll, so within a poll
//     interval of the upgrade, except a Blocked one (`starter list
//     --state Blocked`);
//   - "attrsync-audit": once no attribute sync run started before
//     2026-12-07 is open (one cycle).
type runTrail struct {
	version, kind string
	decided, on   bool
	n             int
	sent          []workflow.Future
}

func (a *runTrail) decide(ctx workflow.Context, store bool) {
	if !a.decided && store {
		a.decided = true
		a.on = workflow.GetVersion(ctx, a.version, workflow.DefaultVersion, 1) == 1
	}
}

// emit records recs (target: the default target of each).
func (a *runTrail) emit(ctx workflow.Context, target string, recs ...audit.Record) {
	if !a.on || len(recs) == 0 {
		return
	}
	info := workflow.GetInfo(ctx)
	a.n++
	for i := range recs {
		rec := &recs[i]
		rec.Key = fmt.Sprintf("%s/%s/%d/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, a.n, i)
		rec.Time, rec.Kind = workflow.Now(ctx), cmp.Or(rec.Kind, a.kind)
		if rec.Target == "" {
			rec.Target = target
		}
		rec.WorkflowID, rec.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
		if rec.Actor == "" {
			rec.Actor = audit.ActorJML
		}
	}
	a.sent = append(a.sent, scheduleAudit(ctx, fmt.Sprintf("audit.%d", a.n), recs))
}

// wait waits until the store has every record of the run.
func (a *runTrail) wait(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, f := range a.sent {
		_ = f.Get(dctx, nil)
	}
	a.sent = nil
}

// effectRecords are a run's effects as records of step.
func effectRecords(step string, effects []audit.Effect) []audit.Record {
	var recs []audit.Record
	for _, e := range effects {
		recs = append(recs, audit.Record{Action: e.Action, Target: e.Target, AccountID: e.AccountID, EmployeeID: e.EmployeeID,
			Group: e.Group, Attributes: e.Attributes, Detail: e.Detail, Verified: e.Verified, Step: step})
	}
	return recs
}

// pollRecord is what a poll did, as one audit record.
func pollRecord(res SourcePollResult) []audit.Record {
	switch {
	case res.Blocked != nil:
		b := res.Blocked
		return []audit.Record{{Action: audit.SourceHeld, Detail: fmt.Sprintf(
			"poll %s would terminate %d of %d people (%.1f %% > %.1f %%); %d hires and %d changes wait with it",
			b.Digest, b.Terminate, b.Known, b.Percent, b.Limit, b.Hire, b.Change)}}
	case res.Discarded:
		return []audit.Record{{Action: audit.SourceDiscarded, Detail: "nothing delivered"}}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(res.Emitted)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, res.Emitted[k]))
	}
	recs := []audit.Record{{Action: audit.SourceApplied, Detail: fmt.Sprintf("%d people; events: %s", res.People, strings.Join(parts, ", "))}}
	if res.HeldBack > 0 {
		recs = append(recs, audit.Record{Action: audit.SourceDiscarded, Detail: fmt.Sprintf("%d terminations held back (discarded by an operator)", res.HeldBack)})
	}
	return recs
}

// auditStep records what a step that succeeded did.
func (r *lifecycle) auditStep(ctx workflow.Context, st activities.PlannedStep, res activities.StepResult) {
	var recs []audit.Record
	for _, e := range st.AuditEffects(res) {
		recs = append(recs, audit.Record{Action: e.Action, Target: e.Target, AccountID: e.AccountID, Group: e.Group,
			Attributes: e.Attributes, Detail: e.Detail, Verified: e.Verified, Step: st.Name})
		if recs[len(recs)-1].Target == "" {
			recs[len(recs)-1].Target = st.Target
		}
	}
	r.emit(ctx, recs...)
}

// auditFailure records a step that failed for good: a correlation
// conflict (the identifier is another person's account) or a failure.
func (r *lifecycle) auditFailure(ctx workflow.Context, st activities.PlannedStep, err error) {
	action := audit.StepFailed
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == activities.ErrTypeConflict {
		action = audit.CorrelationConflict
	}
	r.emit(ctx, audit.Record{Action: action, Target: st.Target, AccountID: r.accounts[st.Target], Step: st.Name, Detail: errorText(err)})
}

// auditDecision records an operator's (or jml's) decision on a waiting
// step, and the steps it skipped with it.
func (r *lifecycle) auditDecision(ctx workflow.Context, st activities.PlannedStep, d decision, blocked bool, reason string) {
	actions := map[string]string{contract.UpdateRetryStep: audit.OperatorRetry, contract.UpdateSkipStep: audit.OperatorSkip,
		contract.UpdateAbort: audit.OperatorAbort, contract.UpdateRelease: audit.OperatorRelease}
	rec := audit.Record{Action: actions[d.update], Target: st.Target, Step: st.Name, Actor: d.record.Operator, Reason: d.record.Reason}
	if rec.Action == "" {
		rec.Action = "operator." + strings.ToLower(d.update)
	}
	if rec.Actor == "" {
		rec.Actor = "operator (no name given)"
	}
	if len(d.attrs) > 0 {
		rec.Attributes = map[string]string{}
		for k := range d.attrs {
			rec.Attributes[k] = "" // corrected: the names only
		}
	}
	recs := []audit.Record{rec}
	if st.Name == stepSchedule || st.Name == stepPlan {
		// A pseudo-step's failure has no record of its own (no step ran):
		// it goes with the decision on it.
		recs = []audit.Record{{Action: audit.StepFailed, Step: st.Name, Detail: reason}, rec}
	}
	if blocked && d.update != contract.UpdateAbort {
		recs = append(recs, audit.Record{Action: audit.SafetyRelease, Target: st.Target, Step: st.Name, Actor: rec.Actor, Reason: rec.Reason})
	}
	for _, name := range d.cascade {
		recs = append(recs, audit.Record{Action: audit.StepSkipped, Step: name, Actor: rec.Actor, Reason: "skipped with " + st.Name + " (cascade)"})
	}
	r.emit(ctx, recs...)
}

// endAudit records how the run ended and waits until the store has every
// record of the run (however long it is down).
func (r *lifecycle) endAudit(ctx workflow.Context) {
	if !r.audit.on {
		return
	}
	action, detail := audit.RunCompleted, r.state
	switch {
	case ctx.Err() != nil:
		action, detail = audit.RunAborted, "canceled"
	case r.state == contract.StateAborted:
		action = audit.RunAborted
	case !completed(r.state):
		action = "run.failed"
	}
	r.emit(ctx, audit.Record{Action: action, Detail: detail})
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, f := range r.audit.sent {
		_ = f.Get(dctx, nil) // unlimited retries: only a terminated run gives up
	}
	r.audit.sent = nil
}
