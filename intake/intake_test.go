package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/policy"
)

const secret = "s3cret-for-tests"

var now = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func newIntake(t *testing.T, c client.Client) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(intake.New(intake.Config{
		Client:        c,
		Policy:        &policy.Policy{RequiredAttributes: policy.RequiredAttributes{List: []string{"first_name", "last_name"}}},
		HMACSecret:    secret,
		BearerToken:   "tok-123",
		Now:           func() time.Time { return now },
		SubmitTimeout: 5 * time.Second,
	}))
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status int
	body   intake.Response
	raw    string
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r intake.Response
	require.NoError(t, json.Unmarshal(raw, &r), string(raw))
	return reply{resp.StatusCode, r, string(raw)}
}

func signed(body []byte, at time.Time) map[string]string {
	ts, sig := intake.Sign([]byte(secret), at, body)
	return map[string]string{intake.HeaderTimestamp: ts, intake.HeaderSignature: sig}
}

func hireJSON(employeeID, eventID string) []byte {
	return []byte(`{"event_id":"` + eventID + `","type":"hire","effective_at":"2026-12-01T09:00:00-05:00",
  "employee":{"employee_id":"` + employeeID + `","first_name":"Ada","last_name":"Lovelace","department":"Engineering"}}`)
}

// workflowCount is what visibility lists in the namespace.
func workflowCount(t *testing.T, env *intaketest.Env) int {
	t.Helper()
	resp, err := env.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: env.Namespace,
		Query: "WorkflowType != '" + intake.ClaimWorkflowName + "'"}) // an event ID's claim runs nothing
	require.NoError(t, err)
	return len(resp.Executions)
}

func requireNoIdentity(t *testing.T, c client.Client, employeeID string) {
	t.Helper()
	_, err := c.DescribeWorkflowExecution(context.Background(), contract.IdentityWorkflowID(employeeID), "")
	var nf *serviceerror.NotFound
	require.True(t, errors.As(err, &nf), "identity/%s exists (err %v)", employeeID, err)
}

func TestSignedEventStartsOneWorkflowAndReplayDoesNothing(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)

	body := hireJSON("E100", "evt-1")
	hdr := signed(body, now.Add(-time.Minute))
	first := post(t, srv.URL+"/v1/events", body, hdr)
	require.Equal(t, http.StatusAccepted, first.status, first.raw)
	assert.Equal(t, "joiner/E100/evt-1", first.body.WorkflowID)
	assert.False(t, first.body.Duplicate)

	// The HR system retries the very same delivery.
	again := post(t, srv.URL+"/v1/events", body, hdr)
	require.Equal(t, http.StatusOK, again.status, again.raw)
	assert.Equal(t, first.body.WorkflowID, again.body.WorkflowID)
	assert.True(t, again.body.Duplicate)

	d, err := env.Client.DescribeWorkflowExecution(context.Background(), "identity/E100", "")
	require.NoError(t, err)
	assert.Equal(t, contract.IdentityWorkflowName, d.WorkflowExecutionInfo.Type.Name)
	require.Eventually(t, func() bool { return workflowCount(t, env) == 1 }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 1, workflowCount(t, env))

	// A second event for the same person goes to the same workflow.
	body2 := hireJSON("E100", "evt-2")
	r := post(t, srv.URL+"/v1/events", body2, map[string]string{"Authorization": "Bearer tok-123"})
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, 1, workflowCount(t, env))
}

func TestEventWithoutIDIsDedupedByContent(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)
	hired := post(t, srv.URL+"/v1/events", hireJSON("E7", "h-E7"), map[string]string{"Authorization": "Bearer tok-123"})
	require.Equal(t, http.StatusAccepted, hired.status, hired.raw)
	body := []byte(`{"type":"terminate","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"E7"}}`)
	first := post(t, srv.URL+"/v1/events", body, map[string]string{"Authorization": "Bearer tok-123"})
	require.Equal(t, http.StatusAccepted, first.status, first.raw)
	assert.True(t, strings.HasPrefix(first.body.EventID, "h-"), first.body.EventID)
	// Same content, different whitespace and key order: same event.
	body2 := []byte(`{ "employee": {"employee_id": "E7"}, "effective_at": "2026-12-04T18:00:00+01:00", "type": "terminate" }`)
	again := post(t, srv.URL+"/v1/events", body2, map[string]string{"Authorization": "Bearer tok-123"})
	require.Equal(t, http.StatusOK, again.status, again.raw)
	assert.Equal(t, first.body.EventID, again.body.EventID)
}

func TestBadInput(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)
	// One accepted event first, so "unchanged" compares against a non-empty list.
	ok := hireJSON("E1", "evt-ok")
	require.Equal(t, http.StatusAccepted, post(t, srv.URL+"/v1/events", ok, signed(ok, now)).status)
	require.Eventually(t, func() bool { return workflowCount(t, env) == 1 }, 10*time.Second, 50*time.Millisecond)

	huge := []byte(`{"type":"hire","employee":{"employee_id":"E9","bio":"` + strings.Repeat("x", 1<<20) + `"}}`)
	good := hireJSON("E9", "evt-9")
	tests := []struct {
		name    string
		body    []byte
		hdr     func(body []byte) map[string]string
		ctype   string
		status  int
		wantMsg []string
		field   string
	}{
		{name: "malformed JSON", body: []byte("{\"type\": \"hire\",\n  \"employee\": {\"employee_id\": \"E9\",}\n}"),
			status: 400, wantMsg: []string{"line 2, column 36"}},
		{name: "truncated JSON", body: []byte(`{"type": "hire", "employee": {`), status: 400, wantMsg: []string{"line 1, column 31", "unexpected end"}},
		{name: "wrong JSON type", body: []byte(`{"type": 7}`), status: 400, wantMsg: []string{"line 1, column 11", `"type"`}},
		{name: "unknown type", body: []byte(`{"type":"promote","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"E9","first_name":"A","last_name":"B"}}`),
			status: 422, wantMsg: []string{`unknown event type "promote"`}, field: "type"},
		{name: "missing required attribute", body: []byte(`{"type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"E9","first_name":"A"}}`),
			status: 422, wantMsg: []string{"employee.last_name: required attribute missing"}, field: "employee.last_name"},
		{name: "missing employee id", body: []byte(`{"type":"terminate","effective_at":"2026-12-01T09:00:00Z","employee":{}}`),
			status: 422, wantMsg: []string{"employee.employee_id: required"}, field: "employee.employee_id"},
		{name: "effective_at without zone", body: []byte(`{"type":"terminate","effective_at":"2026-12-01T09:00:00","employee":{"employee_id":"E9"}}`),
			status: 422, wantMsg: []string{"no time zone"}, field: "effective_at"},
		{name: "employee id with a slash", body: []byte(`{"type":"terminate","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"E9/x"}}`),
			status: 422, field: "employee.employee_id"},
		{name: "body over 1 MiB", body: huge, status: 413, wantMsg: []string{"larger than 1048576 bytes"}},
		{name: "wrong signature", body: good, hdr: func(b []byte) map[string]string {
			h := signed(b, now)
			h[intake.HeaderSignature] = "v1=" + strings.Repeat("0", 64)
			return h
		}, status: 401, wantMsg: []string{"signature does not match"}},
		{name: "signature over another body", body: good, hdr: func([]byte) map[string]string { return signed(hireJSON("E9", "evt-other"), now) },
			status: 401, wantMsg: []string{"signature does not match"}},
		{name: "missing signature", body: good, hdr: func([]byte) map[string]string { return map[string]string{} },
			status: 401, wantMsg: []string{"missing signature"}},
		{name: "wrong bearer token", body: good, hdr: func([]byte) map[string]string { return map[string]string{"Authorization": "Bearer nope"} },
			status: 401, wantMsg: []string{"bearer token not accepted"}},
		{name: "stale timestamp", body: good, hdr: func(b []byte) map[string]string { return signed(b, now.Add(-6*time.Minute)) },
			status: 401, wantMsg: []string{"stale timestamp"}},
		{name: "timestamp from the future", body: good, hdr: func(b []byte) map[string]string { return signed(b, now.Add(6*time.Minute)) },
			status: 401, wantMsg: []string{"stale timestamp"}},
		{name: "wrong content type", body: good, ctype: "text/plain", status: 415, wantMsg: []string{`"text/plain" not supported`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := workflowCount(t, env)
			hdr := signed(tc.body, now)
			if tc.hdr != nil {
				hdr = tc.hdr(tc.body)
			}
			if tc.ctype != "" {
				hdr["Content-Type"] = tc.ctype
			}
			r := post(t, srv.URL+"/v1/events", tc.body, hdr)
			assert.Equal(t, tc.status, r.status, r.raw)
			for _, m := range tc.wantMsg {
				assert.Contains(t, r.body.Error, m)
			}
			if tc.field != "" {
				require.NotEmpty(t, r.body.Fields, r.raw)
				assert.Equal(t, tc.field, r.body.Fields[0].Field)
			}
			if tc.status == 400 {
				assert.NotZero(t, r.body.Line)
				assert.NotZero(t, r.body.Column)
			}
			requireNoIdentity(t, env.Client, "E9")
			assert.Equal(t, before, workflowCount(t, env))
		})
	}
}

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestTemporalUnreachableIs503AndRetrySucceeds(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	dead, err := client.NewLazyClient(client.Options{HostPort: deadAddr(t), Namespace: env.Namespace})
	require.NoError(t, err)
	defer dead.Close()
	down := newIntake(t, dead)

	body := hireJSON("E503", "evt-503")
	r := post(t, down.URL+"/v1/events", body, signed(body, now))
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.raw)
	assert.Contains(t, r.body.Error, "retry later")
	requireNoIdentity(t, env.Client, "E503")
	assert.Equal(t, 0, workflowCount(t, env))

	resp, err := http.Get(down.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	// The HR system retries; Temporal is back.
	up := newIntake(t, env.Client)
	r = post(t, up.URL+"/v1/events", body, signed(body, now))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, "joiner/E503/evt-503", r.body.WorkflowID)
}

func TestHRPayloadShapes(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)

	workday := []byte(`{
  "event": {"id": "BP-0042", "businessProcess": "Hire", "effectiveDate": "2026-12-01"},
  "worker": {"workerId": "21001", "name": {"firstName": "Grace", "lastName": "Hopper"},
    "primaryWorkEmail": "grace.hopper@acme.com", "businessTitle": "Rear Admiral",
    "supervisoryOrganization": "Engineering", "managerWorkerId": "20001",
    "location": {"name": "New York", "countryCode": "US", "timeZone": "America/New_York"}}}`)
	r := post(t, srv.URL+"/v1/events/workday", workday, signed(workday, now))
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, "joiner/21001/BP-0042", r.body.WorkflowID)

	bamboo := []byte(`{"employees": [
  {"id": "40012", "action": "Updated", "timestamp": "2026-11-22T08:58:00+0000",
   "changedFields": ["Status"], "fields": {"First Name": "Jon", "Last Name": "Snow", "Status": "Inactive", "Termination Date": "2026-11-30"}},
  {"id": "40013", "action": "Updated", "timestamp": "2026-11-22T08:58:00+0000",
   "changedFields": ["Job Title"], "fields": {"firstName": {"value": "Arya"}, "lastName": {"value": "Stark"}, "jobTitle": {"value": "Engineer"}}}
]}`)
	for _, id := range []string{"40012", "40013"} { // a change or termination needs a known person
		hire := hireJSON(id, "h-"+id)
		r = post(t, srv.URL+"/v1/events", hire, signed(hire, now))
		require.Equal(t, http.StatusAccepted, r.status, r.raw)
	}
	// BambooHR's own signature headers.
	ts := "2026-11-22T08:59:00Z"
	m := hmacHex(secret, append(append([]byte{}, bamboo...), ts...))
	r = post(t, srv.URL+"/v1/events/bamboohr", bamboo, map[string]string{intake.HeaderBambooTimestamp: ts, intake.HeaderBambooSignature: m})
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	require.Len(t, r.body.Events, 2)
	assert.True(t, strings.HasPrefix(r.body.Events[0].WorkflowID, "leaver/40012/h-"), r.body.Events[0].WorkflowID)
	assert.True(t, strings.HasPrefix(r.body.Events[1].WorkflowID, "mover/40013/h-"), r.body.Events[1].WorkflowID)

	// BambooHR retries the batch: both duplicates.
	r = post(t, srv.URL+"/v1/events/bamboohr", bamboo, map[string]string{intake.HeaderBambooTimestamp: ts, intake.HeaderBambooSignature: m})
	require.Equal(t, http.StatusOK, r.status, r.raw)

	bad := []byte(`{"event": {"id": "BP-1", "businessProcess": "Change Benefits", "effectiveDate": "2026-12-01"}, "worker": {"workerId": "21002"}}`)
	r = post(t, srv.URL+"/v1/events/workday", bad, signed(bad, now))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
	assert.Equal(t, "event.businessProcess", r.body.Fields[0].Field)
	requireNoIdentity(t, env.Client, "21002")
}

func TestHealthReadyMetrics(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	srv := newIntake(t, env.Client)
	body := hireJSON("E5", "evt-5")
	post(t, srv.URL+"/v1/events", body, signed(body, now))
	post(t, srv.URL+"/v1/events", body, nil)

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, path)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(text), `jml_intake_requests_total{code="202",source="api"} 1`)
	assert.Contains(t, string(text), `jml_intake_requests_total{code="401",source="api"} 1`)
	assert.Contains(t, string(text), `jml_intake_events_total{outcome="new",source="api",type="hire"} 1`)
	assert.Contains(t, string(text), "jml_intake_in_flight_requests 0")
	assert.Contains(t, string(text), "go_goroutines")
}

func TestTooManyInFlightIs503(t *testing.T) {
	// A "Temporal" that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	hung, err := client.NewLazyClient(client.Options{HostPort: l.Addr().String()})
	require.NoError(t, err)
	defer hung.Close()
	srv := httptest.NewServer(intake.New(intake.Config{
		Client: hung, BearerToken: "tok", MaxInFlight: 1, SubmitTimeout: 3 * time.Second,
	}))
	defer srv.Close()
	auth := map[string]string{"Authorization": "Bearer tok"}

	first := make(chan reply, 1)
	go func() { first <- post(t, srv.URL+"/v1/events", hireJSON("E1", "e1"), auth) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		text, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(text), "jml_intake_in_flight_requests 1")
	}, 5*time.Second, 20*time.Millisecond)

	r := post(t, srv.URL+"/v1/events", hireJSON("E2", "e2"), auth)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Contains(t, r.body.Error, "too many deliveries in flight")
	assert.Equal(t, http.StatusServiceUnavailable, (<-first).status)
}

// TestRequiredAttributesByEventType: the policy's rule for a terminate is
// enforced at the intake, so an event Plan would refuse starts nothing.
func TestRequiredAttributesByEventType(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	pol, err := policy.Parse("p.yaml", []byte(`targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
required_attributes:
  hire: [first_name, last_name]
  terminate: [termination_reason]
`))
	require.NoError(t, err)
	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, Policy: pol, BearerToken: "tok", SubmitTimeout: 5 * time.Second}))
	t.Cleanup(srv.Close)
	auth := map[string]string{"Authorization": "Bearer tok"}

	term := []byte(`{"event_id":"evt-t","type":"terminate","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"T1"}}`)
	r := post(t, srv.URL+"/v1/events", term, auth)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
	require.Len(t, r.body.Fields, 1, r.raw)
	assert.Equal(t, "employee.termination_reason", r.body.Fields[0].Field)
	assert.Contains(t, r.body.Error, "employee.termination_reason")
	requireNoIdentity(t, env.Client, "T1")
	assert.Equal(t, 0, workflowCount(t, env))

	hire := []byte(`{"event_id":"evt-h","type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"T1","first_name":"Ada","last_name":"Lovelace"}}`)
	r = post(t, srv.URL+"/v1/events", hire, auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	term = []byte(`{"event_id":"evt-t","type":"terminate","effective_at":"2026-12-04T17:00:00Z","employee":{"employee_id":"T1","termination_reason":"resigned"}}`)
	r = post(t, srv.URL+"/v1/events", term, auth)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	assert.Equal(t, "leaver/T1/evt-t", r.body.WorkflowID)
}
