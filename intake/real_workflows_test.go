package intake_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestRealIdentityWorkflow delivers events to jml's own identity workflow
// (not the stand-in): a hire dated next year waits on its timer, a replay
// is a duplicate, and a termination before the start date replaces it.
func TestRealIdentityWorkflow(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	p, err := policy.Load("../examples/policy.yaml")
	require.NoError(t, err)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p}))
	}, worker.Options{EnableSessionWorker: true})
	srv := newIntake(t, env.Client)

	hire := []byte(`{"event_id":"evt-h","type":"hire","effective_at":"2027-06-01T09:00:00-04:00",
  "employee":{"employee_id":"R100","first_name":"Ada","last_name":"Lovelace","department":"Engineering","country_code":"US"}}`)
	r := post(t, srv.URL+"/v1/events", hire, signed(hire, now))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, "joiner/R100/evt-h", r.body.WorkflowID)

	r = post(t, srv.URL+"/v1/events", hire, signed(hire, now))
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.True(t, r.body.Duplicate)
	assert.Equal(t, "joiner/R100/evt-h", r.body.WorkflowID)

	term := []byte(`{"event_id":"evt-t","type":"terminate","effective_at":"2027-09-01T17:00:00-04:00","employee":{"employee_id":"R100"}}`)
	r = post(t, srv.URL+"/v1/events", term, signed(term, now))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, "leaver/R100/evt-t", r.body.WorkflowID)

	require.Eventually(t, func() bool {
		v, err := env.Client.QueryWorkflow(context.Background(), "identity/R100", "", contract.QueryCurrent)
		if err != nil {
			return false
		}
		var cur workflows.CurrentRun
		// A termination before the start date drops the queued hire.
		return v.Get(&cur) == nil && len(cur.Pending) == 1 && cur.Pending[0] == "evt-t"
	}, 10*time.Second, 50*time.Millisecond)
}
