package rest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testEnv = map[string]string{
	"HR_TOKEN": "tok-123", "HR_USER": "svc-jml", "HR_PASS": "login-pw-9", "HR_KEY": "key-abc",
	"CLIENT_ID": "jml-client", "CLIENT_SECRET": "cs-xyz",
}

func getenv(k string) string { return testEnv[k] }

func TestStaticCredentials(t *testing.T) {
	tests := []struct {
		name       string
		cred       rest.Credential
		wantHeader string
		wantValue  string
	}{
		{"bearer", rest.Credential{Type: "bearer", TokenEnv: "HR_TOKEN"}, "Authorization", "Bearer tok-123"},
		{"basic", rest.Credential{Type: "basic", UsernameEnv: "HR_USER", PasswordEnv: "HR_PASS"}, "Authorization",
			"Basic " + base64.StdEncoding.EncodeToString([]byte("svc-jml:login-pw-9"))},
		{"header", rest.Credential{Type: "header", Header: "X-Api-Key", ValueEnv: "HR_KEY"}, "X-Api-Key", "key-abc"},
		{"none", rest.Credential{Type: "none"}, "Authorization", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, true, reply(200, `{}`))
			logger, logs := logging.Capture()
			c := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: getenv, Logger: logger,
				Credentials: map[string]rest.Credential{"hr": tt.cred}})
			_, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL + "/ping", Credential: "hr"}})
			require.NoError(t, err)
			assert.Equal(t, tt.wantValue, srv.all()[0].Header.Get(tt.wantHeader))
			for _, v := range testEnv {
				assert.NotContains(t, logs(), v)
			}
		})
	}
}

func TestTargetAuthAndBaseURL(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	c := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: getenv})
	target := &rest.Target{BaseURL: srv.URL + "/api/v2/", TokenEnv: "HR_TOKEN"}
	_, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: "/users/{employee_id}"}, Target: target,
		Templates: oktaEnv()})
	require.NoError(t, err)
	got := srv.all()[0]
	assert.Equal(t, "/api/v2/users/E1001", got.Path)
	assert.Equal(t, "Bearer tok-123", got.Header.Get("Authorization"))
}

func TestCredentialConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cred    rest.Credential
		wantErr string
	}{
		{"env empty", rest.Credential{Type: "bearer", TokenEnv: "UNSET_VAR"}, "environment variable UNSET_VAR is empty"},
		{"env name missing", rest.Credential{Type: "bearer"}, "token_env is required"},
		{"header name missing", rest.Credential{Type: "header", ValueEnv: "HR_KEY"}, "header is required"},
		{"unknown type", rest.Credential{Type: "kerberos"}, `unknown type "kerberos"`},
		{"login url missing", rest.Credential{Type: "login_bearer", UsernameEnv: "HR_USER", PasswordEnv: "HR_PASS"}, "login_url is required"},
		{"token url missing", rest.Credential{Type: "oauth2", ClientIDEnv: "CLIENT_ID", ClientSecretEnv: "CLIENT_SECRET"}, "token_url is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rest.New(rest.Options{Getenv: getenv, Credentials: map[string]rest.Credential{"hr": tt.cred}})
			_, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: "https://hr.example/x", Credential: "hr"}})
			require.ErrorContains(t, err, tt.wantErr)
			var perm *connectors.PermanentError
			require.ErrorAs(t, err, &perm)
			assert.Equal(t, "RestConfig", perm.Type)
		})
	}
}

func TestCredentialNeverOverPlainHTTP(t *testing.T) {
	plain := newRecorder(t, false, reply(200, `{}`))
	c := rest.New(rest.Options{Getenv: getenv, Credentials: map[string]rest.Credential{
		"hr": {Type: "bearer", TokenEnv: "HR_TOKEN"}}})
	_, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: plain.URL, Credential: "hr"}})
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "RestInsecure", perm.Type)
	assert.Empty(t, plain.all())
}

// loginAPI is an HTTPS API whose /login trades username/password for a
// token, and whose /api accepts only the current token.
type loginAPI struct {
	mu      sync.Mutex
	logins  int
	current string
}

func (a *loginAPI) rotate() { a.mu.Lock(); a.current = ""; a.mu.Unlock() }

func (a *loginAPI) handle(w http.ResponseWriter, r *http.Request, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.URL.Path {
	case "/login":
		var in struct{ Username, Password string }
		if json.Unmarshal(body, &in) != nil || in.Username != "svc-jml" || in.Password != "login-pw-9" {
			reply(401, `{"error": "bad credentials"}`)(w, r, nil)
			return
		}
		a.logins++
		a.current = "session-" + string(rune('0'+a.logins))
		reply(200, `{"data": {"session": "`+a.current+`"}}`)(w, r, nil)
	default:
		if a.current == "" || r.Header.Get("Authorization") != "Bearer "+a.current {
			reply(401, `{"error": "token expired"}`)(w, r, nil)
			return
		}
		reply(200, `{"ok": true}`)(w, r, nil)
	}
}

func TestLoginToBearer(t *testing.T) {
	api := &loginAPI{}
	srv := newRecorder(t, true, api.handle)
	logger, logs := logging.Capture()
	c := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: getenv, Logger: logger, Credentials: map[string]rest.Credential{
		"portal": {Type: "login_bearer", LoginURL: srv.URL + "/login", UsernameEnv: "HR_USER", PasswordEnv: "HR_PASS",
			TokenField: "$.data.session"}}})
	send := func() error {
		_, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL + "/api/me", Credential: "portal"}})
		return err
	}
	require.NoError(t, send())
	require.NoError(t, send())
	assert.Equal(t, 1, api.logins, "the token is cached")

	api.rotate() // the server forgets the session: next call gets 401, logs in again, retries once
	require.NoError(t, send())
	assert.Equal(t, 2, api.logins)
	assert.NotContains(t, logs(), "login-pw-9")
	assert.NotContains(t, logs(), "session-")

	bad := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: func(k string) string {
		if k == "HR_PASS" {
			return "wrong"
		}
		return getenv(k)
	}, Credentials: map[string]rest.Credential{
		"portal": {Type: "login_bearer", LoginURL: srv.URL + "/login", UsernameEnv: "HR_USER", PasswordEnv: "HR_PASS"}}})
	_, err := bad.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL + "/api/me", Credential: "portal"}})
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "RestAuth", perm.Type)
	assert.Contains(t, err.Error(), "(login)")
}

func TestOAuth2ClientCredentials(t *testing.T) {
	var mu sync.Mutex
	tokenCalls := 0
	srv := newRecorder(t, true, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch r.URL.Path {
		case "/oauth2/token":
			form, _ := url.ParseQuery(string(body))
			id, sec, ok := r.BasicAuth()
			if !ok { // client_secret_post
				id, sec = form.Get("client_id"), form.Get("client_secret")
			}
			if form.Get("grant_type") != "client_credentials" || id != "jml-client" || sec != "cs-xyz" {
				reply(401, `{"error": "invalid_client"}`)(w, r, nil)
				return
			}
			mu.Lock()
			tokenCalls++
			mu.Unlock()
			reply(200, `{"access_token": "at-`+form.Get("scope")+`", "token_type": "Bearer", "expires_in": 3600}`)(w, r, nil)
		default:
			if r.Header.Get("Authorization") != "Bearer at-users.write" {
				reply(401, `{}`)(w, r, nil)
				return
			}
			reply(201, `{"id": "u-1"}`)(w, r, nil)
		}
	})
	c := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: getenv, Credentials: map[string]rest.Credential{
		"idp": {Type: "oauth2", TokenURL: srv.URL + "/oauth2/token", ClientIDEnv: "CLIENT_ID", ClientSecretEnv: "CLIENT_SECRET",
			Scopes: []string{"users.write"}}}})
	for range 3 {
		out, err := c.Send(context.Background(), rest.Request{Spec: rest.Spec{
			URL: srv.URL + "/users", Body: `{"login": "{OktaUser.login}"}`, Credential: "idp",
			Extract: map[string]string{"id": "$.id"}}, Templates: oktaEnv()})
		require.NoError(t, err)
		assert.Equal(t, "u-1", out["id"])
	}
	assert.Equal(t, 1, tokenCalls, "the token is reused until it expires")

	wrong := rest.New(rest.Options{HTTPClient: srv.Client(), Getenv: func(string) string { return "nope" },
		Credentials: map[string]rest.Credential{"idp": {Type: "oauth2", TokenURL: srv.URL + "/oauth2/token",
			ClientIDEnv: "CLIENT_ID", ClientSecretEnv: "CLIENT_SECRET"}}})
	_, err := wrong.Send(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL + "/users", Credential: "idp"}})
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "RestAuth", perm.Type)
	assert.Contains(t, err.Error(), "oauth2 token")
}
