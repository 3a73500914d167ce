package rest_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const password = `Pa55"w\ord!ZQ`

// seen is what a test server received.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// recorder is a real HTTP(S) server on loopback that records requests and
// answers with respond.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func newRecorder(t testing.TB, tls bool, respond func(w http.ResponseWriter, r *http.Request, body []byte)) *recorder {
	t.Helper()
	rec := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		rec.mu.Unlock()
		respond(w, r, body)
	})
	rec.Server = httptest.NewUnstartedServer(h)
	rec.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are expected in some tests
	if tls {
		rec.StartTLS()
	} else {
		rec.Start()
	}
	t.Cleanup(rec.Close)
	return rec
}

func reply(status int, body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func oktaEnv() *transform.Env {
	return &transform.Env{
		Attrs:   map[string]string{"first_name": "Ada", "employee_id": "E1001"},
		Outputs: map[string]map[string]string{"OktaUser": {"login": "ada@acme.com", "password": password}},
	}
}

func accountRequest(url string) rest.Request {
	return rest.Request{
		Spec: rest.Spec{
			Method:       "POST",
			URL:          url,
			Body:         `{"login": "{OktaUser.login}", "password": "{OktaUser.password}", "employee": {"id": "{employee_id}"}}`,
			SuccessCodes: []int{201},
			Extract:      map[string]string{"account_id": "$.id", "first_item": "$.data.items[0].id", "active": "$.active"},
		},
		Templates: oktaEnv(),
		Secrets:   []secret.Secret{secret.New(password)},
	}
}

func TestPasswordGoesOverHTTPS(t *testing.T) {
	srv := newRecorder(t, true, reply(201, `{"id": "acc-42", "active": true, "data": {"items": [{"id": "it-1"}]}}`))
	logger, logs := logging.Capture()
	c := rest.New(rest.Options{HTTPClient: srv.Client(), Logger: logger})

	out, err := c.Send(context.Background(), accountRequest(srv.URL+"/api/accounts"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"account_id": "acc-42", "first_item": "it-1", "active": "true"}, out)

	reqs := srv.all()
	require.Len(t, reqs, 1)
	assert.Equal(t, "POST", reqs[0].Method)
	assert.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
	var got struct {
		Login, Password string
		Employee        struct{ ID string }
	}
	require.NoError(t, json.Unmarshal(reqs[0].Body, &got))
	assert.Equal(t, password, got.Password, "the target receives the rendered password")
	assert.Equal(t, "ada@acme.com", got.Login)
	assert.Equal(t, "E1001", got.Employee.ID)

	assert.Contains(t, logs(), `"status":201`)
	assert.NotContains(t, logs(), password)
	assert.NotContains(t, logs(), `Pa55\"w`)
}

func TestSecretRefusedOverPlainHTTP(t *testing.T) {
	plain := newRecorder(t, false, reply(201, `{"id":"x"}`))

	tests := []struct {
		name      string
		opts      rest.Options
		url       string
		mutate    func(*rest.Request)
		wantError bool
	}{
		{name: "loopback http without the test flag", url: plain.URL + "/api", wantError: true},
		{name: "password referenced but not passed as a secret", url: plain.URL + "/api", wantError: true,
			mutate: func(r *rest.Request) { r.Secrets = nil }},
		{name: "secret in a header", url: plain.URL + "/api", wantError: true, mutate: func(r *rest.Request) {
			r.Spec.Body = `{"login": "{OktaUser.login}"}`
			r.Spec.Headers = map[string]string{"X-Initial": "{OktaUser.password}"}
		}},
		{name: "non-loopback http even with the flag", opts: rest.Options{AllowInsecureLoopback: true},
			url: "http://hr.acme.example/api", wantError: true},
		{name: "loopback http with the test flag", opts: rest.Options{AllowInsecureLoopback: true}, url: plain.URL + "/api"},
		{name: "no secret: plain http is fine", url: plain.URL + "/api", mutate: func(r *rest.Request) {
			r.Spec.Body = `{"login": "{OktaUser.login}"}`
			r.Secrets = nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(plain.all())
			r := accountRequest(tt.url)
			r.Spec.Extract = nil
			if tt.mutate != nil {
				tt.mutate(&r)
			}
			_, err := rest.New(tt.opts).Send(context.Background(), r)
			if !tt.wantError {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var perm *connectors.PermanentError
			require.ErrorAs(t, err, &perm)
			assert.Equal(t, "RestInsecure", perm.Type)
			assert.Contains(t, err.Error(), "use an https:// URL")
			assert.NotContains(t, err.Error(), password)
			assert.Len(t, plain.all(), before, "nothing was sent")
		})
	}
}

func TestJSONEscapingCannotBreakTheBody(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	nasty := []string{
		`Robert"); DROP TABLE`,
		`back\slash \" quote`,
		"new\nline\ttab\r",
		`", "admin": true, "x": "`,
		"}{<script>&amp;\u2028ünïcødé",
		"{first_name}", // a value that looks like a placeholder stays literal
	}
	c := rest.New(rest.Options{HTTPClient: srv.Client()})
	for _, v := range nasty {
		env := &transform.Env{Attrs: map[string]string{"first_name": v, "employee_id": "E1"}}
		_, err := c.Send(context.Background(), rest.Request{
			Spec: rest.Spec{Method: "PUT", URL: srv.URL + "/u/{employee_id}",
				Body: `{"name": "Dear {first_name}!", "n": 1, "tags": ["{first_name}"]}`},
			Templates: env,
		})
		require.NoError(t, err)
		reqs := srv.all()
		var got map[string]any
		require.NoError(t, json.Unmarshal(reqs[len(reqs)-1].Body, &got), "body stays valid JSON for %q", v)
		assert.Equal(t, map[string]any{"name": "Dear " + v + "!", "n": float64(1), "tags": []any{v}}, got)
	}
}

func TestURLValuesAreEscaped(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	env := &transform.Env{Attrs: map[string]string{"login": "a b/../c?admin=1&x#y"}}
	_, err := rest.New(rest.Options{HTTPClient: srv.Client()}).Send(context.Background(), rest.Request{
		Spec: rest.Spec{URL: srv.URL + "/users/{login}?q={login}"}, Templates: env,
	})
	require.NoError(t, err)
	got := srv.all()[0]
	assert.Equal(t, "GET", got.Method)
	assert.Equal(t, "/users/a b/../c?admin=1&x#y", got.Path, "one path segment, decoded by the server")
	assert.Equal(t, "q=a%20b%2F..%2Fc%3Fadmin%3D1%26x%23y", got.Query)
}

func TestInvalidRequests(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	tests := []struct {
		name    string
		spec    rest.Spec
		wantErr string
	}{
		{"unknown method", rest.Spec{Method: "BREW", URL: srv.URL}, `method "BREW"`},
		{"POST without body", rest.Spec{Method: "POST", URL: srv.URL}, "body is required for POST"},
		{"PATCH without body", rest.Spec{Method: "patch", URL: srv.URL}, "body is required for PATCH"},
		{"GET with body", rest.Spec{Method: "GET", URL: srv.URL, Body: `{}`}, "GET request cannot have a body"},
		{"body not JSON", rest.Spec{Method: "POST", URL: srv.URL, Body: `{"a": {first_name}}`}, "body: not valid JSON"},
		{"no url", rest.Spec{Method: "GET"}, "url is required"},
		{"relative url without target", rest.Spec{URL: "/x"}, "url must be absolute"},
		{"url with userinfo", rest.Spec{URL: "https://u:p@example.com/"}, "must not embed credentials"},
		{"header injection", rest.Spec{URL: srv.URL, Headers: map[string]string{"X-Name": "{first_name}"}}, "line breaks"},
		{"bad success code", rest.Spec{URL: srv.URL, SuccessCodes: []int{2000}}, "success_codes"},
		{"unknown credential", rest.Spec{URL: srv.URL, Credential: "nope"}, `credential "nope" is not defined`},
	}
	c := rest.New(rest.Options{HTTPClient: srv.Client()})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Send(context.Background(), rest.Request{Spec: tt.spec,
				Templates: &transform.Env{Attrs: map[string]string{"first_name": "a\r\nX-Admin: 1"}}})
			require.ErrorContains(t, err, tt.wantErr)
			assert.True(t, connectors.IsPermanent(err))
		})
	}
	assert.Empty(t, srv.all(), "nothing was sent")
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		codes     []int
		wantType  string // permanent type, "transient", "ratelimited" or "" for success
		wantDelay time.Duration
		wantIs    error
	}{
		{name: "500", status: 500, body: "oops", wantType: "transient"},
		{name: "503", status: 503, wantType: "transient"},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, wantType: "ratelimited", wantDelay: 7 * time.Second},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "7"}, wantType: "ratelimited", wantDelay: 7 * time.Second},
		{name: "429 without header", status: 429, wantType: "ratelimited", wantDelay: connectors.DefaultRetryAfter},
		{name: "400 echoes the password", status: 400, body: `{"error": "password ` + password + ` too weak"}`, wantType: "RestBadRequest"},
		{name: "400 echoes the JSON-escaped password", status: 400, body: `{"error": "password Pa55\"w\\ord!ZQ too weak"}`, wantType: "RestBadRequest"},
		{name: "401", status: 401, wantType: "RestAuth"},
		{name: "404", status: 404, wantType: "RestNotFound", wantIs: connectors.ErrNotFound},
		{name: "404 accepted", status: 404, codes: []int{200, 404}},
		{name: "409", status: 409, wantType: "RestConflict", wantIs: connectors.ErrConflict},
		{name: "418", status: 418, wantType: "RestRejected"},
		{name: "200 when 201 expected", status: 200, codes: []int{201}, wantType: "RestUnexpectedStatus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, true, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			r := accountRequest(srv.URL + "/api")
			r.Spec.SuccessCodes, r.Spec.Extract = tt.codes, nil
			_, err := rest.New(rest.Options{HTTPClient: srv.Client()}).Send(context.Background(), r)
			if tt.wantType == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.NotContains(t, err.Error(), password)
			assert.NotContains(t, err.Error(), `Pa55\"w`)
			var (
				perm  *connectors.PermanentError
				trans *connectors.TransientError
				rl    *connectors.RateLimitedError
			)
			switch tt.wantType {
			case "transient":
				require.ErrorAs(t, err, &trans)
			case "ratelimited":
				require.ErrorAs(t, err, &rl)
				assert.Equal(t, tt.wantDelay, rl.RetryAfter)
			default:
				require.ErrorAs(t, err, &perm)
				assert.Equal(t, tt.wantType, perm.Type)
			}
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			if strings.Contains(tt.body, "too weak") {
				assert.Contains(t, err.Error(), "password "+secret.Redacted+" too weak", "the snippet is kept, redacted")
			}
		})
	}
}

func TestTimeoutAndConnectionErrorsAreTransient(t *testing.T) {
	release := make(chan struct{})
	slow := newRecorder(t, true, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	r := accountRequest(slow.URL + "/api?pw={OktaUser.password}")
	_, err := rest.New(rest.Options{HTTPClient: slow.Client(), Timeout: 50 * time.Millisecond}).Send(context.Background(), r)
	var trans *connectors.TransientError
	require.ErrorAs(t, err, &trans)
	assert.NotContains(t, err.Error(), "Pa55", "net/http quotes the URL; ours is redacted")

	dead := httptest.NewTLSServer(http.NotFoundHandler())
	url := dead.URL
	hc := dead.Client()
	dead.Close()
	_, err = rest.New(rest.Options{HTTPClient: hc}).Send(context.Background(), accountRequest(url+"/api"))
	require.ErrorAs(t, err, &trans)
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	_, err := rest.New(rest.Options{}).Send(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL}})
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "RestTLS", perm.Type)
}

func TestRedirectToPlainHTTPIsRefused(t *testing.T) {
	plain := newRecorder(t, false, reply(201, `{}`))
	tlsSrv := newRecorder(t, true, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		http.Redirect(w, r, plain.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	r := accountRequest(tlsSrv.URL + "/api")
	r.Spec.Extract = nil
	_, err := rest.New(rest.Options{HTTPClient: tlsSrv.Client()}).Send(context.Background(), r)
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "RestInsecure", perm.Type)
	assert.Empty(t, plain.all(), "the body was not replayed over http")
}

func TestExtractionFeedsALaterStep(t *testing.T) {
	srv := newRecorder(t, true, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == "POST" {
			reply(201, `{"data": {"account": {"id": 12345678901234567890, "tags": ["a", "b"]}}}`)(w, r, nil)
			return
		}
		reply(204, "")(w, r, nil)
	})
	c := rest.New(rest.Options{HTTPClient: srv.Client()})
	env := oktaEnv()
	out, err := c.Send(context.Background(), rest.Request{
		Spec: rest.Spec{URL: srv.URL + "/accounts", Body: `{"login": "{OktaUser.login}"}`,
			Extract: map[string]string{"account_id": "$.data.account.id", "tags": "data.account.tags", "last_tag": `$["data"]["account"].tags[-1]`}},
		Templates: env,
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"account_id": "12345678901234567890", "tags": `["a","b"]`, "last_tag": "b"}, out,
		"large numbers keep every digit")

	env.Outputs["HrPortal"] = out
	_, err = c.Send(context.Background(), rest.Request{
		Spec: rest.Spec{Method: "DELETE", URL: srv.URL + "/accounts/{HrPortal.account_id}/sessions"}, Templates: env,
	})
	require.NoError(t, err)
	assert.Equal(t, "/accounts/12345678901234567890/sessions", srv.all()[1].Path)
}

func TestExtractionErrors(t *testing.T) {
	tests := []struct{ body, path, wantErr string }{
		{`{"id": 1}`, "$.missing", `no field "missing"`},
		{`{"items": []}`, "$.items[0]", "out of range"},
		{`{"items": {}}`, "$.items[0]", "index [0] on an object"},
		{`<html>`, "$.id", "not JSON"},
		{`{"a": 1}`, "$.a[", "unclosed ["},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			srv := newRecorder(t, true, reply(200, tt.body))
			_, err := rest.New(rest.Options{HTTPClient: srv.Client()}).Send(context.Background(), rest.Request{
				Spec: rest.Spec{URL: srv.URL, Extract: map[string]string{"out": tt.path}}})
			require.ErrorContains(t, err, tt.wantErr)
			var perm *connectors.PermanentError
			require.ErrorAs(t, err, &perm)
			assert.Equal(t, "RestExtract", perm.Type)
		})
	}
}

func TestContextCancelIsNotClassified(t *testing.T) {
	srv := newRecorder(t, true, func(w http.ResponseWriter, r *http.Request, _ []byte) { <-r.Context().Done() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := rest.New(rest.Options{HTTPClient: srv.Client()}).Send(ctx, rest.Request{Spec: rest.Spec{URL: srv.URL}})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, connectors.IsPermanent(err))
}

func TestTargetRateLimitIsShared(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `{}`))
	c := rest.New(rest.Options{HTTPClient: srv.Client()})
	target := &rest.Target{BaseURL: srv.URL, RateLimit: 0.001} // one request per ~17 minutes
	r := rest.Request{Spec: rest.Spec{Target: "hr", URL: "/x"}, Target: target}
	_, err := c.Send(context.Background(), r)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Send(ctx, r)
	require.ErrorContains(t, err, "rate limit of target hr", "the limiter refuses at once: the wait would outlive the deadline")
	assert.Len(t, srv.all(), 1)
}
