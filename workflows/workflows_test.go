package workflows_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

func testPolicy() *policy.Policy {
	sync := func(create bool) policy.Step {
		return policy.Step{SyncIdentity: &policy.SyncIdentity{
			Target: "app", CreateAllowed: create, Password: map[bool]string{true: "generate"}[create],
			Attributes: map[string]string{"user_name": "{email}", "department": "{department}", "employee_id": "{employee_id}"},
		}}
	}
	groups := policy.Step{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"everyone", "dept-{department}"}}}
	return &policy.Policy{
		Targets:  map[string]policy.Target{"app": {Type: "scim"}},
		Password: policy.PasswordPolicy{Length: 18, ExcludeSimilar: true},
		Joiner: policy.Flow{Offset: "-3d", Steps: []policy.Step{
			sync(true), groups,
			{SendRESTRequest: &policy.RESTRequest{URL: "https://portal.test/accounts", Body: `{"login":"{ScimUser.user_name}","password":"{ScimUser.password}"}`}},
			{Name: "notify.done", Notify: &policy.RESTRequest{URL: "https://portal.test/notify", Body: `{"done":"{employee_id}"}`}},
			{Name: "notify.ops", Notify: &policy.RESTRequest{URL: "https://portal.test/ops", On: []string{"needs_attention"}}},
		}},
		Mover: policy.Flow{Steps: []policy.Step{sync(false), groups}},
		Leaver: policy.Flow{LocalTime: "17:00", Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app", RemoveGroups: true}},
			{DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: "30d"}},
		}},
	}
}

type sent struct{ url, body string }

type fixture struct {
	env    *testsuite.TestWorkflowEnvironment
	target *memtarget.Target
	mu     sync.Mutex
	sent   []sent
	// restFail, when set, makes the portal answer 400 to account requests.
	restFail bool
	updates  int
}

// RoundTrip is the portal: the real connectors/rest client sends to it.
func (f *fixture) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	status := http.StatusCreated
	if f.restFail && strings.Contains(r.URL.Path, "accounts") {
		status = http.StatusBadRequest
	} else {
		f.sent = append(f.sent, sent{r.URL.String(), string(body)})
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprint(status, " ", http.StatusText(status)), Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

func (f *fixture) requests() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

func newFixture(t *testing.T, p *policy.Policy) *fixture {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	f := &fixture{env: s.NewTestWorkflowEnvironment(), target: memtarget.New()}
	f.env.SetWorkerOptions(worker.Options{EnableSessionWorker: true})
	f.env.SetStartTime(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	a := activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": f.target}, HTTPClient: &http.Client{Transport: f}})
	workflows.Register(f.env, a)
	return f
}

func event(id, typ, emp string, attrs map[string]string) workflows.HREventRequest {
	e := map[string]string{"employee_id": emp}
	for k, v := range attrs {
		e[k] = v
	}
	return workflows.HREventRequest{Event: hr.Event{EventID: id, Type: typ, Employee: e}}
}

func (f *fixture) send(t *testing.T, at time.Duration, req workflows.HREventRequest, dup *bool) {
	f.env.RegisterDelayedCallback(func() {
		f.updates++ // distinct update IDs: the workflow itself must spot the duplicate
		f.env.UpdateWorkflow(contract.UpdateHREvent, fmt.Sprint("u", f.updates), &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("event %s rejected: %v", req.Event.EventID, err) },
			OnAccept: func() {},
			OnComplete: func(res any, err error) {
				require.NoError(t, err)
				if dup != nil {
					*dup = res.(workflows.EventAccepted).Duplicate
				}
			},
		}, req)
	}, at)
}

// runIdentity runs the identity workflow until end (then cancels it).
func (f *fixture) runIdentity(end time.Duration) {
	f.env.RegisterDelayedCallback(f.env.CancelWorkflow, end)
	f.env.ExecuteWorkflow(contract.IdentityWorkflowName, workflows.IdentityInput{EmployeeID: "E1"})
}

var alice = map[string]string{"email": "alice@acme.test", "department": "eng"}

func TestMoverWaitsForJoinerAndDuplicateIgnored(t *testing.T) {
	f := newFixture(t, testPolicy())
	var dup1, dup2 bool
	f.send(t, time.Second, event("h1", hr.Hire, "E1", alice), &dup1)
	f.send(t, time.Second, event("c1", hr.Change, "E1", map[string]string{"department": "sales"}), nil)
	f.send(t, 2*time.Second, event("h1", hr.Hire, "E1", alice), &dup2)
	f.runIdentity(time.Hour)

	assert.False(t, dup1)
	assert.True(t, dup2, "a redelivered event answers Duplicate")
	accts := f.target.Accounts()
	require.Len(t, accts, 1)
	assert.Equal(t, "sales", accts[0].Attrs["department"])
	assert.ElementsMatch(t, []string{"everyone", "dept-sales"}, accts[0].Groups)
	calls := f.target.Calls()
	assert.Equal(t, 1, count(calls, "create"))
	// The mover's update comes after the joiner's groups: it waited.
	assert.Less(t, index(calls, "add dept-eng"), index(calls, "update"))
	assert.Less(t, index(calls, "update"), index(calls, "remove dept-eng"))
}

func count(xs []string, x string) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func index(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return 1 << 30
}

func TestPreHireTimerFiresAndIsRescheduled(t *testing.T) {
	f := newFixture(t, testPolicy())
	start := f.env.Now()
	hire := event("h1", hr.Hire, "E1", alice)
	hire.Event.EffectiveAt = start.Add(10 * 24 * time.Hour)
	moved := event("h2", hr.Hire, "E1", alice)
	moved.Event.EffectiveAt = start.Add(20 * 24 * time.Hour)
	f.send(t, time.Second, hire, nil)
	f.send(t, 24*time.Hour, moved, nil) // the start date moves before the first timer fired
	check := func(at time.Duration, exists, active bool) {
		f.env.RegisterDelayedCallback(func() {
			a, ok := f.target.Find("user_name", "alice@acme.test")
			assert.Equal(t, exists, ok, "account exists at %s", at)
			assert.Equal(t, active, a.Active, "account active at %s", at)
		}, at)
	}
	day := 24 * time.Hour
	check(8*day, false, false) // first schedule (create at day 7) was moved
	check(17*day-time.Hour, false, false)
	check(17*day+time.Hour, true, false) // created 3 days before the start, disabled
	check(20*day+time.Hour, true, true)  // enabled on the start date
	f.runIdentity(25 * day)
	assert.Equal(t, 1, count(f.target.Calls(), "create"))
}

func TestLeaverCancelsJoinerWaitingForStartDate(t *testing.T) {
	f := newFixture(t, testPolicy())
	day := 24 * time.Hour
	hire := event("h1", hr.Hire, "E1", alice)
	hire.Event.EffectiveAt = f.env.Now().Add(10 * day)
	f.send(t, time.Second, hire, nil)
	f.send(t, 8*day, event("t1", hr.Terminate, "E1", nil), nil) // created (day 7), not yet enabled
	f.runIdentity(12 * day)
	a, ok := f.target.Find("user_name", "alice@acme.test")
	require.True(t, ok)
	assert.False(t, a.Active)
	assert.Empty(t, a.Groups)
	assert.Zero(t, count(f.target.Calls(), "activate"), "never enabled")
	assert.Equal(t, 1, count(f.target.Calls(), "deprovision"))
}

// TestChangeAfterLeaverGrantsNothing: a change delivered after the
// termination (late, or reordered by the HR feed) must not put the leaver
// back into groups; a rehire later uses its attributes.
func TestChangeAfterLeaverGrantsNothing(t *testing.T) {
	p := testPolicy()
	p.Leaver = policy.Flow{Steps: p.Leaver.Steps[:1]} // deprovision now, no delayed delete
	f := newFixture(t, p)
	f.send(t, time.Second, event("h1", hr.Hire, "E1", alice), nil)
	f.send(t, time.Minute, event("t1", hr.Terminate, "E1", nil), nil)
	f.send(t, time.Hour, event("c1", hr.Change, "E1", map[string]string{"department": "sales"}), nil)
	f.send(t, 2*time.Hour, event("r1", hr.Rehire, "E1", alice), nil)
	f.env.RegisterDelayedCallback(func() {
		a, ok := f.target.Find("user_name", "alice@acme.test")
		require.True(t, ok)
		assert.False(t, a.Active, "still deprovisioned after the late change")
		assert.Empty(t, a.Groups, "the late change granted nothing")
	}, 90*time.Minute)
	f.runIdentity(3 * time.Hour)
	calls := f.target.Calls()
	assert.Zero(t, count(calls, "update"), "no mover ran for the leaver")
	assert.NotContains(t, calls, "add dept-sales")
	a, ok := f.target.Find("user_name", "alice@acme.test")
	require.True(t, ok)
	assert.True(t, a.Active, "the rehire restores access")
}

func TestTerminationAtLocalTimeAndDelete(t *testing.T) {
	f := newFixture(t, testPolicy())
	f.send(t, time.Second, event("h1", hr.Hire, "E1", map[string]string{"email": "bob@acme.test", "department": "eng", "time_zone": "America/New_York"}), nil)
	term := event("t1", hr.Terminate, "E1", nil)
	// Effective Friday 2026-11-06; 17:00 in New York is 22:00 UTC.
	term.Event.EffectiveAt = time.Date(2026, 11, 6, 12, 0, 0, 0, time.UTC)
	f.send(t, time.Hour, term, nil)
	at := func(ts time.Time) time.Duration { return ts.Sub(f.env.Now()) }
	f.env.RegisterDelayedCallback(func() {
		a, _ := f.target.Find("user_name", "bob@acme.test")
		assert.True(t, a.Active, "still active at 16:59 local")
	}, at(time.Date(2026, 11, 6, 21, 59, 0, 0, time.UTC)))
	f.env.RegisterDelayedCallback(func() {
		a, ok := f.target.Find("user_name", "bob@acme.test")
		assert.True(t, ok)
		assert.False(t, a.Active, "deprovisioned at 17:01 local")
	}, at(time.Date(2026, 11, 6, 22, 1, 0, 0, time.UTC)))
	f.env.RegisterDelayedCallback(func() {
		_, ok := f.target.Find("user_name", "bob@acme.test")
		assert.True(t, ok, "not deleted before 30 days")
	}, at(time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)))
	f.runIdentity(at(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)))
	_, ok := f.target.Find("user_name", "bob@acme.test")
	assert.False(t, ok, "deleted 30 days after deprovisioning")
}

func TestPasswordReachesRESTStepOnlyThroughVault(t *testing.T) {
	f := newFixture(t, testPolicy())
	var res workflows.LifecycleResult
	f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1", Attributes: withID(alice), HostQueues: true})
	require.NoError(t, f.env.GetWorkflowResult(&res))
	a, ok := f.target.Find("user_name", "alice@acme.test")
	require.True(t, ok)
	require.Len(t, a.Password, 18)
	reqs := f.requests()
	require.NotEmpty(t, reqs)
	assert.Contains(t, reqs[0].body, `"password":"`+a.Password+`"`)
}

func withID(m map[string]string) map[string]string {
	out := map[string]string{"employee_id": "E1"}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func steps(t *testing.T, env *testsuite.TestWorkflowEnvironment) []workflows.StepInfo {
	v, err := env.QueryWorkflow(contract.QuerySteps)
	require.NoError(t, err)
	var s []workflows.StepInfo
	require.NoError(t, v.Get(&s))
	return s
}

// outcome records how an update ended (callbacks may run later).
type outcome struct {
	rejected error
	accepted bool
}

func update(env *testsuite.TestWorkflowEnvironment, name string, arg any) *outcome {
	o := &outcome{}
	env.UpdateWorkflow(name, fmt.Sprintf("%s-%p", name, o), &testsuite.TestUpdateCallback{
		OnReject: func(err error) { o.rejected = err }, OnAccept: func() { o.accepted = true }, OnComplete: func(any, error) {},
	}, arg)
	return o
}

func TestNeedsAttentionOperatorActions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		act       func(f *fixture) *outcome
		wantState string
		wantStep  string // state of send_rest_request at the end
	}{
		{"retry after fix", func(f *fixture) *outcome {
			f.mu.Lock()
			f.restFail = false
			f.mu.Unlock()
			return update(f.env, contract.UpdateRetryStep, workflows.RetryStepRequest{Step: "send_rest_request"})
		}, contract.StateCompleted, workflows.StepDone},
		{"skip", func(f *fixture) *outcome {
			return update(f.env, contract.UpdateSkipStep, workflows.StepRequest{Step: "send_rest_request"})
		}, contract.StateCompleted, workflows.StepSkipped},
		{"abort", func(f *fixture) *outcome {
			return update(f.env, contract.UpdateAbort, workflows.StepRequest{})
		}, contract.StateAborted, workflows.StepAborted},
		{"abort with rollback", func(f *fixture) *outcome {
			return update(f.env, contract.UpdateAbort, workflows.StepRequest{Rollback: true})
		}, contract.StateAborted, workflows.StepAborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testPolicy())
			f.restFail = true
			var wrongStep, notBlocked, act *outcome
			f.env.RegisterDelayedCallback(func() {
				s := steps(t, f.env)
				require.Len(t, s, 4)
				assert.Equal(t, workflows.StepDone, s[1].State)
				assert.Equal(t, workflows.StepFailed, s[2].State)
				assert.Equal(t, "RestBadRequest: send_rest_request: rest: POST https://portal.test/accounts: 400 Bad Request: {}", s[2].LastError)
				wrongStep = update(f.env, contract.UpdateRetryStep, workflows.RetryStepRequest{Step: "app.sync_identity"})
				notBlocked = update(f.env, contract.UpdateRelease, workflows.StepRequest{})
			}, time.Minute)
			f.env.RegisterDelayedCallback(func() { act = tc.act(f) }, 2*time.Minute)
			f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1", Attributes: withID(alice), HostQueues: true})
			var res workflows.LifecycleResult
			require.NoError(t, f.env.GetWorkflowResult(&res))
			assert.ErrorContains(t, wrongStep.rejected, "is not the failed step")
			assert.ErrorContains(t, notBlocked.rejected, "nothing blocked")
			require.NoError(t, act.rejected)
			assert.True(t, act.accepted)
			assert.Equal(t, tc.wantState, res.State)
			s := steps(t, f.env)
			assert.Equal(t, tc.wantStep, s[2].State)
			if tc.wantState == contract.StateAborted {
				assert.Contains(t, res.LeftInPlace[0], "created by this run")
				assert.Contains(t, res.LeftInPlace[1], "2 added")
				accts := f.target.Accounts()
				require.Len(t, accts, 1)
				if strings.Contains(tc.name, "rollback") {
					require.Len(t, res.LeftInPlace, 3)
					assert.Contains(t, res.LeftInPlace[2], "rollback: account")
					assert.False(t, accts[0].Active, "rolled back: disabled")
					assert.Empty(t, accts[0].Groups)
					assert.Equal(t, workflows.StepDone, s[len(s)-1].State, "app.rollback")
				} else {
					require.Len(t, res.LeftInPlace, 2, "what the joiner created is listed")
					assert.True(t, accts[0].Active, "left in place")
				}
			}
			var urls []string
			for _, r := range f.requests() {
				urls = append(urls, r.url)
			}
			assert.Contains(t, urls, "https://portal.test/ops", "needs-attention notification")
			if tc.wantState == contract.StateCompleted {
				assert.Contains(t, urls, "https://portal.test/notify")
			} else {
				assert.NotContains(t, urls, "https://portal.test/notify")
			}
		})
	}
}

func TestGovernorBlocksAboveThreshold(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Governor, workflow.RegisterOptions{Name: contract.GovernorWorkflowName})
	var granted, blocked int
	for i := range 30 {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(contract.UpdatePermit, "", &testsuite.TestUpdateCallback{
				OnReject: func(err error) { t.Error(err) }, OnAccept: func() {},
				OnComplete: func(v any, err error) {
					require.NoError(t, err)
					if v.(activities.Permit).Granted {
						granted++
					} else {
						blocked++
					}
				},
			}, activities.PermitRequest{Key: "leaver/E" + string(rune('A'+i)) + "/deprovision", MaxPerHour: 25})
		}, time.Duration(i)*time.Second)
	}
	// An hour later the window has room again.
	var later activities.Permit
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdatePermit, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Error(err) }, OnAccept: func() {},
			OnComplete: func(v any, err error) { later = v.(activities.Permit) },
		}, activities.PermitRequest{Key: "later", MaxPerHour: 25})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(env.CancelWorkflow, 3*time.Hour)
	env.ExecuteWorkflow(contract.GovernorWorkflowName, workflows.GovernorState{})
	assert.Equal(t, 25, granted)
	assert.Equal(t, 5, blocked)
	assert.True(t, later.Granted)
}

// result records an update's outcome and its answer.
type result struct {
	rejected error
	answer   string
}

func updateResult(env *testsuite.TestWorkflowEnvironment, name string, arg any) *result {
	o := &result{}
	env.UpdateWorkflow(name, fmt.Sprintf("%s-%p", name, o), &testsuite.TestUpdateCallback{
		OnReject: func(err error) { o.rejected = err }, OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if s, ok := v.(string); ok {
				o.answer = s
			}
		},
	}, arg)
	return o
}

// TestSkipStepWithDependants: a step whose outputs a later step uses is
// not skipped alone (the answer lists the dependants); with cascade both
// are skipped, the run ends CompletedWithSkips, and who decided and why is
// in the step table and the result.
func TestSkipStepWithDependants(t *testing.T) {
	p := testPolicy()
	p.Targets["portal"] = policy.Target{Type: "rest", BaseURL: "https://portal.test", EntityType: "PortalAccount"}
	p.Joiner.Steps[2] = policy.Step{Name: "portal.handoff", SendRESTRequest: &policy.RESTRequest{Target: "portal", URL: "/accounts",
		Body: `{"login":"{ScimUser.user_name}"}`, Extract: map[string]string{"id": "$.id"}}}
	p.Joiner.Steps[3] = policy.Step{Name: "notify.done", Notify: &policy.RESTRequest{URL: "https://portal.test/notify", Body: `{"portal_id":"{PortalAccount.id}"}`}}
	f := newFixture(t, p)
	f.restFail = true
	var alone, release, cascade *result
	f.env.RegisterDelayedCallback(func() {
		alone = updateResult(f.env, contract.UpdateSkipStep, workflows.StepRequest{Step: "portal.handoff"})
		release = updateResult(f.env, contract.UpdateRelease, workflows.StepRequest{})
	}, time.Minute)
	f.env.RegisterDelayedCallback(func() {
		cascade = updateResult(f.env, contract.UpdateSkipStep, workflows.StepRequest{Step: "portal.handoff", Cascade: true,
			Reason: "portal retired", Operator: "alice"})
	}, 2*time.Minute)
	f.env.ExecuteWorkflow(contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: "joiner", EmployeeID: "E1", EventID: "h1",
		Attributes: withID(alice), HostQueues: true, Version: workflows.IdentityVersion})
	var res workflows.LifecycleResult
	require.NoError(t, f.env.GetWorkflowResult(&res))

	require.Error(t, alone.rejected)
	assert.Contains(t, alone.rejected.Error(), "later steps use the outputs of portal.handoff: notify.done")
	assert.ErrorContains(t, release.rejected, "nothing blocked: the run is NeedsAttention")
	require.NoError(t, cascade.rejected)
	assert.Equal(t, "skipped portal.handoff and notify.done; next end of run", cascade.answer)

	assert.Equal(t, contract.StateCompletedWithSkips, res.State)
	assert.Equal(t, []string{"portal.handoff", "notify.done"}, res.Skipped)
	require.Len(t, res.Decisions, 1)
	assert.Equal(t, workflows.Decision{Update: contract.UpdateSkipStep, Step: "portal.handoff", Operator: "alice",
		Reason: "portal retired", Time: res.Decisions[0].Time}, res.Decisions[0])
	s := steps(t, f.env)
	require.Len(t, s, 4)
	assert.Equal(t, workflows.StepSkipped, s[2].State)
	require.NotNil(t, s[2].Decision)
	assert.Equal(t, "alice", s[2].Decision.Operator)
	assert.Equal(t, workflows.StepSkipped, s[3].State)
	assert.Equal(t, "skipped with portal.handoff (cascade)", s[3].Note)
	for _, r := range f.requests() {
		assert.NotEqual(t, "https://portal.test/notify", r.url, "the dependant notify never ran")
	}
}
