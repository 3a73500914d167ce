// Package okta is the Okta connector: every call goes through
// github.com/okta/okta-sdk-golang/v2 with the SDK's cache and its own 429
// retries turned off, so that Temporal — not a hidden loop — decides when a
// step is retried. It implements the SYNC_IDENTITIES, MANAGE_RELATIONSHIPS,
// DEPROVISION_IDENTITY, DELETE_IDENTITY, CREATE_ENTITLEMENT, RESET_PASSWORD
// and SOURCE_OF_IDENTITY actions through the connectors capability
// interfaces.
package okta

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Deprovision modes.
const (
	ModeSuspend    = "suspend"    // reversible with unsuspend; the default
	ModeDeactivate = "deactivate" // DEPROVISIONED; reactivation re-runs activation
)

// Config configures a Client.
type Config struct {
	// OrgURL is the org's base URL, e.g. https://acme.okta.com. It must use
	// https unless AllowInsecure is set.
	OrgURL string
	// Token is the SSWS API token; read it from the environment (TokenFromEnv).
	Token secret.Secret
	// HTTPClient is the client whose transport carries the requests; its
	// Timeout bounds each request. Default: a client with a 30s timeout.
	HTTPClient *http.Client
	// DeprovisionMode is used when DeprovisionOptions.Mode is empty:
	// ModeSuspend (default) or ModeDeactivate.
	DeprovisionMode string
	// AllowInsecure permits a plain-http OrgURL on a loopback host. Tests only.
	AllowInsecure bool
	// RateLimit tunes proactive pacing.
	RateLimit RateLimit
	// GroupCacheTTL is how long a group name → ID lookup is remembered
	// (each use confirms the ID with a GET by ID). Default 10 minutes.
	GroupCacheTTL time.Duration
	// Logger receives pacing, rate-limit and adoption events. Default: none.
	Logger *zap.Logger
}

// RateLimit tunes how the client paces itself from the X-Rate-Limit-*
// headers of earlier responses.
type RateLimit struct {
	// PaceBelow is the fraction of X-Rate-Limit-Limit under which requests to
	// the same endpoint are spread evenly until X-Rate-Limit-Reset.
	// Default 0.1.
	PaceBelow float64
	// RequestsPerSecond caps the requests sent (the target's rate_limit),
	// on top of the header-driven pacing; 0: no cap.
	RequestsPerSecond float64
	// MaxWait is the longest a call waits before sending. A call that would
	// wait longer fails at once with a connectors.RateLimitedError carrying
	// the time to the reset. Default 10s.
	MaxWait time.Duration
}

// Client is an Okta connector. It is safe for concurrent use.
type Client struct {
	sdk     *sdk.Client
	log     *zap.Logger
	mode    string
	limiter *limiter

	groupTTL time.Duration
	mu       sync.Mutex
	groups   map[string]cachedGroup // by exact group name
}

type cachedGroup struct {
	g  connectors.Group
	at time.Time
}

// Interface checks.
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
	_ connectors.PasswordResetter    = (*Client)(nil)
	_ connectors.PasswordSetter      = (*Client)(nil)
	_ connectors.IdentitySource      = (*Client)(nil)
)

// TokenFromEnv reads an API token from the named environment variable. A
// missing or empty variable is a permanent "OktaConfig" error naming it.
func TokenFromEnv(name string) (secret.Secret, error) {
	if name == "" {
		return secret.Secret{}, connectors.Permanentf("OktaConfig", "okta: token_env is not set")
	}
	v := os.Getenv(name)
	if v == "" {
		return secret.Secret{}, connectors.Permanentf("OktaConfig", "okta: environment variable %s (API token) is empty or unset", name)
	}
	return secret.New(v), nil
}

// New validates cfg and builds a client. It sends no request. Bad
// configuration is a permanent "OktaConfig" error naming the field.
func New(ctx context.Context, cfg Config) (*Client, error) {
	orgURL, err := checkOrgURL(cfg.OrgURL, cfg.AllowInsecure)
	if err != nil {
		return nil, err
	}
	if cfg.Token.Empty() {
		return nil, connectors.Permanentf("OktaConfig", "okta: API token is required")
	}
	mode := cfg.DeprovisionMode
	if mode == "" {
		mode = ModeSuspend
	}
	if mode != ModeSuspend && mode != ModeDeactivate {
		return nil, connectors.Permanentf("OktaConfig", "okta: deprovision mode %q: want %q or %q", mode, ModeSuspend, ModeDeactivate)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	lim := newLimiter(cfg.RateLimit, log)

	// Copy the caller's client so wrapping its transport changes nothing of theirs.
	hc := http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	base := hc.Transport
	if base == nil {
		base = connectors.NewHTTPTransport()
	}
	tr := &transport{base: base, lim: lim}
	if r := cfg.RateLimit.RequestsPerSecond; r > 0 {
		tr.rps = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	}
	hc.Transport = tr

	_, c, err := sdk.NewClient(ctx,
		sdk.WithOrgUrl(orgURL),
		sdk.WithToken(cfg.Token.Reveal()),
		sdk.WithAuthorizationMode("SSWS"),
		sdk.WithCache(false),
		sdk.WithHttpClientPtr(&hc),
		sdk.WithRequestTimeout(0),
		// The SDK's own 429 retry would sleep inside the activity; we return
		// RateLimitedError and let Temporal wait instead.
		sdk.WithRateLimitMaxRetries(0),
		sdk.WithTestingDisableHttpsCheck(cfg.AllowInsecure),
	)
	if err != nil {
		return nil, connectors.Permanent("OktaConfig", fmt.Errorf("okta: %w", err))
	}
	ttl := cfg.GroupCacheTTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	return &Client{sdk: c, log: log, mode: mode, limiter: lim, groupTTL: ttl, groups: map[string]cachedGroup{}}, nil
}

func checkOrgURL(raw string, allowInsecure bool) (string, error) {
	if raw == "" {
		return "", connectors.Permanentf("OktaConfig", "okta: org URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", connectors.Permanentf("OktaConfig", "okta: org URL %q: want https://<org>.okta.com", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecure && isLoopback(u.Hostname()):
	default:
		return "", connectors.Permanentf("OktaConfig", "okta: org URL %q must use https", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
