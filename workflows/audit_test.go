package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// memAudit is an audit store in memory, exactly once per key.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
	keys map[string]bool
}

func (m *memAudit) Append(_ context.Context, recs []audit.Record) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range recs {
		if m.keys[r.Key] {
			continue
		}
		m.keys[r.Key] = true
		m.recs = append(m.recs, r)
		n++
	}
	return n, nil
}

func (m *memAudit) actions() map[string][]audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]audit.Record{}
	for _, r := range m.recs {
		out[r.Action] = append(out[r.Action], r)
	}
	return out
}

// TestAuditRecordsDecisions: a joiner whose hand-off fails and an
// operator skips records the effects of its steps, the failure, and the
// decision with who and why, each with the run's context.
func TestAuditRecordsDecisions(t *testing.T) {
	p := testPolicy()
	p.Audit.Attributes = []string{"department"}
	var s testsuite.WorkflowTestSuite
	f := &fixture{env: s.NewTestWorkflowEnvironment(), target: memtarget.New(), restFail: true}
	f.env.SetWorkerOptions(worker.Options{EnableSessionWorker: true})
	f.env.SetStartTime(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	store := &memAudit{keys: map[string]bool{}}
	a := activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": f.target},
		HTTPClient: &http.Client{Transport: f}, Audit: store})
	workflows.Register(f.env, a)
	var skip *result
	f.env.RegisterDelayedCallback(func() {
		skip = updateResult(f.env, contract.UpdateSkipStep, workflows.StepRequest{Step: "send_rest_request", Reason: "portal down", Operator: "alice"})
	}, time.Minute)
	f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1",
		Attributes: withID(alice), HostQueues: true, Version: workflows.IdentityVersion})
	var res workflows.LifecycleResult
	require.NoError(t, f.env.GetWorkflowResult(&res))
	require.NoError(t, skip.rejected)

	got := store.actions()
	require.Len(t, got[audit.AccountCreated], 1)
	created := got[audit.AccountCreated][0]
	assert.Equal(t, "E1", created.EmployeeID)
	assert.Equal(t, "h1", created.EventID)
	assert.Equal(t, policy.KindJoiner, created.Kind)
	assert.Equal(t, "app", created.Target)
	assert.Equal(t, res.Accounts["app"], created.AccountID)
	assert.True(t, created.Verified)
	assert.Equal(t, audit.ActorJML, created.Actor)
	assert.NotEmpty(t, created.WorkflowID)
	assert.NotEmpty(t, created.RunID)
	assert.Contains(t, created.Key, created.WorkflowID+"/"+created.RunID+"/")
	assert.Len(t, got[audit.PasswordSet], 1)
	var groups []string
	for _, r := range got[audit.GroupAdded] {
		groups = append(groups, r.Group)
	}
	assert.ElementsMatch(t, []string{"everyone", "dept-eng"}, groups)

	require.Len(t, got[audit.StepFailed], 1)
	assert.Equal(t, "send_rest_request", got[audit.StepFailed][0].Step)
	require.Len(t, got[audit.OperatorSkip], 1)
	dec := got[audit.OperatorSkip][0]
	assert.Equal(t, "alice", dec.Actor)
	assert.Equal(t, "portal down", dec.Reason)
	assert.Equal(t, "send_rest_request", dec.Step)
	assert.Len(t, got[audit.RunStarted], 1)
	assert.Len(t, got[audit.RunCompleted], 1)
	var notified []string
	for _, r := range got[audit.NotificationSent] {
		notified = append(notified, r.Step+": "+r.Detail)
	}
	assert.ElementsMatch(t, []string{"notify.ops: webhook → POST https://portal.test/ops", "notify.done: webhook → POST https://portal.test/notify"}, notified)

	keys := map[string]bool{}
	for _, recs := range got {
		for _, r := range recs {
			assert.False(t, keys[r.Key], "key %s twice", r.Key)
			keys[r.Key] = true
		}
	}
}

// TestNoAuditStoreNoRecords: a worker without an audit store plans runs
// that schedule no RecordAudit (histories as before).
func TestNoAuditStoreNoRecords(t *testing.T) {
	f := newFixture(t, testPolicy())
	recorded := 0
	f.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "RecordAudit" {
			recorded++
		}
	})
	f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1",
		Attributes: withID(alice), HostQueues: true, Version: workflows.IdentityVersion})
	require.NoError(t, f.env.GetWorkflowError())
	assert.Zero(t, recorded)
}

// TestSourcePollerRecordsPolls: a poll held for an operator, the
// operator's release (with the reason) and the applied poll are recorded,
// and the poller waits for its records before it continues as new.
func TestSourcePollerRecordsPolls(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SourcePoller, workflow.RegisterOptions{Name: contract.SourcePollerWorkflowName})
	store := &memAudit{keys: map[string]bool{}}
	env.RegisterActivity(activities.New(activities.Config{Audit: store}).RecordAudit)
	polls := 0
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.SourcePollInput) (workflows.SourcePollResult, error) {
		polls++
		if in.Release == "" {
			return workflows.SourcePollResult{Audit: true, Blocked: &workflows.SourceBlock{Digest: "d1", Terminate: 40, Known: 100, Percent: 40, Limit: 10}}, nil
		}
		return workflows.SourcePollResult{Audit: true, People: 60, Emitted: map[string]int{"terminate": 40}}, nil
	}, activity.RegisterOptions{Name: contract.SourcePollActivityName})
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdateSourceRelease, "r1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("release rejected: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, workflows.SourceDecision{Digest: "d1", Reason: "reorg confirmed by HR"})
	}, time.Minute)
	env.ExecuteWorkflow(contract.SourcePollerWorkflowName, workflows.SourcePollerInput{Source: "hr"})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	assert.Equal(t, 2, polls)

	got := store.actions()
	require.Len(t, got[audit.SourceHeld], 1)
	assert.Contains(t, got[audit.SourceHeld][0].Detail, "would terminate 40 of 100 people")
	require.Len(t, got[audit.OperatorRelease], 1)
	assert.Equal(t, "reorg confirmed by HR", got[audit.OperatorRelease][0].Reason)
	require.Len(t, got[audit.SourceApplied], 1)
	assert.Equal(t, "60 people; events: terminate 40", got[audit.SourceApplied][0].Detail)
	assert.Equal(t, "hr", got[audit.SourceApplied][0].Target)
}

// newAuditFixture is newFixture with an audit store.
func newAuditFixture(t *testing.T, p *policy.Policy) (*fixture, *memAudit) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	f := &fixture{env: s.NewTestWorkflowEnvironment(), target: memtarget.New()}
	f.env.SetWorkerOptions(worker.Options{EnableSessionWorker: true})
	f.env.SetStartTime(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	store := &memAudit{keys: map[string]bool{}}
	a := activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": f.target}, HTTPClient: &http.Client{Transport: f}, Audit: store})
	workflows.Register(f.env, a)
	return f, store
}

// TestAuditLeaverRecordsEachGroupRemoved: a leaver's remove_groups drops
// every group at once in the connector; the trail has one group.removed
// per group the account was in, beside the disable, each once.
func TestAuditLeaverRecordsEachGroupRemoved(t *testing.T) {
	p := testPolicy()
	p.Leaver = policy.Flow{Steps: p.Leaver.Steps[:1]} // deprovision with remove_groups, now
	f, store := newAuditFixture(t, p)
	f.send(t, time.Second, event("h1", hr.Hire, "E1", alice), nil)
	f.send(t, time.Minute, event("t1", hr.Terminate, "E1", nil), nil)
	f.runIdentity(time.Hour)
	a, ok := f.target.Find("user_name", "alice@acme.test")
	require.True(t, ok)
	require.False(t, a.Active)
	require.Empty(t, a.Groups)

	got := store.actions()
	require.Len(t, got[audit.AccountDisabled], 1)
	var removed []string
	for _, r := range got[audit.GroupRemoved] {
		assert.Equal(t, a.ID, r.AccountID)
		assert.Equal(t, "leaver", r.Kind)
		assert.Equal(t, "t1", r.EventID)
		assert.True(t, r.Verified)
		removed = append(removed, r.Group)
	}
	assert.ElementsMatch(t, []string{"everyone", "dept-eng"}, removed)
}

// TestAuditRecordsAbortBeforeThePlan: an event the identity could not
// schedule waits at the schedule pseudo-step; the operator's abort there,
// before the run has a plan, is recorded with the failure it answered,
// who and why. A worker without a store records nothing.
func TestAuditRecordsAbortBeforeThePlan(t *testing.T) {
	for _, withStore := range []bool{true, false} {
		t.Run(fmt.Sprint("store ", withStore), func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			f := &fixture{env: s.NewTestWorkflowEnvironment(), target: memtarget.New()}
			f.env.SetWorkerOptions(worker.Options{EnableSessionWorker: true})
			cfg := activities.Config{Policy: testPolicy(), Targets: map[string]any{"app": f.target}, HTTPClient: &http.Client{Transport: f}}
			store := &memAudit{keys: map[string]bool{}}
			if withStore {
				cfg.Audit = store
			}
			workflows.Register(f.env, activities.New(cfg))
			recorded := 0
			f.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				if info.ActivityType.Name == "RecordAudit" {
					recorded++
				}
			})
			var abort *result
			f.env.RegisterDelayedCallback(func() {
				abort = updateResult(f.env, contract.UpdateAbort, workflows.StepRequest{Step: "schedule", Reason: "wrong start date from HR", Operator: "carol"})
			}, time.Minute)
			f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1",
				Attributes: withID(alice), HostQueues: true, Version: workflows.IdentityVersion, ScheduleError: "start_date: not a date"})
			var res workflows.LifecycleResult
			require.NoError(t, f.env.GetWorkflowResult(&res))
			require.NoError(t, abort.rejected)
			assert.Equal(t, contract.StateAborted, res.State)
			if !withStore {
				assert.Zero(t, recorded)
				return
			}
			var got []string
			for _, r := range store.recs {
				got = append(got, r.Action+" "+r.Step+" "+r.Actor+" "+r.Reason+r.Detail)
				assert.Equal(t, "E1", r.EmployeeID)
				assert.Equal(t, "h1", r.EventID)
			}
			assert.ElementsMatch(t, []string{
				"run.started  jml joiner",
				"step.failed schedule jml start_date: not a date",
				"operator.abort schedule carol wrong start date from HR",
				"run.aborted  jml Aborted",
			}, got)
		})
	}
}
