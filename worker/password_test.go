package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// fakePasswords answers like the worker's service: E1 is fine, the rest
// per the verdicts map.
type fakePasswords struct {
	verdicts map[string]activities.PasswordCheck
	checkErr error
	startErr error
	started  []string
	got      secret.Secret
}

func (f *fakePasswords) service() passwordService {
	return passwordService{
		check: func(_ context.Context, group, employeeID string, pw secret.Secret) (activities.PasswordCheck, error) {
			if v, ok := f.verdicts[employeeID]; ok {
				return v, f.checkErr
			}
			return activities.PasswordCheck{OK: true}, f.checkErr
		},
		start: func(_ context.Context, req activities.PasswordSyncRequest, pw secret.Secret) (string, error) {
			f.started = append(f.started, req.EmployeeID)
			f.got = pw
			if req.Handle != "" {
				return "", errors.New("the handler never makes a handle itself")
			}
			return "password-sync/" + req.EmployeeID + "/20261207T030000.000Z", f.startErr
		},
		status: func(_ context.Context, id string) (workflows.PasswordSyncResult, error) {
			if id != "E1/20261207T030000.000Z" {
				return workflows.PasswordSyncResult{}, workflows.ErrNoPasswordChange
			}
			return workflows.PasswordSyncResult{State: workflows.PasswordChanged, EmployeeID: "E1", Group: "corp",
				Targets: []workflows.PasswordOutcome{{Target: "corp", AccountID: "a1", Auth: true, Outcome: workflows.AccountChanged}}}, nil
		},
	}
}

func TestPasswordHandler(t *testing.T) {
	const pw = "S3cret!correct-horse"
	rules := activities.PasswordCheck{Refusal: activities.RefusedRules, Failures: []policy.RuleFailure{
		{Rule: "min_length", Message: "at least 12"}, {Rule: "ascii_only", Target: "entra", Message: "ASCII only (target entra)"}}}
	verdicts := map[string]activities.PasswordCheck{
		"E2": rules,
		"E3": {Refusal: activities.RefusedTerminated, Message: "E3 is terminated"},
		"E4": {Refusal: activities.RefusedUnknownPerson, Message: "no person with employee ID E4"},
		"E5": {Refusal: activities.RefusedNoAccount, Message: "E5 has no account on corp"},
		"E6": {Refusal: activities.RefusedUnknownGroup, Message: `no password sync group "nope"`},
	}
	body := func(emp string) string {
		return `{"group":"corp","employee_id":"` + emp + `","password":"` + pw + `"}`
	}
	tests := []struct {
		name, token, auth, ctype, body string
		startErr                       error
		status                         int
		want                           []string
		started                        bool
	}{
		{"accepted", "tok", "Bearer tok", "application/json", body("E1"), nil, 202,
			[]string{`"id":"E1/20261207T030000.000Z"`, `"status_url":"/v1/password-changes/E1/20261207T030000.000Z"`, `"state":"Running"`}, true},
		{"endpoint off without a token", "", "Bearer tok", "application/json", `{}`, nil, 503, []string{"JML_PASSWORD_TOKEN"}, false},
		{"wrong token", "tok", "Bearer nope", "application/json", body("E1"), nil, 401, []string{"not accepted"}, false},
		{"no token", "tok", "", "application/json", body("E1"), nil, 401, []string{"missing"}, false},
		{"wrong content type", "tok", "Bearer tok", "text/plain", body("E1"), nil, 415, []string{"application/json"}, false},
		{"malformed", "tok", "Bearer tok", "application/json", `{"password":"` + pw, nil, 400, []string{"malformed"}, false},
		{"trailing data", "tok", "Bearer tok", "application/json", body("E1") + `{}`, nil, 400, []string{"malformed"}, false},
		{"attributes refused, naming the field", "tok", "Bearer tok", "application/json",
			`{"group":"corp","employee_id":"E1","password":"` + pw + `","attributes":{"first_name":"Ada"}}`, nil, 400,
			[]string{`"field":"attributes"`, `unknown field \"attributes\"`}, false},
		{"accounts refused", "tok", "Bearer tok", "application/json",
			`{"accounts":{"corp":["x"]},"group":"corp","employee_id":"E1","password":"` + pw + `"}`, nil, 400, []string{`"field":"accounts"`}, false},
		{"not a string", "tok", "Bearer tok", "application/json", `{"group":"corp","employee_id":5001,"password":"x"}`, nil, 400,
			[]string{`"field":"employee_id"`}, false},
		{"missing fields", "tok", "Bearer tok", "application/json", `{"group":"corp"}`, nil, 400, []string{"missing employee_id, password"}, false},
		{"employee ID that is a path", "tok", "Bearer tok", "application/json", body("../../E5001"), nil, 400,
			[]string{`"field":"employee_id"`, "only letters, digits"}, false},
		{"broken rules, each named", "tok", "Bearer tok", "application/json", body("E2"), nil, 422,
			[]string{`"code":"rules"`, "breaks min_length, ascii_only", `"rule":"min_length"`, `"rule":"ascii_only","target":"entra"`}, false},
		{"terminated", "tok", "Bearer tok", "application/json", body("E3"), nil, 409, []string{`"code":"terminated"`}, false},
		{"unknown person", "tok", "Bearer tok", "application/json", body("E4"), nil, 404, []string{`"code":"unknown_person"`}, false},
		{"no account yet", "tok", "Bearer tok", "application/json", body("E5"), nil, 409, []string{`"code":"no_account"`}, false},
		{"unknown group", "tok", "Bearer tok", "application/json", body("E6"), nil, 422, []string{`"field":"group"`}, false},
		{"temporal down", "tok", "Bearer tok", "application/json", body("E1"), errors.New("unavailable " + pw), 503, []string{"retry"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePasswords{verdicts: verdicts, startErr: tt.startErr}
			core, logs := observer.New(zap.DebugLevel)
			h := passwordHandler(passwordEndpoint{token: tt.token, svc: f.service(), log: zap.New(core)})
			r := httptest.NewRequest(http.MethodPost, "/v1/password-changes", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ctype)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			for _, want := range tt.want {
				assert.Contains(t, w.Body.String(), want)
			}
			assert.NotContains(t, w.Body.String(), pw, "the answer never echoes the password")
			assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
			assert.Equal(t, tt.started, len(f.started) == 1, "started %v", f.started)
			if tt.started {
				assert.Equal(t, pw, f.got.Reveal())
			}
			for _, e := range logs.All() {
				assert.NotContains(t, fmt.Sprint(e.Message, e.ContextMap()), pw)
			}
		})
	}
}

func TestPasswordStatusHandler(t *testing.T) {
	f := &fakePasswords{}
	h := passwordHandler(passwordEndpoint{token: "tok", svc: f.service()})
	for _, tt := range []struct {
		path   string
		auth   string
		status int
		want   string
	}{
		{"/v1/password-changes/E1/20261207T030000.000Z", "Bearer tok", 200, `"outcome":"changed"`},
		{"/v1/password-changes/password-sync/E1/20261207T030000.000Z", "Bearer tok", 200, `"id":"E1/20261207T030000.000Z"`},
		{"/v1/password-changes/E2/20261207T030000.000Z", "Bearer tok", 404, `"code":"not_found"`},
		{"/v1/password-changes/E1/20261207T030000.000Z", "Bearer nope", 401, "not accepted"},
	} {
		r := httptest.NewRequest(http.MethodGet, tt.path, nil)
		r.Header.Set("Authorization", tt.auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, tt.status, w.Code, tt.path)
		assert.Contains(t, w.Body.String(), tt.want, tt.path)
	}
	r := httptest.NewRequest(http.MethodDelete, "/v1/password-changes/E1/20261207T030000.000Z", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}

// TestPasswordAuthRateLimit: 30 wrong tokens in a row are slowed down per
// client, logged without the token and counted.
func TestPasswordAuthRateLimit(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.DebugLevel)
	f := &fakePasswords{}
	h := passwordHandler(passwordEndpoint{token: "right-token", svc: f.service(), log: zap.New(core),
		limiter: newAuthLimiter(5, 10*time.Second, func() time.Time { return now }), metrics: newPasswordMetrics(reg)})
	send := func(ip, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/password-changes", strings.NewReader(`{"group":"corp","employee_id":"E1","password":"Pw-1234567890"}`))
		r.RemoteAddr = ip + ":40000" // host:port, an IPv6 host in brackets
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	var codes []int
	for i := range 30 {
		codes = append(codes, send("192.0.2.7", fmt.Sprintf("guess-%02d", i)).Code)
	}
	assert.Equal(t, []int{401, 401, 401, 401, 401}, codes[:5])
	for _, c := range codes[5:] {
		assert.Equal(t, http.StatusTooManyRequests, c)
	}
	w := send("192.0.2.7", "right-token")
	assert.Equal(t, http.StatusTooManyRequests, w.Code, "a blocked client learns nothing, even with the right token")
	assert.Equal(t, "10", w.Header().Get("Retry-After"))
	assert.Equal(t, http.StatusAccepted, send("198.51.100.9", "right-token").Code, "another client is not slowed")

	for i := range 5 { // one IPv6 host cannot escape by changing its address in its /64
		send(fmt.Sprintf("[2001:db8::%x]", i+1), "guess")
	}
	assert.Equal(t, http.StatusTooManyRequests, send("[2001:db8::99]", "right-token").Code)

	now = now.Add(10 * time.Second) // one failure's allowance back
	assert.Equal(t, http.StatusUnauthorized, send("192.0.2.7", "guess-again").Code)
	assert.Equal(t, http.StatusTooManyRequests, send("192.0.2.7", "guess-more").Code)
	now = now.Add(10 * time.Second)
	assert.Equal(t, http.StatusAccepted, send("192.0.2.7", "right-token").Code)

	assert.Equal(t, 11.0, testutil.ToFloat64(newCounterOf(t, reg, "jml_password_auth_failures_total")))
	assert.Equal(t, 28.0, testutil.ToFloat64(newCounterOf(t, reg, "jml_password_rate_limited_total")))
	failures := logs.FilterMessage("password endpoint: authentication failed").All()
	require.Len(t, failures, 11)
	for _, e := range failures {
		assert.Contains(t, []any{"192.0.2.7", "2001:db8::/64"}, e.ContextMap()["client"])
		assert.NotContains(t, fmt.Sprint(e.ContextMap()), "guess")
	}
}

// newCounterOf sums a registered counter family, whatever its labels.
func newCounterOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	c.Add(sum)
	return c
}
