package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

func TestPasswordHandler(t *testing.T) {
	const pw = "S3cret!correct-horse"
	pol := &policy.Policy{PasswordSyncGroups: []policy.PasswordSyncGroup{{Name: "corp"}}}
	tests := []struct {
		name     string
		token    string
		auth     string
		ctype    string
		body     string
		startErr error
		status   int
		want     string
		started  bool
	}{
		{"accepted", "tok", "Bearer tok", "application/json", `{"group":"corp","employee_id":"E1","password":"` + pw + `"}`, nil, 202, `"workflow_id":"password-sync/E1"`, true},
		{"endpoint off without a token", "", "Bearer tok", "application/json", `{}`, nil, 503, "JML_PASSWORD_TOKEN", false},
		{"wrong token", "tok", "Bearer nope", "application/json", `{}`, nil, 401, "not accepted", false},
		{"no token", "tok", "", "application/json", `{}`, nil, 401, "missing", false},
		{"wrong content type", "tok", "Bearer tok", "text/plain", `{}`, nil, 415, "application/json", false},
		{"malformed", "tok", "Bearer tok", "application/json", `{"password":"` + pw, nil, 400, "malformed", false},
		{"unknown field", "tok", "Bearer tok", "application/json", `{"pasword":"` + pw + `"}`, nil, 400, "malformed", false},
		{"missing fields", "tok", "Bearer tok", "application/json", `{"group":"corp"}`, nil, 422, "missing employee_id, password", false},
		{"unknown group", "tok", "Bearer tok", "application/json", `{"group":"nope","employee_id":"E1","password":"x"}`, nil, 422, `group: no password sync group \"nope\"`, false},
		{"temporal down", "tok", "Bearer tok", "application/json", `{"group":"corp","employee_id":"E1","password":"` + pw + `"}`, errors.New("unavailable " + pw), 503, "retry", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got secret.Secret
			started := false
			start := func(_ context.Context, req activities.PasswordSyncRequest, s secret.Secret) (string, error) {
				started = true
				got = s
				assert.Empty(t, req.Handle, "the handler never makes a handle itself")
				return "password-sync/" + req.EmployeeID, tt.startErr
			}
			r := httptest.NewRequest(http.MethodPost, "/v1/password-changes", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ctype)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			passwordHandler(pol, tt.token, start).ServeHTTP(w, r)
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), tt.want)
			assert.NotContains(t, w.Body.String(), pw, "the answer never echoes the password")
			require.Equal(t, tt.started, started)
			if tt.started {
				assert.Equal(t, pw, got.Reveal())
			}
		})
	}
}
