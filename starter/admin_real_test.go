package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestAdminCommandsRealServer: the Temporal operations the docs use, as
// starter commands against a real server: a step Temporal keeps retrying
// (the portal answers 503) is paused, unpaused and reset; list --count
// counts the run; terminate ends it with the reason in its history and
// status says Terminated; setup creates a missing namespace with jml's
// search attributes and finds an existing one complete.
func TestAdminCommandsRealServer(t *testing.T) {
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer portal.Close()
	p := &policy.Policy{
		Targets: map[string]policy.Target{"portal": {Type: "rest", BaseURL: portal.URL}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{Name: "portal.create", SendRESTRequest: &policy.RESTRequest{Target: "portal", Method: "POST", URL: "/accounts", Body: `{"id":"{employee_id}"}`}},
		}},
	}
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, AllowInsecureLoopback: true}))
	}, worker.Options{})
	ctx := context.Background()
	acc, err := intake.Submit(ctx, env.Client, hr.Event{EventID: "evt-1", Type: hr.Hire, Employee: map[string]string{"employee_id": "A1"}})
	require.NoError(t, err)
	pending := func() (attempt int32, paused bool) {
		d, err := env.Client.DescribeWorkflowExecution(ctx, acc.WorkflowID, "")
		if err != nil {
			return 0, false // not started yet
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityId() == "portal.create" {
				return pa.GetAttempt(), pa.GetPaused()
			}
		}
		return 0, false
	}
	require.Eventually(t, func() bool { a, _ := pending(); return a >= 2 }, 30*time.Second, 100*time.Millisecond, "the step is retried")

	code, out, errs := starter(t, "activity", "pause", "A1", "--step", "portal.create", "--reason", "portal maintenance")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "paused")
	_, paused := pending()
	assert.True(t, paused, "Temporal holds the step paused")
	code, out, errs = starter(t, "status", "A1")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `portal\.create\s+send_rest_request\s+portal\s+paused\s`, out, "status says paused, not retrying")

	code, _, errs = starter(t, "activity", "unpause", "A1", "--step", "portal.create")
	require.Equal(t, 0, code, errs)
	_, paused = pending()
	assert.False(t, paused)
	before, _ := pending()
	code, out, errs = starter(t, "activity", "reset", "A1", "--step", "portal.create")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `attempts start again at 1; the \d+ before the reset are not in the run's history`, out,
		"reset says what it does to the count (it had %d)", before)
	code, _, errs = starter(t, "activity", "pause", "A1", "--step", "no.such_step")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "step no.such_step is not being run or retried (pending: portal.create)")

	code, out, errs = starter(t, "list", "--state", "Running", "--count")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "1\n", out)

	code, _, errs = starter(t, "terminate", "A1")
	assert.Equal(t, 2, code, "a reason is required")
	assert.Contains(t, errs, "--reason R")
	auditDB := filepath.Join(t.TempDir(), "audit.db")
	t.Setenv("JML_AUDIT_DB", auditDB)
	code, out, errs = starter(t, "terminate", "A1", "--reason", "portal retired", "--as", "ops@test")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, acc.WorkflowID+" terminated")
	d, err := env.Client.DescribeWorkflowExecution(ctx, acc.WorkflowID, "")
	require.NoError(t, err)
	assert.Equal(t, "Terminated", titleStatus(d.GetWorkflowExecutionInfo().GetStatus().String()))
	st, err := auditdb.Open(ctx, auditDB)
	require.NoError(t, err)
	recs, err := st.Records(ctx, auditdb.Filter{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.Len(t, recs, 1, "the termination is in the audit trail")
	assert.Equal(t, audit.OperatorTerminate, recs[0].Action)
	assert.Equal(t, "ops@test", recs[0].Actor)
	assert.Equal(t, "portal retired", recs[0].Reason)
	assert.Equal(t, "A1", recs[0].EmployeeID)
	assert.Equal(t, acc.WorkflowID, recs[0].WorkflowID)
	assert.Equal(t, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), recs[0].RunID)
	it := env.Client.GetWorkflowHistory(ctx, acc.WorkflowID, "", false, 0)
	var reason string
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetWorkflowExecutionTerminatedEventAttributes(); a != nil {
			reason = a.GetReason()
		}
	}
	assert.Equal(t, "portal retired (by ops@test)", reason)
	code, out, errs = starter(t, "status", "A1", "--run", acc.WorkflowID)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "state     Terminated")
	assert.Regexp(t, `portal\.create\s+send_rest_request\s+portal\s+stopped \(terminated\)\s`, out, "the step runs no more")

	code, out, errs = starter(t, "setup")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "namespace "+env.Namespace+" exists\nsearch attributes present\n", out)
	t.Setenv("TEMPORAL_NAMESPACE", "jml-setup-test")
	code, out, errs = starter(t, "setup", "--retention", "48h")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "namespace jml-setup-test created (retention 48h0m0s)\n"+
		"search attributes registered: JmlEmployeeId, JmlEvent, JmlState, JmlFailedStep\n", out)
	sa, err := env.Client.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "jml-setup-test"})
	require.NoError(t, err)
	for _, n := range []string{contract.SAEmployeeID, contract.SAEvent, contract.SAState, contract.SAFailedStep} {
		assert.Contains(t, sa.GetCustomAttributes(), n)
	}
	code, out, errs = starter(t, "setup")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "namespace jml-setup-test exists\nsearch attributes present\n", out)
}
