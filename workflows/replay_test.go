package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/workflows"
)

// TestReplay replays histories recorded from a real end-to-end run
// (regenerate: JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// 'TestHireChangeTerminate50$'). A workflow change that would break running
// workflows fails here; guard such changes with workflow.GetVersion.
// Histories of older code stay beside the current ones, so every shape
// keeps replaying: *-before-links (before account links and the GetVersion
// guards), *-sessions (worker sessions, before the host-queues version),
// *-waiting-sessions (a joiner of the session shape waiting in
// NeedsAttention, and its identity: such runs resume on the session path),
// *-v2 (host queues, before the operator-UI shape 3; identity-continued-v2
// and identity-after-continue-v2 likewise), identity-update-start (an identity started by update-with-start, before
// the first event came as its input), identity-continued and
// identity-after-continue (a run that continued as new and its successor;
// regenerate: JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// TestIdentityContinuesAsNew), identity-link-waiting and
// joiner-link-waiting (a joiner that reports its new account to the
// identity at once, then waits in NeedsAttention until skipped; regenerate:
// JML_UPDATE_HISTORIES=1 go test ./workflows -run
// TestReconcileLeavesWaitingJoinersAccount), guard-* (the branches of the
// version guards: guardHistories); request-extend-revoke and
// request-leaver (access requests before approvals.on_move, recorded with
// the code of 2026-12-07: JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// 'TestAccessRequestExtendAndRevokeEarly|TestAccessRequestTerminationRevokes'),
// request-move-denied and mover-review-grants (a move's review: -run
// TestMoverReapprovesGrants), *-lean (the current shape, VersionLean: no
// version markers for the older guards; the e2e run above writes
// identity-lean, joiner-lean, mover-lean and leaver-lean, the reconcile
// test the *-lean-link-waiting pair; the files without -lean are older
// shapes and stay), joiner-lean-audit and leaver-lean-audit-store-down
// (audit records written by local activities, and the RecordAudit
// fallback of a leaver whose store was down; regenerate:
// JML_UPDATE_HISTORIES=1 go test ./internal/e2e -run
// TestAuditTrailOutlivesTemporal), attrsync-reconcile-released (a
// blocked reconciliation released, before its audit trail) and
// attrsync-reconcile-audit (the same, recorded; regenerate:
// JML_UPDATE_HISTORIES=1 go test ./workflows -run
// TestReconcileMassRemovalBlocks).
func TestReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no saved histories under testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workflows.RegisterWorkflows(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}

// guardHistories are, for each version guard, a history that takes its
// old branch and one that takes its new branch. guard-*-old.json were
// recorded at the commit before their guard (426fc5d^, 6574bf7^, a7b6c48^)
// by a copy of TestRecordGuardHistories, with a stand-in for the newer
// worker's Plan or SourcePoll where noted; the others are older fixtures.
// guard-*-new.json: TestRecordGuardHistories (attribute-sync-delta:
// TestAttributeSyncSecondCycleReadsDeltaOnly). An old history of a guard
// whose code path it never reaches would prove nothing: the replay below
// checks that each history asks for its guard and gets the branch named.
var guardHistories = []struct {
	guard, file string
	version     workflow.Version // the branch: DefaultVersion old, 1 new
	shape       string
}{
	// audit-trail: only a session-shape run (Plan as an activity) whose
	// Plan ran on a worker with an audit store while a worker from before
	// audit-trail ran its workflow task (a rolling upgrade) reaches the
	// guard without its marker; every other older run has no "audit" in
	// its plan and never asks (recorded at 426fc5d^ with such a Plan).
	{"audit-trail", "guard-audit-trail-old.json", workflow.DefaultVersion, "joiner planned by a newer worker with an audit store, run by an older one"},
	{"audit-trail", "guard-audit-trail-new.json", 1, "joiner with an audit store"},
	// source-audit: likewise, a poll by a worker with an audit store
	// applied by a poller task from before source-audit (6574bf7^).
	{"source-audit", "guard-source-audit-old.json", workflow.DefaultVersion, "poll by a newer worker with an audit store, poller run by an older one"},
	{"source-audit", "guard-source-audit-new.json", 1, "poll by a worker with an audit store"},
	// link-state: a pre-hire joiner of the link-at-write shape enabling
	// its account on the start date (a7b6c48^); runs before link-at-write
	// also ask, but that guard stops them anyway.
	{"link-state", "guard-link-state-old.json", workflow.DefaultVersion, "pre-hire joiner enabling on the start date, link-at-write shape"},
	{"link-state", "guard-link-state-new.json", 1, "pre-hire joiner enabling on the start date"},
	{"link-state", "guard-revoke-grants-new.json", 1, "leaver disabling its account"},
	// revoke-grants: every leaver started before it.
	{"revoke-grants", "leaver.json", workflow.DefaultVersion, "leaver without requests.revoke"},
	{"revoke-grants", "leaver-before-links.json", workflow.DefaultVersion, "leaver without requests.revoke, before links"},
	{"revoke-grants", "guard-revoke-grants-new.json", 1, "leaver revoking grants first"},
	// attribute-sync-delta: every attribute-sync run started before it.
	{"attribute-sync-delta", "attrsync.json", workflow.DefaultVersion, "cycle reading the loop guard only"},
	{"attribute-sync-delta", "attrsync-reconcile-released.json", workflow.DefaultVersion, "cycle with reconciliation, before deltas"},
	{"attribute-sync-delta", "guard-attribute-sync-delta-new.json", 1, "second cycle starting from the delta link"},
	// reapprove-on-move: a request run by a worker from before it that got
	// the signal from a newer worker's mover ignored it (recorded at
	// 2f5d2ea, the signal sent by hand, then a revoke).
	{"reapprove-on-move", "guard-reapprove-on-move-old.json", workflow.DefaultVersion, "granted request ignoring a move's signal, then revoked"},
	{"reapprove-on-move", "request-move-denied.json", 1, "granted request asked again after a move, denied, revoked"},
	// audit-unplanned: only its new branch has a fixture (a run aborted at
	// its schedule step before the guard recorded nothing and asks no
	// guard then: the guard's old branch is for such a run's replay).
	{"audit-unplanned", "guard-audit-unplanned-new.json", 1, "joiner aborted at its schedule step, before it had a plan"},
	// attrsync-audit: only its new branch; an older cycle never asks (its
	// results carry no "audit"), but during a rolling upgrade.
	{"attrsync-audit", "attrsync-reconcile-audit.json", 1, "released reconciliation recording its changes"},
	// review-grants: only its new branch has a fixture (see lifecycle.run).
	{"review-grants", "mover-review-grants.json", 1, "mover asking its grants again first"},
}

// TestReplayGuards replays each guard's histories and checks that the
// replay asked for the guard and took the branch the history is for.
func TestReplayGuards(t *testing.T) {
	for _, h := range guardHistories {
		branch := "new"
		if h.version == workflow.DefaultVersion {
			branch = "old"
		}
		t.Run(h.guard+"/"+branch+"/"+h.file, func(t *testing.T) {
			spy := &versionSpy{got: map[string][]workflow.Version{}}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{spy}})
			require.NoError(t, err)
			workflows.RegisterWorkflows(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", h.file)), h.shape)
			require.NotEmpty(t, spy.got[h.guard], "%s never reaches the %q guard: it proves nothing about it", h.file, h.guard)
			for _, v := range spy.got[h.guard] {
				assert.Equal(t, h.version, v, "%s takes the %s branch of %q", h.file, branch, h.guard)
			}
		})
	}
}

// versionSpy records what each GetVersion of a replay returned.
type versionSpy struct {
	interceptor.WorkerInterceptorBase
	got map[string][]workflow.Version
}

func (s *versionSpy) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &versionSpyInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, spy: s}
}

type versionSpyInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	spy *versionSpy
}

func (i *versionSpyInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&versionSpyOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, spy: i.spy})
}

type versionSpyOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	spy *versionSpy
}

func (o *versionSpyOutbound) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	v := o.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
	o.spy.got[changeID] = append(o.spy.got[changeID], v)
	return v
}

// TestLeanRunsAskNoGuards: a lean run (VersionLean) takes the changes the
// guards below introduced without asking workflow.GetVersion, so it
// records no marker and no TemporalChangeVersion upsert for them; the
// *-lean histories replay without one.
func TestLeanRunsAskNoGuards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*-lean*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			spy := &versionSpy{got: map[string][]workflow.Version{}}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{spy}})
			require.NoError(t, err)
			workflows.RegisterWorkflows(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
			for _, guard := range []string{"link-at-write", "link-state", "revoke-grants", "audit-trail"} {
				assert.Empty(t, spy.got[guard], "%s asks the %q guard", f, guard)
			}
		})
	}
}
