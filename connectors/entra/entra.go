// Package entra provisions Microsoft Entra ID (Azure AD) accounts through
// the Microsoft Graph v1.0 REST API with an app registration's client
// credentials (a client secret or a certificate).
//
// The connector implements AccountSyncer, AccountLister,
// RelationshipManager, GroupFinder, EntitlementCreator, Deprovisioner,
// Reactivator, Deleter, PasswordSetter and PasswordResetter. Group changes
// for one account are sent as one JSON $batch (up to 20 requests each), so a
// joiner with two groups costs one find, one create and one $batch.
//
// Application permissions the app registration needs (Permissions lists
// them): User.ReadWrite.All, GroupMember.ReadWrite.All,
// Group.ReadWrite.All (EnsureGroup's upsert by uniqueName),
// User.RevokeSessions.All (Deprovision with ClearSessions),
// User-PasswordProfile.ReadWrite.All and the User Administrator role
// (passwords), User.EnableDisableAccount.All, and
// User-LifeCycleInfo.ReadWrite.All when the policy maps
// employee_hire_date (Graph refuses to write lifecycle dates without it:
// https://learn.microsoft.com/en-us/graph/api/user-update#permissions).
//
// Entra ID is eventually consistent: a created object may answer 404 for a
// while. The connector keeps the ID a create returned and retries by ID,
// with backoff, for up to Config.Consistency
// (https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/).
package entra

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Defaults of the public Azure cloud.
const (
	DefaultAuthorityURL = "https://login.microsoftonline.com"
	DefaultGraphURL     = "https://graph.microsoft.com/v1.0"
)

// maxBatch is Graph's limit of requests in one $batch.
const maxBatch = 20

// maxPage is the most objects a page of users, groups or members holds
// (https://learn.microsoft.com/en-us/graph/paging).
const maxPage = 999

// DefaultConsistency bounds how long the connector waits for a write to
// show in Graph's reads (replication between Entra ID's replicas).
const DefaultConsistency = 30 * time.Second

// Permissions are the application permissions the connector uses, and
// what for.
var Permissions = map[string]string{
	"User.ReadWrite.All":                 "create, read, update and delete users; set managers",
	"User.EnableDisableAccount.All":      "disable and enable accounts",
	"User-PasswordProfile.ReadWrite.All": "set and reset passwords (with the User Administrator role)",
	"User.RevokeSessions.All":            "revoke sign-in sessions on deprovision",
	"GroupMember.ReadWrite.All":          "add and remove group members",
	"Group.ReadWrite.All":                "create groups (upsert by uniqueName)",
	"User-LifeCycleInfo.ReadWrite.All":   "write employee_hire_date (only when the policy maps it)",
}

// Config configures a Connector. Either ClientSecret or Certificate with
// PrivateKey authenticates the app.
type Config struct {
	Tenant       string        // directory (tenant) ID or a verified domain
	ClientID     string        // application (client) ID
	ClientSecret secret.Secret // client secret value
	Certificate  *x509.Certificate
	PrivateKey   crypto.Signer // RSA key of Certificate

	AuthorityURL string       // default DefaultAuthorityURL (national clouds, tests)
	GraphURL     string       // default DefaultGraphURL
	HTTPClient   *http.Client // default: 60s timeout
	// VerifiedDomains, when set, lets the connector refuse a
	// userPrincipalName outside them before sending anything.
	VerifiedDomains []string
	// RateLimit is the most requests per second sent (0: no limit).
	RateLimit float64
	// Consistency bounds the wait for a write to show in reads (default
	// DefaultConsistency).
	Consistency time.Duration
	// LifecycleDates reads employee_hire_date back: it needs
	// User-LifeCycleInfo permissions, so it is $selected only when the
	// policy maps it.
	LifecycleDates bool
}

// String keeps the secret and the private key out of logs: it names the
// tenant, the client and which credential is set.
func (c Config) String() string {
	cred := "secret"
	if c.Certificate != nil {
		cred = "certificate"
	}
	return fmt.Sprintf("entra.Config{Tenant: %q, ClientID: %q, credential: %s, GraphURL: %q}", c.Tenant, c.ClientID, cred, cmp(c.GraphURL, DefaultGraphURL))
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Environment variables read by ConfigFromEnv.
const (
	EnvTenant          = "ENTRA_TENANT_ID"
	EnvClientID        = "ENTRA_CLIENT_ID"
	EnvClientSecret    = "ENTRA_CLIENT_SECRET"
	EnvCertificateFile = "ENTRA_CLIENT_CERTIFICATE_FILE" // PEM: certificate and private key
	EnvVerifiedDomains = "ENTRA_VERIFIED_DOMAINS"        // comma-separated
	EnvAuthorityURL    = "ENTRA_AUTHORITY_URL"
	EnvGraphURL        = "ENTRA_GRAPH_URL"
)

// ConfigFromEnv reads a Config through getenv (os.Getenv in production).
// The error names every missing variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Tenant:       strings.TrimSpace(getenv(EnvTenant)),
		ClientID:     strings.TrimSpace(getenv(EnvClientID)),
		ClientSecret: secret.New(getenv(EnvClientSecret)),
		AuthorityURL: getenv(EnvAuthorityURL),
		GraphURL:     getenv(EnvGraphURL),
	}
	for _, d := range strings.Split(getenv(EnvVerifiedDomains), ",") {
		if d = strings.TrimSpace(d); d != "" {
			c.VerifiedDomains = append(c.VerifiedDomains, d)
		}
	}
	var missing []string
	if c.Tenant == "" {
		missing = append(missing, EnvTenant)
	}
	if c.ClientID == "" {
		missing = append(missing, EnvClientID)
	}
	certFile := getenv(EnvCertificateFile)
	if c.ClientSecret.Empty() && certFile == "" {
		missing = append(missing, EnvClientSecret+" (or "+EnvCertificateFile+")")
	}
	if len(missing) > 0 {
		return Config{}, connectors.Permanentf(TypeConfig, "entra: missing environment variable(s): %s", strings.Join(missing, ", "))
	}
	if certFile != "" {
		b, err := os.ReadFile(certFile)
		if err != nil {
			return Config{}, connectors.Permanentf(TypeConfig, "entra: %s: %v", EnvCertificateFile, err)
		}
		if c.Certificate, c.PrivateKey, err = ParseCertificatePEM(b); err != nil {
			return Config{}, connectors.Permanentf(TypeConfig, "entra: %s: %v", EnvCertificateFile, err)
		}
	}
	return c, nil
}

// ParseCertificatePEM reads a certificate and its RSA private key (PKCS#1
// or PKCS#8) from PEM blocks.
func ParseCertificatePEM(b []byte) (*x509.Certificate, crypto.Signer, error) {
	var cert *x509.Certificate
	var key crypto.Signer
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("parse certificate: %w", err)
			}
			cert = c
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, nil, errors.New("parse RSA private key: malformed")
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			rk, ok := k.(*rsa.PrivateKey)
			if err != nil || !ok {
				return nil, nil, errors.New("parse private key: not an RSA key")
			}
			key = rk
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("need a CERTIFICATE and a PRIVATE KEY block")
	}
	return cert, key, nil
}

// Connector talks to one tenant. It is safe for concurrent use.
type Connector struct {
	graph       string // service root, no trailing slash
	domains     []string
	consistency time.Duration
	selectUser  string // the $select of a user read
	recent      *recentGroups
	hc          *http.Client
	tokens      *tokenCache
	limiter     *rate.Limiter
}

// New validates cfg and returns a Connector. It sends nothing: the first
// call fetches a token (use CheckAccess to verify credentials at start-up).
// ctx carries values only; the token source outlives it.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	bad := func(format string, args ...any) error {
		return connectors.Permanentf(TypeConfig, "entra: config: "+format, args...)
	}
	switch {
	case cfg.Tenant == "":
		return nil, bad("Tenant is required")
	case strings.ContainsAny(cfg.Tenant, "/?#% "):
		return nil, bad("Tenant %q is not a tenant ID or domain", cfg.Tenant)
	case cfg.ClientID == "":
		return nil, bad("ClientID is required")
	case cfg.ClientSecret.Empty() && cfg.Certificate == nil:
		return nil, bad("ClientSecret or Certificate is required")
	case cfg.Certificate != nil && cfg.PrivateKey == nil:
		return nil, bad("PrivateKey is required with Certificate")
	}
	if cfg.PrivateKey != nil {
		if _, ok := cfg.PrivateKey.Public().(*rsa.PublicKey); !ok {
			return nil, bad("PrivateKey must be an RSA key")
		}
	}
	authority, err := serviceURL(cmp(cfg.AuthorityURL, DefaultAuthorityURL))
	if err != nil {
		return nil, bad("AuthorityURL: %v", err)
	}
	graph, err := serviceURL(cmp(cfg.GraphURL, DefaultGraphURL))
	if err != nil {
		return nil, bad("GraphURL: %v", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	gu, _ := url.Parse(graph)
	scope := gu.Scheme + "://" + gu.Host + "/.default"
	tokenURL := authority + "/" + url.PathEscape(cfg.Tenant) + "/oauth2/v2.0/token"
	tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, hc)
	if cfg.Consistency <= 0 {
		cfg.Consistency = DefaultConsistency
	}
	c := &Connector{
		graph:       graph,
		domains:     cfg.VerifiedDomains,
		consistency: cfg.Consistency,
		selectUser:  selectUser(cfg.LifecycleDates),
		recent:      &recentGroups{ttl: cfg.Consistency},
		hc:          hc,
		tokens:      tokenSource(tctx, cfg, tokenURL, scope),
	}
	if cfg.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), 1)
	}
	return c, nil
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// serviceURL requires https, except to a loopback host (tests): the client
// secret and new passwords travel in these requests.
func serviceURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		return "", fmt.Errorf("%q must use https", raw)
	}
	return u.String(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckAccess fetches a token and reads one user: a start-up probe that
// turns bad credentials or missing consent into a clear EntraAuth error.
func (c *Connector) CheckAccess(ctx context.Context) error {
	return c.do(ctx, "check access", call{method: "GET", path: "/users", query: "$top=1&$select=id"}, nil)
}

// call is one Graph request. ok, when set, accepts some failures as
// success (the idempotent "already done" answers).
type call struct {
	method string
	path   string // escaped, relative to the service root: "/users/{id}"
	query  string // encoded query, without "?"
	body   any
	header map[string]string // extra request headers (Prefer)
	ok     func(*apiError) bool
}

func (cl call) url() string {
	if cl.query == "" {
		return cl.path
	}
	return cl.path + "?" + cl.query
}

// do sends one request and decodes a 2xx JSON answer into out (if not nil).
func (c *Connector) do(ctx context.Context, op string, cl call, out any) error {
	return c.doURL(ctx, op, c.graph+cl.url(), cl, out)
}

func (c *Connector) doURL(ctx context.Context, op, u string, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("entra: %s: encode body: %w", op, err)
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		status, data, retryAfter, err := c.send(ctx, op, cl.method, u, payload, cl.header)
		if err != nil {
			return err
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			// A token revoked or invalidated before its expiry (secret
			// rotated, policy change): fetch a new one and try once more.
			c.tokens.invalidate()
			continue
		}
		if status >= 300 {
			e := parseAPIError(status, data, retryAfter)
			if cl.ok != nil && cl.ok(e) {
				return nil
			}
			return classify(op, e)
		}
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return connectors.Transient(fmt.Errorf("entra: %s: decode response: %w", op, err))
			}
		}
		return nil
	}
}

// send makes one HTTP round trip with a bearer token.
func (c *Connector) send(ctx context.Context, op, method, u string, payload []byte, header map[string]string) (int, []byte, string, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return 0, nil, "", fmt.Errorf("entra: %s: %w", op, err)
		}
	}
	tok, err := c.tokens.Token()
	if err != nil {
		return 0, nil, "", classifyToken(err)
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, "", fmt.Errorf("entra: %s: %w", op, err)
	}
	tok.SetAuthHeader(req)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", uuid.NewString())
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, "", fmt.Errorf("entra: %s: %w", op, ctx.Err())
		}
		return 0, nil, "", connectors.Transient(fmt.Errorf("entra: %s: %w", op, connectors.WithoutURL(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, "", connectors.Transient(fmt.Errorf("entra: %s: read response: %w", op, err))
	}
	return resp.StatusCode, data, resp.Header.Get("Retry-After"), nil
}

// run sends calls as one request when there is one, else as $batch
// requests of up to 20. Requests in a batch are independent (Graph may run
// them in any order); each is idempotent, so a failed run is safe to repeat.
func (c *Connector) run(ctx context.Context, op string, calls []call) error {
	switch len(calls) {
	case 0:
		return nil
	case 1:
		return c.do(ctx, op, calls[0], nil)
	}
	var errs []error
	for start := 0; start < len(calls); start += maxBatch {
		chunk := calls[start:min(start+maxBatch, len(calls))]
		if err := c.batch(ctx, op, chunk); err != nil {
			errs = append(errs, err)
		}
	}
	return worst(errs)
}

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

type batchResponse struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func (c *Connector) batch(ctx context.Context, op string, calls []call) error {
	reqs := make([]batchRequest, len(calls))
	for i, cl := range calls {
		reqs[i] = batchRequest{ID: strconv.Itoa(i + 1), Method: cl.method, URL: cl.url(), Body: cl.body}
		if cl.body != nil {
			reqs[i].Headers = map[string]string{"Content-Type": "application/json"}
		}
	}
	var out batchResponse
	err := c.do(ctx, op, call{method: "POST", path: "/$batch", body: map[string]any{"requests": reqs}}, &out)
	if err != nil {
		return err
	}
	var errs []error
	answered := 0
	for _, r := range out.Responses {
		i, err := strconv.Atoi(r.ID)
		if err != nil || i < 1 || i > len(calls) {
			continue
		}
		answered++
		if r.Status < 300 {
			continue
		}
		e := parseAPIError(r.Status, r.Body, header(r.Headers, "Retry-After"))
		if cl := calls[i-1]; cl.ok == nil || !cl.ok(e) {
			errs = append(errs, classify(op, e))
		}
	}
	if answered != len(calls) {
		errs = append(errs, connectors.Transient(fmt.Errorf("entra: %s: $batch answered %d of %d requests", op, answered, len(calls))))
	}
	return worst(errs)
}

// header finds a $batch response header by name, case-insensitively.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// eventually calls f again while it fails with ErrNotFound, with backoff,
// for up to the consistency bound: for reads and writes of an object Graph
// has confirmed exists (a create's answer, a uniqueness conflict) that a
// lagging replica does not show yet.
func (c *Connector) eventually(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(c.consistency)
	wait := 250 * time.Millisecond
	for {
		err := f()
		if !errors.Is(err, connectors.ErrNotFound) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// notFound accepts 404 as success (removing what is already gone).
func notFound(e *apiError) bool { return e.Status == http.StatusNotFound }

// escape quotes a $filter string literal: OData doubles single quotes.
func escape(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// query encodes OData system query options, keeping the "$" readable and
// spaces as %20 (Graph reads "+" literally in some filters).
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(kv[i+1]), "+", "%20"))
	}
	return b.String()
}
