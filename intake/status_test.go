package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/workflows"
)

// postRaw posts with a bearer token and returns the response and its body.
func postRaw(t *testing.T, url string, body []byte) (*http.Response, intake.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	return resp, r
}

// TestTemporalRefusalIs503NotUnprocessable: a namespace without jml's
// search attributes refuses the start request with InvalidArgument. That
// is not the event's fault: 503 with Retry-After and an error log line,
// never 422 (which HR systems treat as final and drop the event).
func TestTemporalRefusalIs503NotUnprocessable(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{NoSearchAttributes: true})
	core, logs := observer.New(zapcore.InfoLevel)
	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, BearerToken: "tok",
		Logger: zap.New(core), SubmitTimeout: 10 * time.Second}))
	t.Cleanup(srv.Close)

	resp, r := postRaw(t, srv.URL+"/v1/events", hireJSON("SA1", "evt-sa"))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, r.Error)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Contains(t, r.Error, "retry later")
	assert.Contains(t, r.Error, "search attribute Jml", "the cause is named") // JmlEmployeeId or JmlState, whichever the server checks first
	assert.Empty(t, r.Fields)
	requireNoIdentity(t, env.Client, "SA1")

	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	require.Len(t, errs, 1, "one error log line")
	assert.Contains(t, errs[0].Message, "not delivered")
	assert.Contains(t, errs[0].ContextMap()["error"], "search attribute Jml")
}

// TestWorkflowRejectionIs422: the identity workflow's update validator
// refusing the event is the one Temporal answer that is a 4xx. (A person's
// first event starts the identity with it as input: no validator runs, so
// the person is hired first.)
func TestWorkflowRejectionIs422(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, BearerToken: "tok", SubmitTimeout: 10 * time.Second}))
	t.Cleanup(srv.Close)
	resp, r := postRaw(t, srv.URL+"/v1/events", hireJSON("RJ1", "evt-h"))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, r.Error)
	body := []byte(`{"event_id":"evt-r","type":"terminate","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"RJ1","test_reject":"no such person"}}`)
	resp, r = postRaw(t, srv.URL+"/v1/events", body)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, r.Error)
	assert.Contains(t, r.Error, "event rejected by the workflow")
	assert.Contains(t, r.Error, "no such person")
	assert.Empty(t, resp.Header.Get("Retry-After"))
}

// TestResendWithOtherContentIs409 against the stand-in identity workflow:
// the same event ID with other content is a conflict naming the run that
// holds the first version, never a silent duplicate.
func TestResendWithOtherContentIs409(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, BearerToken: "tok", SubmitTimeout: 10 * time.Second}))
	t.Cleanup(srv.Close)
	resp, r := postRaw(t, srv.URL+"/v1/events", hireJSON("C1", "evt-c"))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, r.Error)

	changed := bytes.Replace(hireJSON("C1", "evt-c"), []byte("Lovelace"), []byte("Byron"), 1)
	resp, r = postRaw(t, srv.URL+"/v1/events", changed)
	require.Equal(t, http.StatusConflict, resp.StatusCode, r.Error)
	assert.Contains(t, r.Error, "joiner/C1/evt-c")
	assert.Contains(t, r.Error, "evt-c")
	assert.Equal(t, "joiner/C1/evt-c", r.WorkflowID)
	assert.Equal(t, "evt-c", r.EventID)
	assert.False(t, r.Duplicate)

	// The very same content again is still a duplicate.
	resp, r = postRaw(t, srv.URL+"/v1/events", hireJSON("C1", "evt-c"))
	require.Equal(t, http.StatusOK, resp.StatusCode, r.Error)
	assert.True(t, r.Duplicate)
}

// TestConflictStopsABatch maps the workflow's answer with a scripted
// Submit: the second event of a BambooHR batch conflicts, the third is not
// sent.
func TestConflictStopsABatch(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	srv := httptest.NewServer(intake.New(intake.Config{BearerToken: "tok", AllowUnauthenticated: true,
		Submit: func(_ context.Context, ev hr.Event) (workflows.EventAccepted, error) {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, ev.EmployeeID())
			id := contract.LifecycleWorkflowID("mover", ev.EmployeeID(), ev.EventID)
			if len(sent) == 2 {
				return workflows.EventAccepted{WorkflowID: "mover/" + ev.EmployeeID() + "/first", Conflict: true}, nil
			}
			return workflows.EventAccepted{WorkflowID: id}, nil
		}}))
	t.Cleanup(srv.Close)
	var emps []string
	for _, id := range []string{"40001", "40002", "40003"} {
		emps = append(emps, `{"id": "`+id+`", "action": "Updated", "timestamp": "2026-11-22T08:58:00+0000",
   "changedFields": ["Job Title"], "fields": {"jobTitle": {"value": "Engineer"}}}`)
	}
	body := []byte(`{"employees": [` + strings.Join(emps, ",") + `]}`)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events/bamboohr", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))

	require.Equal(t, http.StatusConflict, resp.StatusCode, r.Error)
	assert.Contains(t, r.Error, "mover/40002/first")
	assert.Contains(t, r.Error, r.EventID)
	assert.Equal(t, "mover/40002/first", r.WorkflowID)
	require.Len(t, r.Events, 1, "the event before the conflict was delivered")
	assert.Equal(t, "40001", r.Events[0].EmployeeID)
	assert.Equal(t, []string{"40001", "40002"}, sent, "the batch stops at the conflict")
}
