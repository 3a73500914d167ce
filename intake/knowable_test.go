package intake_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/intake/intaketest"
)

// Issue 27: the intake answers what it will do. A change or termination
// for an employee ID jml has never seen is a 404 naming employee_id with
// nothing started (it used to start identity/E999 and a mover that failed
// on a misleading error); a new person whose ID differs only by case from
// an existing one is a 409 naming that identity, nothing started.
func TestIntakeRefusesWhatNoRunCanActOn(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)
	auth := map[string]string{"Authorization": "Bearer tok-123"}

	for _, body := range [][]byte{
		[]byte(`{"event_id":"c-1","type":"change","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"E999","first_name":"Ada","last_name":"Lovelace","department":"Sales"}}`),
		[]byte(`{"event_id":"t-1","type":"terminate","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"E999"}}`),
	} {
		r := post(t, srv.URL+"/v1/events", body, auth)
		require.Equal(t, http.StatusNotFound, r.status, r.raw)
		assert.Contains(t, r.body.Error, "employee_id E999: jml has no identity for this person")
		require.Len(t, r.body.Fields, 1)
		assert.Equal(t, "employee_id", r.body.Fields[0].Field)
	}
	requireNoIdentity(t, env.Client, "E999")
	assert.Equal(t, 0, workflowCount(t, env), "nothing was started")

	r := post(t, srv.URL+"/v1/events", hireJSON("ab12345", "h-1"), auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	r = post(t, srv.URL+"/v1/events", hireJSON("AB12345", "h-2"), auth)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	assert.Contains(t, r.body.Error, "employee_id AB12345 differs only by case from existing employee ab12345")
	assert.Equal(t, "identity/ab12345", r.body.WorkflowID)
	requireNoIdentity(t, env.Client, "AB12345")

	// A change for a known person is delivered as before.
	chg := []byte(`{"event_id":"c-2","type":"change","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"ab12345","department":"Sales"}}`)
	r = post(t, srv.URL+"/v1/events", chg, auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
}

// Issue 27: an event ID is unique across people. Resending an event ID
// already used for another person is a 409 naming the identity workflow
// that holds it, and nothing is started for the second person; the same
// person's resend stays a duplicate (200).
func TestIntakeRefusesEventIDOfAnotherPerson(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)
	auth := map[string]string{"Authorization": "Bearer tok-123"}

	r := post(t, srv.URL+"/v1/events", hireJSON("P1", "wd-1"), auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	r = post(t, srv.URL+"/v1/events", hireJSON("P1", "wd-1"), auth)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	assert.True(t, r.body.Duplicate)

	r = post(t, srv.URL+"/v1/events", hireJSON("P2", "wd-1"), auth)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	assert.Contains(t, r.body.Error, "event wd-1 was received before for employee P1")
	assert.Equal(t, "identity/P1", r.body.WorkflowID)
	assert.Equal(t, "wd-1", r.body.EventID)
	requireNoIdentity(t, env.Client, "P2")
	assert.Equal(t, 1, workflowCount(t, env), "only P1's identity")

	r = post(t, srv.URL+"/v1/events", hireJSON("P2", "wd-2"), auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
}
