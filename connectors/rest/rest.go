// Package rest is the Send REST Request and Notify actions: a request built
// from transformer templates (URL, headers, a JSON body whose substituted
// values cannot break the JSON), authenticated with a named credential whose
// secrets come from the environment, sent, classified into the connectors
// error types and mined for output fields ($.data.items[0].id).
//
// A request that carries a secret (a vault password, a credential) goes
// over HTTPS only.
package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"
)

// Options configure a Client.
type Options struct {
	HTTPClient *http.Client
	// Getenv reads credential secrets; default os.Getenv.
	Getenv func(string) string
	Logger *zap.Logger
	// Credentials are the policy's reusable named credentials.
	Credentials map[string]Credential
	// AllowInsecureLoopback lets requests carrying secrets use plain http
	// to a loopback address. For tests only.
	AllowInsecureLoopback bool
	// Timeout bounds one HTTP exchange; default 30s.
	Timeout time.Duration
	// MaxResponseBytes caps how much of a response is read; default 1 MiB.
	MaxResponseBytes int64
}

// Client sends REST requests. It caches login and OAuth2 tokens per
// credential and is safe for concurrent use.
type Client struct {
	http  *http.Client
	o     Options
	log   *zap.Logger
	mu    sync.Mutex
	token map[string]*oauth2.Token // by credential key

	limitMu sync.Mutex
	limits  map[string]*rate.Limiter // by target, for Target.RateLimit
}

// New returns a Client.
func New(o Options) *Client {
	hc := &http.Client{Transport: connectors.NewHTTPTransport()}
	if o.HTTPClient != nil {
		hc = o.HTTPClient
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 1 << 20
	}
	return &Client{http: noDowngrade(hc), o: o, log: o.Logger, token: map[string]*oauth2.Token{}, limits: map[string]*rate.Limiter{}}
}

var (
	errDowngrade        = errors.New("refusing redirect from https to http")
	errTooManyRedirects = errors.New("stopped after 10 redirects")
)

// noDowngrade copies hc so that a redirect from https to http (which
// would resend a body or credential in the clear) is refused.
func noDowngrade(hc *http.Client) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errDowngrade
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errTooManyRedirects
		}
		return nil
	}
	return &c
}

// Spec is a request as the policy writes it: URL, headers and body are
// templates rendered by Request.Templates.
type Spec struct {
	Target       string // the rest target's name (rate limit, messages)
	Credential   string // a name in Options.Credentials; wins over the target's auth
	Method       string
	URL          string
	Headers      map[string]string
	Body         string // a JSON template
	SuccessCodes []int
	Extract      map[string]string // output name → $.path in the response
	On           []string          // notify only: the outcomes it fires for
}

// Target is a rest target: base URL, auth and rate limit.
type Target struct {
	BaseURL   string
	TokenEnv  string // shorthand for bearer auth
	Auth      Credential
	RateLimit float64 // requests per second; 0: no limit
}

// Credential is how to authenticate: only names of environment variables.
// Its fields are those of the policy's credentials, so the policy's type
// converts to it.
type Credential struct {
	Type            string // none|bearer|basic|header|oauth2|login_bearer
	TokenEnv        string
	UsernameEnv     string
	PasswordEnv     string
	Header          string
	ValueEnv        string
	TokenURL        string
	ClientIDEnv     string
	ClientSecretEnv string
	Scopes          []string
	LoginURL        string // login_bearer
	TokenField      string // login_bearer: JSON field of the token
}

// Templates renders the templates of a request. The connector never parses
// templates itself (the transformer language is the policy's business);
// *transform.Env implements it.
type Templates interface {
	// Render evaluates src; escape, when set, is applied to every
	// substituted value.
	Render(src string, escape func(string) string) (string, error)
	// ReadsSecret reports whether src reads an earlier step's password.
	ReadsSecret(src string) bool
}

// Request is one Send REST Request step.
type Request struct {
	Spec      Spec
	Target    *Target // optional: base URL and auth
	Templates Templates
	// Secrets are values that must travel over HTTPS only and never appear
	// in an error or log (the vault password resolved for this step).
	Secrets []secret.Secret
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead}

// Send renders URL, headers and body (a JSON template: substituted values
// JSON-escaped) and sends it; it returns the fields extracted from the JSON
// response per Spec.Extract. Errors are connectors.PermanentError,
// TransientError or RateLimitedError and never contain a secret.
func (c *Client) Send(ctx context.Context, r Request) (map[string]string, error) {
	red := newRedactor(r.Secrets)
	p, err := c.prepare(r, red)
	if err != nil {
		return nil, err
	}
	if err := c.wait(ctx, r); err != nil {
		return nil, err
	}
	resp, body, err := c.exchange(ctx, p, red)
	if err != nil {
		return nil, err
	}
	if !p.success(resp.StatusCode) {
		return nil, classify(p.method, red.url(p.url), resp, body, red)
	}
	out, err := extract(body, r.Spec.Extract)
	if err != nil {
		return nil, connectors.Permanent("RestExtract", fmt.Errorf("rest: %s %s: %s: %w", p.method, red.url(p.url), resp.Status, err))
	}
	return out, nil
}

// wait honours the target's rate_limit (requests per second), shared by
// every step that sends to the same target through this client.
func (c *Client) wait(ctx context.Context, r Request) error {
	if r.Target == nil || r.Target.RateLimit <= 0 {
		return nil
	}
	key := r.Spec.Target + "|" + r.Target.BaseURL
	c.limitMu.Lock()
	l, ok := c.limits[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(r.Target.RateLimit), max(1, int(r.Target.RateLimit)))
		c.limits[key] = l
	}
	c.limitMu.Unlock()
	if err := l.Wait(ctx); err != nil {
		return fmt.Errorf("rest: waiting for the rate limit of target %s: %w", r.Spec.Target, err)
	}
	return nil
}

// prepared is a rendered request ready to send (and resend after a 401).
type prepared struct {
	method  string
	url     *url.URL
	header  http.Header
	body    []byte
	cred    *credential
	codes   []int
	secrets bool // carries a secret: HTTPS only
}

func (p *prepared) success(code int) bool {
	if len(p.codes) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(p.codes, code)
}

func (c *Client) prepare(r Request, red *redactor) (*prepared, error) {
	s := r.Spec
	env := r.Templates
	if env == nil {
		env = literal{}
	}
	method := strings.ToUpper(strings.TrimSpace(s.Method))
	if method == "" {
		method = http.MethodGet
		if s.Body != "" {
			method = http.MethodPost
		}
	}
	if !slices.Contains(methods, method) {
		return nil, invalid("method %q is not one of %s", s.Method, strings.Join(methods, ", "))
	}
	needsBody := method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
	switch {
	case needsBody && strings.TrimSpace(s.Body) == "":
		return nil, invalid("body is required for %s", method)
	case (method == http.MethodGet || method == http.MethodHead) && s.Body != "":
		return nil, invalid("a %s request cannot have a body", method)
	}
	for _, code := range s.SuccessCodes {
		if code < 100 || code > 599 {
			return nil, invalid("success_codes: %d is not an HTTP status", code)
		}
	}

	readsSecret := false
	refs := &readsSecret
	u, err := c.renderURL(s.URL, r.Target, env, refs)
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	for name, tmpl := range s.Headers {
		v, err := eval(tmpl, env, nil, refs)
		if err != nil {
			return nil, invalid("headers.%s: %v", name, err)
		}
		if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(name, "\r\n: ") {
			return nil, invalid("headers.%s: a header cannot contain line breaks", name)
		}
		header.Set(name, v)
	}
	p := &prepared{method: method, url: u, header: header, codes: s.SuccessCodes}
	if s.Body != "" {
		body, err := renderJSON(s.Body, func(t string) (string, error) { return eval(t, env, nil, refs) })
		if err != nil {
			return nil, invalid("body: %v", err)
		}
		p.body = []byte(body)
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/json")
		}
	}
	if header.Get("Accept") == "" {
		header.Set("Accept", "application/json")
	}

	p.cred, err = c.credentialFor(s, r.Target)
	if err != nil {
		return nil, err
	}
	if p.cred != nil {
		red.add(p.cred.secrets...)
	}

	p.secrets = p.cred != nil || red.in(u.String()) || red.in(string(p.body)) || readsSecret
	for _, vs := range header {
		p.secrets = p.secrets || red.in(strings.Join(vs, "\n"))
	}
	if p.secrets {
		if err := c.secureEnough(u, "the request carries a secret"); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// literal renders templates as they are (a request without Templates).
type literal struct{}

func (literal) Render(src string, _ func(string) string) (string, error) { return src, nil }
func (literal) ReadsSecret(string) bool                                  { return false }

// secureEnough refuses plain http for secret-bearing traffic, except to a
// loopback address when the client allows it (tests).
func (c *Client) secureEnough(u *url.URL, what string) error {
	if connectors.SecretsMayTravel(u, c.o.AllowInsecureLoopback) {
		return nil
	}
	return connectors.Permanentf("RestInsecure",
		"rest: refusing to send over plain http to %s: %s; use an https:// URL", u.Host, what)
}

func (c *Client) renderURL(tmpl string, t *Target, env Templates, readsSecret *bool) (*url.URL, error) {
	if strings.TrimSpace(tmpl) == "" {
		return nil, invalid("url is required")
	}
	raw, err := eval(tmpl, env, escapeURLValue, readsSecret)
	if err != nil {
		return nil, invalid("url: %v", err)
	}
	if t != nil && t.BaseURL != "" && !strings.Contains(raw, "://") {
		raw = strings.TrimSuffix(t.BaseURL, "/") + "/" + strings.TrimPrefix(raw, "/")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid("url is not a valid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("url must be absolute http(s) (or relative to the target's base_url), got scheme %q", u.Scheme)
	}
	if u.User != nil {
		return nil, invalid("url must not embed credentials; use a credential")
	}
	return u, nil
}

// escapeURLValue percent-encodes everything but unreserved characters, so
// a substituted value stays one path segment or one query value.
func escapeURLValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

func eval(src string, env Templates, escape func(string) string, readsSecret *bool) (string, error) {
	v, err := env.Render(src, escape)
	if err != nil {
		return "", err
	}
	*readsSecret = *readsSecret || env.ReadsSecret(src)
	return v, nil
}

func invalid(format string, args ...any) error {
	return connectors.Permanentf("RestInvalidRequest", "rest: "+format, args...)
}

// exchange sends p once, and once more with a fresh token when a cached
// login or OAuth2 token was refused with 401.
func (c *Client) exchange(ctx context.Context, p *prepared, red *redactor) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		resp, body, err := c.do(ctx, p, red)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && p.cred != nil && p.cred.tokenBased() && attempt == 0 {
			c.forget(p.cred)
			continue
		}
		return resp, body, nil
	}
}

func (c *Client) do(ctx context.Context, p *prepared, red *redactor) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, p.method, p.url.String(), bytes.NewReader(p.body))
	if err != nil {
		return nil, nil, invalid("build request: %v", red.s(err.Error()))
	}
	if p.body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	req.Header = p.header.Clone()
	if err := c.authorize(ctx, req, p.cred, red); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.Warn("rest request failed", zap.String("method", p.method), zap.String("host", p.url.Host),
			zap.Duration("elapsed", time.Since(start)))
		return nil, nil, transportError(ctx, p.method, red.url(p.url), err, red)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxResponseBytes))
	if err != nil {
		return nil, nil, transportError(ctx, p.method, red.url(p.url), err, red)
	}
	// Never the headers or the body: they may carry credentials or secrets.
	c.log.Info("rest request", zap.String("method", p.method), zap.String("host", p.url.Host),
		zap.String("path", red.s(p.url.Path)), zap.Int("status", resp.StatusCode),
		zap.Duration("elapsed", time.Since(start)))
	return resp, body, nil
}

// transportError classifies a failed exchange. The url.Error text of
// net/http quotes the full URL, so only its cause is kept, redacted.
func transportError(ctx context.Context, method, u string, err error, red *redactor) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("rest: %s %s: %w", method, u, ctx.Err()) // the caller cancelled: not ours to classify
	}
	msg := fmt.Errorf("rest: %s %s: %s", method, u, red.s(err.Error()))
	switch {
	case errors.Is(err, errDowngrade):
		return connectors.Permanent("RestInsecure", msg)
	case errors.Is(err, errTooManyRedirects):
		return connectors.Permanent("RestRedirect", msg)
	}
	if isTLSError(err) {
		return connectors.Permanent("RestTLS", msg)
	}
	return connectors.Transient(msg)
}

// classify maps a non-success response to the connectors error types.
func classify(method, u string, resp *http.Response, body []byte, red *redactor) error {
	err := fmt.Errorf("rest: %s %s: %s%s", method, u, resp.Status, snippet(body, red))
	return connectors.HTTPError(connectors.Classify(resp.StatusCode, resp.Header, time.Now()), restTypes, "RestRejected", err)
}

// restTypes name the permanent error classes for Temporal. A 404 is the
// step's failure here, not a lookup's answer.
var restTypes = map[connectors.Class]string{
	connectors.ClassInvalid:    "RestBadRequest",
	connectors.ClassAuth:       "RestAuth",
	connectors.ClassNotFound:   "RestNotFound",
	connectors.ClassConflict:   "RestConflict",
	connectors.ClassOK:         "RestUnexpectedStatus", // a status the step does not accept
	connectors.ClassUnexpected: "RestUnexpectedStatus",
}

// snippet is the start of a response body for an error message, one line,
// secrets redacted.
func snippet(body []byte, red *redactor) string {
	const max = 512
	// Redact before anything else, so a cut secret cannot survive half-way.
	s := strings.Join(strings.Fields(red.s(string(body))), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		return ""
	}
	return ": " + s
}
