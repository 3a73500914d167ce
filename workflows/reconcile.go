package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
)

// kindReconcile is the Kind of a reconciliation's audit records.
const kindReconcile = "reconcile"

// reconcileBlockWait is how long held changes wait for an operator; then
// they are dropped for this cycle and the next one asks again.
const reconcileBlockWait = 12 * time.Hour

// reconcileState is the reconciliation phase of an attribute sync, carried
// across continue-as-new.
type reconcileState struct {
	Started bool     `json:"started,omitempty"`
	Targets []string `json:"targets,omitempty"`
	Next    int      `json:"next,omitempty"`
}

// reconcile runs after the attribute sync of every target (docs/
// reconciliation.md): one activity per target reads its groups and
// accounts in pages, fixes managed group drift and classifies accounts.
// Changes held by the mass-removal share or the safety limit wait for an
// operator's Release (run them) or Abort (keep things as they are) update,
// at most reconcileBlockWait.
func (in *AttributeSyncInput) reconcile(ctx workflow.Context, trail *runTrail) error {
	var a *activities.Activities
	if !in.Reconciliation.Started {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: "reconcile.targets", Summary: "targets to reconcile",
			StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry})
		if err := workflow.ExecuteActivity(actx, a.ReconcileTargets).Get(ctx, &in.Reconciliation.Targets); err != nil {
			in.Result.Problems = append(in.Result.Problems, activities.AttrSyncProblem{Error: "reconcile targets: " + errorText(err)})
		}
		in.Reconciliation.Started = true
	}
	var (
		waiting  string // the blocked target
		decision string
		by       StepRequest // who decided, and why
		blocked  bool
	)
	for ; in.Reconciliation.Next < len(in.Reconciliation.Targets); in.Reconciliation.Next++ {
		target := in.Reconciliation.Targets[in.Reconciliation.Next]
		rin := activities.ReconcileInput{Snapshot: in.Snapshot, Target: target, PageSize: in.PageSize, EmployeeIDs: in.EmployeeIDs,
			Governor: activities.GovernorCall{WorkflowID: contract.GovernorWorkflowID, WorkflowType: contract.GovernorWorkflowName, TaskQueue: contract.TaskQueue, Update: contract.UpdatePermit}}
		step := target + ".reconcile"
		res := in.reconcileTarget(ctx, rin, "")
		trail.decide(ctx, res.Audit)
		res.Effects = trail.effects(ctx, target, step, res.Effects)
		if res.BlockedReason != "" {
			trail.emit(ctx, target, audit.Record{Kind: kindReconcile, Action: audit.SafetyHold, Step: step, Detail: res.BlockedReason})
			if waiting == "" && decision == "" {
				if err := registerReconcileUpdates(ctx, &waiting, &decision, &by); err != nil {
					return err
				}
			}
			waiting, decision = target, ""
			blocked = true
			// starter list --blocked finds the run; the held count alerts.
			_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(contract.StateBlocked), saFailedStep.ValueSet(target+".reconcile"))
			workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"target": target}).Counter("jml_reconcile_blocked").Inc(int64(res.Counts.Blocked))
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Blocked**: reconciliation of %s\n\n%s\n\n%s\n\nOperator: Release (make the held changes) / Abort (keep things as they are), within %s: "+
				"`starter reconcile release --target %s` / `starter reconcile abort --target %s`. Later cycles wait until then.",
				target, res.BlockedReason, blockedList(res.Blocked), reconcileBlockWait, target, target))
			ok, err := workflow.AwaitWithTimeout(ctx, reconcileBlockWait, func() bool { return decision != "" })
			if err != nil {
				return err
			}
			waiting = ""
			_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(contract.StateRunning), saFailedStep.ValueSet(""))
			if ok {
				actor := by.Operator
				if actor == "" {
					actor = "operator (no name given)"
				}
				action := audit.OperatorAbort
				if decision == contract.UpdateRelease {
					action = audit.OperatorRelease
				}
				trail.emit(ctx, target, audit.Record{Kind: kindReconcile, Action: action, Step: step, Actor: actor, Reason: by.Reason})
				if action == audit.OperatorRelease {
					trail.emit(ctx, target, audit.Record{Kind: kindReconcile, Action: audit.SafetyRelease, Step: step, Actor: actor, Reason: by.Reason})
				}
			}
			if ok && decision == contract.UpdateRelease {
				rin.Release = true
				second := in.reconcileTarget(ctx, rin, ".released")
				second.Effects = trail.effects(ctx, target, step, second.Effects)
				res = released(res, second)
			}
		}
		in.Result.Reconcile[target] = res
		emitReconcileMetrics(ctx, target, res.Counts)
		c := res.Counts
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**reconcile %s**: %d accounts, %d memberships added, %d removed, %d orphans, %d leftovers (%d disabled), %d disputed, %d held",
			target, c.AccountsRead, c.Added, c.Removed, c.Orphans, c.Leftovers, c.LeftoversDisabled, c.Disputed, c.Blocked))
	}
	if blocked {
		_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(contract.StateCompleted))
	}
	return nil
}

func (in *AttributeSyncInput) reconcileTarget(ctx workflow.Context, rin activities.ReconcileInput, suffix string) activities.ReconcileResult {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID:          rin.Target + ".reconcile" + suffix,
		Summary:             "reconcile groups and accounts of " + rin.Target,
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &stepRetry,
	})
	var res activities.ReconcileResult
	if err := workflow.ExecuteActivity(actx, a.ReconcileTarget, rin).Get(ctx, &res); err != nil {
		return activities.ReconcileResult{Counts: activities.ReconcileCounts{Failures: 1},
			Problems: []activities.AttrSyncProblem{{Target: rin.Target, Error: "reconcile: " + errorText(err)}}}
	}
	return res
}

// released is a blocked result completed by the released re-run: the
// first run's findings, the second run's held changes made.
func released(first, second activities.ReconcileResult) activities.ReconcileResult {
	out := first
	out.Counts.Reads += second.Counts.Reads
	out.Counts.Writes += second.Counts.Writes
	out.Counts.Added += second.Counts.Added
	out.Counts.Removed += second.Counts.Removed
	out.Counts.LeftoversDisabled += second.Counts.LeftoversDisabled
	out.Counts.OrphansDisabled += second.Counts.OrphansDisabled
	out.Counts.Failures += second.Counts.Failures
	out.Counts.Blocked = 0
	// The second pass sees what the first disabled as already inactive:
	// those accounts keep the first pass's action (who disabled what).
	acted := map[string]activities.ReconcileAccount{}
	for _, a := range first.Accounts {
		if a.Action == activities.ActionDisabled || a.Action == activities.ActionFailed {
			acted[a.AccountID] = a
		}
	}
	out.Accounts = make([]activities.ReconcileAccount, 0, len(second.Accounts))
	for _, a := range second.Accounts {
		if f, ok := acted[a.AccountID]; ok {
			a = f
		}
		out.Accounts = append(out.Accounts, a)
	}
	out.Blocked, out.BlockedReason = nil, ""
	out.Problems = append(out.Problems, second.Problems...)
	return out
}

func registerReconcileUpdates(ctx workflow.Context, waiting, decision *string, by *StepRequest) error {
	for _, name := range []string{contract.UpdateRelease, contract.UpdateAbort} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, q StepRequest) error {
				*decision, *by = name, q
				return nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, q StepRequest) error {
				if *waiting == "" {
					return temporal.NewApplicationError("nothing blocked: no reconciliation waits for an operator", "NotBlocked")
				}
				if q.Step != "" && q.Step != *waiting {
					return fmt.Errorf("target %q is not the blocked target %q", q.Step, *waiting)
				}
				return nil
			}})
		if err != nil {
			return err
		}
	}
	return nil
}

// effects records a reconciliation pass's effects and returns what the
// run keeps of them: nothing (the records are in the trail, or nowhere
// without a store; the run's result stays small).
func (a *runTrail) effects(ctx workflow.Context, target, step string, effects []audit.Effect) []audit.Effect {
	recs := effectRecords(step, effects)
	for i := range recs {
		recs[i].Kind = kindReconcile
	}
	a.emit(ctx, target, recs...)
	return nil
}

func blockedList(gs []activities.BlockedGroup) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "- %s: %d of %d members to remove\n", g.Group, g.Remove, g.Members)
	}
	return b.String()
}

// emitReconcileMetrics counts one target's reconciliation (jml_reconcile_*,
// tagged by target; not emitted during replay). jml_reconcile_blocked is
// counted when the run blocks, so an alert fires while it waits.
func emitReconcileMetrics(ctx workflow.Context, target string, c activities.ReconcileCounts) {
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"target": target})
	for _, kv := range []struct {
		name string
		v    int
	}{
		{"jml_reconcile_accounts_read", c.AccountsRead},
		{"jml_reconcile_reads", c.Reads},
		{"jml_reconcile_writes", c.Writes},
		{"jml_reconcile_orphans", c.Orphans},
		{"jml_reconcile_leftovers", c.Leftovers},
		{"jml_reconcile_disputed", c.Disputed},
		{"jml_reconcile_drift_missing", c.MissingFound},
		{"jml_reconcile_drift_extra", c.ExtraFound},
		{"jml_reconcile_memberships_added", c.Added},
		{"jml_reconcile_memberships_removed", c.Removed},
		{"jml_reconcile_leftovers_disabled", c.LeftoversDisabled},
		{"jml_reconcile_orphans_disabled", c.OrphansDisabled},
		{"jml_reconcile_failures", c.Failures},
	} {
		m.Counter(kv.name).Inc(int64(kv.v))
	}
}
