package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestOperatorRetryRealWorkflow drives jml's own identity and joiner
// workflows: a REST step answered 400 leaves the run in NeedsAttention;
// once the target is fixed, `starter retry` moves it on to Completed.
func TestOperatorRetryRealWorkflow(t *testing.T) {
	var healthy atomic.Bool
	var calls atomic.Int32
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"department unknown"}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"acct-1"}`))
	}))
	defer portal.Close()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
targets:
  portal: {type: rest, base_url: `+portal.URL+`, auth: {type: none}}
joiner:
  steps:
    - name: portal.create
      send_rest_request: {target: portal, method: POST, url: /accounts, body: '{"id":"{employee_id}"}'}
`), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)

	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, AllowInsecureLoopback: true}))
	}, worker.Options{EnableSessionWorker: true})

	ev := hr.Event{EventID: "evt-1", Type: hr.Hire, EffectiveAt: time.Now().Add(-time.Hour),
		Employee: map[string]string{"employee_id": "Q1", "first_name": "Ada", "last_name": "L"}}
	acc, err := intake.Submit(context.Background(), env.Client, ev)
	require.NoError(t, err)
	require.Equal(t, "joiner/Q1/evt-1", acc.WorkflowID)

	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `JmlState = "NeedsAttention" AND WorkflowType = "Joiner"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	code, out, errs := starter(t, "list")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "joiner/Q1/evt-1")
	assert.Contains(t, out, "portal.create")

	code, out, errs = starter(t, "status", "Q1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "state     NeedsAttention at portal.create")
	assert.Regexp(t, `portal\.create\s+\S+\s+portal\s+failed`, out)
	before := calls.Load()

	healthy.Store(true)
	code, out, errs = starter(t, "retry", "Q1")
	require.Equal(t, 0, code, "%s%s", out, errs)
	assert.Contains(t, out, "retry portal.create: accepted by joiner/Q1/evt-1")
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "joiner/Q1/evt-1" AND JmlState = "Completed"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, before+1, calls.Load(), "exactly the failed step ran again")
}

// TestStatusShowsRetryingStep: a step Temporal is retrying (the target
// answers 503) shows in `starter status` as retrying, with the attempt and
// the last error of the pending activity, not as "running 1".
func TestStatusShowsRetryingStep(t *testing.T) {
	var healthy atomic.Bool
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"maintenance"}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"acct-1"}`))
	}))
	defer portal.Close()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
targets:
  portal: {type: rest, base_url: `+portal.URL+`, auth: {type: none}}
joiner:
  steps:
    - name: portal.create
      send_rest_request: {target: portal, method: POST, url: /accounts, body: '{"id":"{employee_id}"}'}
`), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, AllowInsecureLoopback: true}))
	}, worker.Options{})
	ev := hr.Event{EventID: "evt-1", Type: hr.Hire, EffectiveAt: time.Now().Add(-time.Hour),
		Employee: map[string]string{"employee_id": "R1", "first_name": "Ada", "last_name": "L"}}
	_, err = intake.Submit(context.Background(), env.Client, ev)
	require.NoError(t, err)

	var out string
	require.Eventually(t, func() bool {
		var code int
		code, out, _ = starter(t, "status", "R1")
		return code == 0 && strings.Contains(out, "retrying")
	}, time.Minute, 200*time.Millisecond)
	assert.Regexp(t, `portal\.create\s+send_rest_request\s+portal\s+retrying\s+[2-9]\d*\s+.*503`, out)
	code, js, errs := starter(t, "status", "R1", "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, js, `"retrying": [`)
	assert.Contains(t, js, `"activity_id": "portal.create"`)

	healthy.Store(true)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "joiner/R1/evt-1" AND JmlState = "Completed"`) == 1
	}, time.Minute, 200*time.Millisecond)
}

// TestStatusShowsLinkWhileRunWaits: a joiner created the person's account,
// then waits in NeedsAttention at a failed notify step; `starter status`
// already shows the account (the link is recorded when the step is done,
// not when the run ends).
func TestStatusShowsLinkWhileRunWaits(t *testing.T) {
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"channel archived"}`, http.StatusBadRequest)
	}))
	defer portal.Close()
	env, app := startNotifyJoiner(t, portal.URL)
	_, err := intake.Submit(context.Background(), env.Client, hr.Event{EventID: "evt-1", Type: hr.Hire,
		Employee: map[string]string{"employee_id": "L1", "email": "ada@acme.test"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `JmlState = "NeedsAttention" AND WorkflowType = "Joiner"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	acct, ok := app.Find("user_name", "ada@acme.test")
	require.True(t, ok)

	code, out, errs := starter(t, "status", "L1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "state     NeedsAttention at notify.done")
	assert.Contains(t, out, "accounts  app: "+acct.ID+" (ada@acme.test)")
	code, js, errs := starter(t, "status", "L1", "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, js, `"accounts": {`)
	assert.Contains(t, js, `"app": "`+acct.ID+`"`)
}

// TestStatusShowsTerminatedRun: a run terminated by an operator keeps the
// JmlState it last set (NeedsAttention); status and list show it as
// Terminated, from the execution's status, not as a run still waiting.
func TestStatusShowsTerminatedRun(t *testing.T) {
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"department unknown"}`, http.StatusBadRequest)
	}))
	defer portal.Close()
	p := &policy.Policy{Joiner: policy.Flow{Steps: []policy.Step{
		{Name: "portal.create", Notify: &policy.RESTRequest{URL: portal.URL + "/accounts", Body: `{"id":"{employee_id}"}`}},
	}}}
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, AllowInsecureLoopback: true}))
	}, worker.Options{})
	acc, err := intake.Submit(context.Background(), env.Client, hr.Event{EventID: "evt-1", Type: hr.Hire,
		Employee: map[string]string{"employee_id": "T1", "first_name": "Ada", "last_name": "L"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `JmlState = "NeedsAttention" AND WorkflowType = "Joiner"`) == 1
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, env.Client.TerminateWorkflow(context.Background(), acc.WorkflowID, "", "operator gave up"))
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `ExecutionStatus = "Terminated" AND WorkflowType = "Joiner"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, int64(1), countWorkflows(t, env, `JmlState = "NeedsAttention" AND WorkflowType = "Joiner"`),
		"the search attribute still reads what the run last set")

	code, out, errs := starter(t, "status", "T1", "--run", acc.WorkflowID)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "state     Terminated (last JmlState NeedsAttention at portal.create)")
	assert.NotContains(t, out, "next:", "no operator action offered on a closed run")
	code, js, errs := starter(t, "status", "T1", "--run", acc.WorkflowID, "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, js, `"state": "Terminated"`)
	assert.Contains(t, js, `"execution": "Terminated"`)

	// Without --run: the identity's last run, the same answer.
	code, out, errs = starter(t, "status", "T1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "run       "+acc.WorkflowID)
	assert.Contains(t, out, "state     Terminated (last JmlState NeedsAttention at portal.create)")

	code, out, errs = starter(t, "list")
	require.Equal(t, 0, code, errs)
	assert.NotContains(t, out, acc.WorkflowID, "a terminated run does not need attention")
	code, out, errs = starter(t, "list", "--state", "Terminated")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `joiner/T1/evt-1\s+T1\s+\S+\s+Terminated\s`, out)
}

// TestStatusShowsAbortAndDecisions: a joiner created an account, then its
// notify step failed after Temporal retried it; an operator retried it
// (it failed again) and aborted. Status counts every attempt across the
// operator's retry, and prints what the abort left in place and who
// decided what, why.
func TestStatusShowsAbortAndDecisions(t *testing.T) {
	var calls atomic.Int32
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each execution: one retryable failure, then a permanent one.
		if calls.Add(1)%2 == 1 {
			http.Error(w, `{"error":"maintenance"}`, http.StatusServiceUnavailable)
			return
		}
		http.Error(w, `{"error":"channel archived"}`, http.StatusBadRequest)
	}))
	defer portal.Close()
	env, app := startNotifyJoiner(t, portal.URL)
	acc, err := intake.Submit(context.Background(), env.Client, hr.Event{EventID: "evt-1", Type: hr.Hire,
		Employee: map[string]string{"employee_id": "D1", "email": "ada@acme.test"}})
	require.NoError(t, err)
	needsAttention := func(failures int32) {
		t.Helper()
		require.Eventually(t, func() bool {
			return calls.Load() == failures &&
				countWorkflows(t, env, `JmlState = "NeedsAttention" AND WorkflowType = "Joiner"`) == 1
		}, time.Minute, 100*time.Millisecond)
	}
	needsAttention(2)
	code, _, errs := starter(t, "retry", "D1", "--as", "alice", "--reason", "portal back up")
	require.Equal(t, 0, code, errs)
	needsAttention(4)
	code, out, errs := starter(t, "status", "D1")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `notify\.done\s+notify\s+\S*\s*failed\s+4\s`, out, "two attempts in each of two executions")

	code, _, errs = starter(t, "abort", "D1", "--as", "bob", "--reason", "hire withdrawn")
	require.Equal(t, 0, code, errs)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "`+acc.WorkflowID+`" AND ExecutionStatus = "Completed"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	acct, ok := app.Find("user_name", "ada@acme.test")
	require.True(t, ok)

	code, out, errs = starter(t, "status", "D1", "--run", acc.WorkflowID)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "left in place by the abort (keep or undo):\n  - account "+acct.ID+" in app (created by this run)\n")
	assert.Regexp(t, `RetryStep\s+notify\.done\s+by alice\s+portal back up\n`, out)
	assert.Regexp(t, `Abort\s+\S*\s*by bob\s+hire withdrawn\n`, out)
	code, js, errs := starter(t, "status", "D1", "--run", acc.WorkflowID, "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, js, `"left_in_place": [`)
	assert.Contains(t, js, `"operator": "bob"`)
}

// startNotifyJoiner starts a cluster whose joiner creates the account in
// an in-memory target, then notifies portalURL (the tests make that step
// fail so the run waits for an operator).
func startNotifyJoiner(t *testing.T, portalURL string) (*intaketest.Env, *memtarget.Target) {
	t.Helper()
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: map[string]string{"user_name": "{email}"}}},
			{Name: "notify.done", Notify: &policy.RESTRequest{URL: portalURL + "/notify", Body: `{"done":"{employee_id}"}`}},
		}},
	}
	app := memtarget.New()
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": app}, AllowInsecureLoopback: true}))
	}, worker.Options{})
	return env, app
}

// TestStatusHeaderReadsAccountState: a leaver has disabled the account and
// waits a day for its delete. The person is not deprovisioned yet (the
// run has not ended), and the account is not active: the header reads the
// state the link carries, "disabled", not the identity's "active". The
// person has no access requests: the step table leaves requests.revoke out.
func TestStatusHeaderReadsAccountState(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: map[string]string{"user_name": "{email}"}}},
		}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app"}},
			{DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: "24h"}},
		}},
	}
	app := memtarget.New()
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": app}}))
	}, worker.Options{})
	ctx := context.Background()
	emp := map[string]string{"employee_id": "D1", "email": "dora@acme.test"}
	_, err := intake.Submit(ctx, env.Client, hr.Event{EventID: "evt-1", Type: hr.Hire, Employee: emp})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "joiner/D1/evt-1" AND JmlState = "Completed"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	acct, ok := app.Find("user_name", "dora@acme.test")
	require.True(t, ok)
	code, out, errs := starter(t, "status", "D1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "employee  D1 (active)")
	assert.Contains(t, out, "accounts  app: "+acct.ID+" (dora@acme.test) active")

	_, err = intake.Submit(ctx, env.Client, hr.Event{EventID: "evt-2", Type: hr.Terminate, Employee: emp})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "leaver/D1/evt-2" AND JmlState = "Waiting"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	got, ok := app.Find("user_name", "dora@acme.test")
	require.True(t, ok)
	require.False(t, got.Active, "the leaver disabled the account")
	code, out, errs = starter(t, "status", "D1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "employee  D1 (disabled)", "the account's state, from the link")
	assert.Contains(t, out, "accounts  app: "+acct.ID+" (dora@acme.test) disabled")
	assert.Contains(t, out, "state     Waiting")
	assert.Regexp(t, `app\.deprovision_identity\s+deprovision_identity\s+app\s+done`, out)
	assert.NotContains(t, out, "requests.revoke", "no access requests: the revoke row is left out of the table")
	code, js, errs := starter(t, "status", "D1", "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, js, `"account_states": {`)
	assert.Contains(t, js, `"app": "disabled"`)
	assert.Contains(t, js, `"note": "0 access request(s) revoked"`, "the JSON keeps every row")

	// An account deleted out of band before the leaver: the header says
	// so, not the "active" its joiner read back.
	eve := map[string]string{"employee_id": "D2", "email": "eve@acme.test"}
	_, err = intake.Submit(ctx, env.Client, hr.Event{EventID: "evt-3", Type: hr.Hire, Employee: eve})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "joiner/D2/evt-3" AND JmlState = "Completed"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	eveAcct, ok := app.Find("user_name", "eve@acme.test")
	require.True(t, ok)
	require.NoError(t, app.Delete(ctx, eveAcct.ID))
	_, err = intake.Submit(ctx, env.Client, hr.Event{EventID: "evt-4", Type: hr.Terminate, Employee: eve})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowId = "leaver/D2/evt-4" AND JmlState = "Waiting"`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	code, out, errs = starter(t, "status", "D2")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "employee  D2 (absent)", "the leaver found no account")
	assert.Contains(t, out, "accounts  app: "+eveAcct.ID+" (eve@acme.test) absent")
}
