package workflows

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
)

// PublishIdentity upserts the memo the attribute sync reads identities
// from (activities.TemporalDirectory): status, attributes and accounts.
// The Identity workflow calls it whenever one of them changes.
func PublishIdentity(ctx workflow.Context, in IdentityInput) error {
	return workflow.UpsertMemo(ctx, map[string]any{contract.IdentityMemoKey: activities.IdentityRecord{
		EmployeeID: in.EmployeeID, Status: in.Status, Attributes: in.Attributes, Accounts: in.Accounts,
		Identifiers: in.Identifiers,
	}})
}

// AttributeSyncInput starts an attribute sync. A scheduled run sets
// nothing; a manual run sets EmployeeIDs. The rest is state carried across
// continue-as-new.
type AttributeSyncInput struct {
	// EmployeeIDs limits the run to these identities (manual sync).
	EmployeeIDs []string `json:"employee_ids,omitempty"`
	// Targets and PageSize default to the policy's attribute_sync.
	Targets  []string `json:"targets,omitempty"`
	PageSize int      `json:"page_size,omitempty"`
	// MaxPages per activity (default 20): the unit of progress in history.
	MaxPages int `json:"max_pages,omitempty"`
	// ChunksPerRun is how many chunks one execution runs before it
	// continues as new (default 100).
	ChunksPerRun int `json:"chunks_per_run,omitempty"`

	Snapshot string                  `json:"snapshot,omitempty"`
	Started  bool                    `json:"started,omitempty"`
	Next     int                     `json:"next,omitempty"` // index of the target in progress
	Cursor   string                  `json:"cursor,omitempty"`
	Chunk    int                     `json:"chunk,omitempty"`
	Guard    []activities.GuardEntry `json:"guard,omitempty"`
	// Since are the change links the previous cycle kept, by target; Round
	// is what the last chunk of the target in progress handed on.
	Since  map[string]activities.DeltaState `json:"since,omitempty"`
	Round  activities.AttrSyncRound         `json:"round,omitzero"`
	Result AttributeSyncResult              `json:"result"`
	// Reconciliation is the progress of the reconcile phase.
	Reconciliation reconcileState `json:"reconciliation,omitzero"`
}

// AttributeSyncResult is what a run did, overall and per target. Guard is
// the loop-guard state the next scheduled run starts from.
type AttributeSyncResult struct {
	activities.AttrSyncCounts
	Targets  map[string]activities.AttrSyncCounts `json:"targets,omitempty"`
	Problems []activities.AttrSyncProblem         `json:"problems,omitempty"`
	Guard    []activities.GuardEntry              `json:"guard,omitempty"`
	// Delta are the change links the next scheduled cycle starts from, by
	// target (a connectors.ChangeLister, such as Entra's /users/delta).
	Delta map[string]activities.DeltaState `json:"delta,omitempty"`
	// Reconcile is the reconciliation of each target (docs/reconciliation.md).
	Reconcile map[string]activities.ReconcileResult `json:"reconcile,omitempty"`
}

// Bounds on what a run carries in history.
const (
	maxRunProblems     = 200
	maxGuardEntries    = 10000
	chunksPerExecution = 100
)

// AttributeSync reconciles the attributes of every active identity's
// accounts (or of EmployeeIDs only) with the policy. Design:
//
//   - Source of identities: activities.Directory, in production the
//     Identity workflows themselves (a visibility query for running ones
//     with the memo PublishIdentity writes): ceil(N/1000) calls, no
//     per-identity query or workflow task, and leavers are known by their
//     status. The desired state is rendered once per run and worker.
//   - Each target is read in pages by a chunk activity (MaxPages pages per
//     call) that compares in memory, writes only differing attributes,
//     heartbeats its cursor (a retry resumes there; a 429 waits the
//     server's delay) and returns counts. The run continues-as-new every
//     chunksPerExecution chunks or when Temporal suggests it.
//   - A target that fails for good is counted and reported; the others
//     still run. The run itself fails only on a bug.
//   - The loop guard's entries come from the previous scheduled run's
//     result and go into this one's.
//   - Counts are the result, the UI's current details, and metrics
//     (jml_attribute_sync_* counters tagged by target).
func AttributeSync(ctx workflow.Context, in AttributeSyncInput) (AttributeSyncResult, error) {
	var a *activities.Activities
	if in.Snapshot == "" {
		in.Snapshot = workflow.GetInfo(ctx).WorkflowExecution.RunID
	}
	if in.Result.Targets == nil {
		in.Result.Targets = map[string]activities.AttrSyncCounts{}
	}
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry,
	})
	// Version 1 keeps each target's change link across cycles: a cycle
	// reads only the accounts changed since the previous one. Every run
	// started before it (2026-12-07) takes the old branch (attrsync.json and
	// attrsync-reconcile-released.json replay it). The guard can go, with
	// those fixtures, once no such run is open: each scheduled run is short
	// (one cycle after the upgrade), except one whose reconciliation waits
	// Blocked for an operator (`starter list --state Blocked`).
	changes := workflow.GetVersion(ctx, "attribute-sync-delta", workflow.DefaultVersion, 1) == 1
	if !in.Started {
		if len(in.Targets) == 0 || in.PageSize == 0 {
			var ts activities.AttrSyncTargets
			tctx := workflow.WithActivityOptions(short, workflow.ActivityOptions{ActivityID: "attribute_sync.targets", Summary: "targets from policy",
				StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry})
			if err := workflow.ExecuteActivity(tctx, a.AttributeSyncTargets).Get(ctx, &ts); err != nil {
				return in.Result, fmt.Errorf("attribute sync targets: %w", err)
			}
			if len(in.Targets) == 0 {
				in.Targets = ts.Targets
			}
			if in.PageSize == 0 {
				in.PageSize = ts.PageSize
			}
		}
		if len(in.EmployeeIDs) == 0 {
			gctx := workflow.WithActivityOptions(short, workflow.ActivityOptions{ActivityID: "attribute_sync.guard", Summary: "loop guard of the previous run",
				StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry})
			q := activities.GuardQuery{WorkflowType: contract.AttributeSyncWorkflowName, IDPrefix: contract.AttributeSyncScheduleID}
			if changes {
				var prev activities.AttrSyncState
				if err := workflow.ExecuteActivity(gctx, a.PreviousAttrSyncState, q).Get(ctx, &prev); err != nil {
					workflow.GetLogger(ctx).Warn("previous run's state unavailable; reading every target in full", "error", errorText(err))
				}
				in.Guard, in.Since = prev.Guard, prev.Delta
			} else if err := workflow.ExecuteActivity(gctx, a.PreviousAttrSyncGuard, q).Get(ctx, &in.Guard); err != nil {
				workflow.GetLogger(ctx).Warn("loop guard unavailable; starting without", "error", errorText(err))
			}
		}
		in.Started = true
	}
	guard := map[string]activities.GuardEntry{}
	for _, g := range in.Guard {
		guard[g.Key()] = g
	}
	trail := &runTrail{version: "attrsync-audit", kind: "attribute_sync"}

	for chunks := 0; in.Next < len(in.Targets); chunks++ {
		target := in.Targets[in.Next]
		if chunks >= cmp.Or(in.ChunksPerRun, chunksPerExecution) || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in.Guard = guardList(guard)
			trail.wait(ctx)
			return in.Result, workflow.NewContinueAsNewError(ctx, contract.AttributeSyncWorkflowName, in)
		}
		in.Chunk++
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID:          fmt.Sprintf("%s.attribute_sync.%d", target, in.Chunk),
			Summary:             "attribute sync of " + target,
			StartToCloseTimeout: 30 * time.Minute,
			HeartbeatTimeout:    2 * time.Minute,
			RetryPolicy:         &stepRetry,
		})
		page := activities.AttrSyncPageInput{
			Snapshot: in.Snapshot, Target: target, Cursor: in.Cursor, PageSize: in.PageSize, MaxPages: in.MaxPages,
			EmployeeIDs: in.EmployeeIDs, Guard: targetGuard(guard, target),
			Since: in.Since[target], Round: in.Round,
		}
		var res activities.AttrSyncPageResult
		if err := workflow.ExecuteActivity(actx, a.SyncAttributesPage, page).Get(ctx, &res); err != nil {
			// The target is unreachable or refuses for good: report it and go on.
			res = activities.AttrSyncPageResult{Counts: activities.AttrSyncCounts{Failures: 1},
				Problems: []activities.AttrSyncProblem{{Target: target, Error: errorText(err)}}}
		}
		trail.decide(ctx, res.Audit)
		trail.emit(ctx, target, effectRecords(target+".attribute_sync", res.Effects)...)
		res.Effects = nil
		in.merge(target, res, guard)
		in.Cursor, in.Round = res.Next, res.Round
		if res.Delta.Link != "" && len(in.EmployeeIDs) == 0 {
			if in.Result.Delta == nil {
				in.Result.Delta = map[string]activities.DeltaState{}
			}
			in.Result.Delta[target] = res.Delta
		}
		if res.Next == "" || len(in.EmployeeIDs) > 0 {
			in.Cursor, in.Round = "", activities.AttrSyncRound{}
			in.Next++
			emitMetrics(ctx, target, in.Result.Targets[target])
		}
		c := in.Result.AttrSyncCounts
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** (target %d of %d)\n\n%d checked, %d accounts changed, %d attributes written, %d failures, %d stuck",
			target, min(in.Next+1, len(in.Targets)), len(in.Targets), c.IdentitiesChecked, c.AccountsChanged, c.AttributesWritten, c.Failures, c.Stuck))
	}
	if workflow.GetVersion(ctx, "reconcile", workflow.DefaultVersion, 1) == 1 {
		if in.Result.Reconcile == nil {
			in.Result.Reconcile = map[string]activities.ReconcileResult{}
		}
		if err := in.reconcile(ctx, trail); err != nil {
			return in.Result, err
		}
	}
	in.Result.Guard = guardList(guard)
	trail.wait(ctx)
	return in.Result, nil
}

func (in *AttributeSyncInput) merge(target string, res activities.AttrSyncPageResult, guard map[string]activities.GuardEntry) {
	t := in.Result.Targets[target]
	t.Add(res.Counts)
	in.Result.Targets[target] = t
	in.Result.AttrSyncCounts.Add(res.Counts)
	for _, p := range res.Problems {
		if len(in.Result.Problems) < maxRunProblems {
			in.Result.Problems = append(in.Result.Problems, p)
		}
	}
	for _, k := range res.Cleared {
		delete(guard, k)
	}
	for _, g := range res.Guard {
		guard[g.Key()] = g
	}
}

func targetGuard(guard map[string]activities.GuardEntry, target string) []activities.GuardEntry {
	var out []activities.GuardEntry
	for _, k := range slices.Sorted(maps.Keys(guard)) {
		if guard[k].Target == target {
			out = append(out, guard[k])
		}
	}
	return out
}

// guardList is the guard in a stable order, bounded.
func guardList(guard map[string]activities.GuardEntry) []activities.GuardEntry {
	var out []activities.GuardEntry
	for _, k := range slices.Sorted(maps.Keys(guard)) {
		if len(out) == maxGuardEntries {
			break
		}
		out = append(out, guard[k])
	}
	return out
}

// emitMetrics counts a finished target (not emitted during replay).
func emitMetrics(ctx workflow.Context, target string, c activities.AttrSyncCounts) {
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"target": target})
	m.Counter("jml_attribute_sync_identities_checked").Inc(int64(c.IdentitiesChecked))
	m.Counter("jml_attribute_sync_accounts_changed").Inc(int64(c.AccountsChanged))
	m.Counter("jml_attribute_sync_attributes_written").Inc(int64(c.AttributesWritten))
	m.Counter("jml_attribute_sync_failures").Inc(int64(c.Failures))
	m.Counter("jml_attribute_sync_stuck").Inc(int64(c.Stuck))
	m.Counter("jml_attribute_sync_unmatched").Inc(int64(c.Unmatched))
}
