package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/jml-dev/jml/connectors"
)

// Config describes one SCIM target.
type Config struct {
	// BaseURL is the SCIM root, e.g. https://api.example.com/scim/v2.
	BaseURL string
	// Auth holds the credentials. The caller reads secret values from the
	// environment; the client never logs or returns them.
	Auth Auth
	// HTTPClient sends requests; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// UniqueIdentifier is the normalized attribute that identifies an
	// account (user_name when empty; e.g. external_id, email).
	UniqueIdentifier string
	// PageSize is the count asked for per list page (100 when zero).
	PageSize int
	// RequestsPerSecond caps this client's request rate (0: no cap), to stay
	// under a provider's published limit during a bulk run rather than
	// collect 429s.
	RequestsPerSecond float64
}

// Auth selects one way to authenticate. Set exactly one of BearerToken,
// Basic user/password, OAuth2 or Header.
type Auth struct {
	BearerToken string

	BasicUser     string
	BasicPassword string

	// OAuth2 client credentials (RFC 6749 §4.4).
	OAuth2 *OAuth2ClientCredentials

	// A custom header, e.g. X-Api-Key: <value>.
	HeaderName  string
	HeaderValue string
}

// OAuth2ClientCredentials fetch and refresh an access token from TokenURL.
type OAuth2ClientCredentials struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
}

// String names the method only, so printing a Config never leaks a secret.
func (a Auth) String() string {
	switch {
	case a.OAuth2 != nil:
		return "oauth2 client credentials (" + a.OAuth2.TokenURL + ")"
	case a.BearerToken != "":
		return "bearer token"
	case a.BasicUser != "":
		return "basic (" + a.BasicUser + ")"
	case a.HeaderName != "":
		return "header " + a.HeaderName
	}
	return "none"
}

func (a Auth) methods() int {
	n := 0
	for _, set := range []bool{a.BearerToken != "", a.BasicUser != "", a.OAuth2 != nil, a.HeaderName != ""} {
		if set {
			n++
		}
	}
	return n
}

// GoString keeps %#v from printing the fields.
func (a Auth) GoString() string { return "scim.Auth{" + a.String() + "}" }

// Format applies to every verb, %+v included.
func (a Auth) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// Client talks to one SCIM service provider. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	auth     Auth
	uniqueID string
	pageSize int
	rfc      *schemaIndex  // the RFC schemas, assumed until discovery
	limit    *rate.Limiter // nil: no cap

	mu   sync.Mutex
	disc *discovery // nil until discovered
	// discovering is held (a token in it) by the one call discovering:
	// the worker's first steps all need discovery, and they share it
	// instead of each reading /ServiceProviderConfig and /Schemas.
	discovering chan struct{}

	// noMembersFilter: the provider answered 400 invalidFilter to
	// members.value eq; memberships are found by listing /Groups.
	noMembersFilter atomic.Bool
	// userGroupsSeen: a User answer carried a groups attribute, so this
	// provider returns it and an absent one means none (until then an
	// absent one may only mean "not returned", and /Groups is asked).
	userGroupsSeen atomic.Bool
}

var (
	_ connectors.AccountSyncer       = (*Client)(nil)
	_ connectors.AccountReader       = (*Client)(nil)
	_ connectors.AccountLister       = (*Client)(nil)
	_ connectors.RelationshipManager = (*Client)(nil)
	_ connectors.GroupFinder         = (*Client)(nil)
	_ connectors.EntitlementCreator  = (*Client)(nil)
	_ connectors.Deprovisioner       = (*Client)(nil)
	_ connectors.Reactivator         = (*Client)(nil)
	_ connectors.Deleter             = (*Client)(nil)
	_ connectors.PasswordSetter      = (*Client)(nil)
)

// New checks cfg and returns a client. It sends no request: discovery
// happens on first use (or explicitly with Discover).
func New(ctx context.Context, cfg Config) (*Client, error) {
	base, err := parseURL("base URL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.PageSize < 0 {
		return nil, connectors.Permanentf("ScimConfig", "scim: page size %d is negative", cfg.PageSize)
	}
	if n := cfg.Auth.methods(); n > 1 {
		return nil, connectors.Permanentf("ScimConfig", "scim: auth: %d methods set, want one", n)
	}
	uid := cfg.UniqueIdentifier
	if uid == "" {
		uid = "user_name"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second, Transport: connectors.NewHTTPTransport()}
	}
	if o := cfg.Auth.OAuth2; o != nil {
		if _, err := parseURL("oauth2 token URL", o.TokenURL); err != nil {
			return nil, err
		}
		cc := clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes}
		// The token source outlives ctx (an activity's context ends with
		// the activity), so keep its values but not its cancellation.
		tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, hc)
		hc = &http.Client{Timeout: hc.Timeout, Transport: &oauth2.Transport{Source: cc.TokenSource(tctx), Base: hc.Transport}}
	}
	var limit *rate.Limiter
	if cfg.RequestsPerSecond > 0 {
		limit = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), max(1, int(cfg.RequestsPerSecond)))
	}
	return &Client{base: base, limit: limit, http: hc, discovering: make(chan struct{}, 1), auth: cfg.Auth, uniqueID: uid, pageSize: orDefault(cfg.PageSize, 100),
		rfc: newSchemaIndex(rfcSchemas())}, nil
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// parseURL checks a base or token URL. Credentials travel on every request,
// so plain http is refused except to loopback (tests, local sidecars).
func parseURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case raw == "":
		return nil, connectors.Permanentf("ScimConfig", "scim: %s is empty", what)
	case err != nil:
		return nil, connectors.Permanentf("ScimConfig", "scim: %s is not a URL: %v", what, err)
	case u.User != nil:
		return nil, connectors.Permanentf("ScimConfig", "scim: %s %q must not carry credentials; use Auth", what, u.Redacted())
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, connectors.Permanentf("ScimConfig", "scim: %s %q: scheme must be https", what, raw)
	case u.Host == "":
		return nil, connectors.Permanentf("ScimConfig", "scim: %s %q has no host", what, raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return nil, connectors.Permanentf("ScimConfig", "scim: %s %q: plain http is only allowed to loopback; use https", what, raw)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, connectors.Permanentf("ScimConfig", "scim: %s %q must not carry a query or fragment", what, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// request is one SCIM call. secret, when set, is scrubbed from any error
// text the server sends back.
type request struct {
	op     string // for error messages: "create user"
	method string
	path   string // relative to the base URL: /Users/{id}
	query  url.Values
	body   any
	secret string
}

// do sends r and decodes a 2xx JSON answer into out (when non-nil and the
// answer has a body). Any other answer is classified.
func (c *Client) do(ctx context.Context, r request, out any) error {
	if c.limit != nil {
		if err := c.limit.Wait(ctx); err != nil {
			return fmt.Errorf("scim: %s: rate limit: %w", r.op, err)
		}
	}
	// r.path is already escaped (ids go through url.PathEscape).
	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return connectors.Permanentf("ScimRequest", "scim: %s: encode body: %v", r.op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return connectors.Permanentf("ScimRequest", "scim: %s: %v", r.op, err)
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	req.Header.Set("User-Agent", "jml-scim/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("scim: %s: %w", r.op, ctx.Err())
		}
		var oe *oauth2.RetrieveError
		if errors.As(err, &oe) && oe.Response != nil {
			return classify(r.op, oe.Response, oe.Body, r.secret)
		}
		return connectors.Transient(fmt.Errorf("scim: %s: %w", r.op, connectors.WithoutURL(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return connectors.Transient(fmt.Errorf("scim: %s: read answer: %w", r.op, err))
	}
	if resp.StatusCode >= 300 {
		return notFoundAt(r.op, r.path, classify(r.op, resp, data, r.secret))
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep integers exact when they land in a map
	if err := dec.Decode(out); err != nil {
		return connectors.Transient(fmt.Errorf("scim: %s: decode answer (HTTP %d): %w", r.op, resp.StatusCode, err))
	}
	return nil
}

func (c *Client) authorize(req *http.Request) {
	a := c.auth
	switch {
	case a.OAuth2 != nil: // the transport adds the token
	case a.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+a.BearerToken)
	case a.BasicUser != "":
		req.SetBasicAuth(a.BasicUser, a.BasicPassword)
	case a.HeaderName != "":
		req.Header.Set(a.HeaderName, a.HeaderValue)
	}
}
