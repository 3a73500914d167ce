package entra

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/jml-dev/jml/connectors"
)

// tokenCache reuses a token until shortly before it expires, and forgets
// it when Graph rejects it early.
type tokenCache struct {
	mu  sync.Mutex
	src oauth2.TokenSource // fetches a new token on every call
	tok *oauth2.Token
}

func (c *tokenCache) Token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Valid() keeps a margin of 10s before expiry.
	if c.tok.Valid() {
		return c.tok, nil
	}
	tok, err := c.src.Token()
	if err != nil {
		return nil, err
	}
	c.tok = tok
	return tok, nil
}

func (c *tokenCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tok = nil
}

// tokenSource returns the client-credentials token cache: with a secret in
// the request body (Entra's client_secret_post), or with a freshly signed
// certificate assertion for every token request.
func tokenSource(ctx context.Context, cfg Config, tokenURL, scope string) *tokenCache {
	if cfg.Certificate != nil {
		return &tokenCache{src: &assertionSource{ctx: ctx, cfg: cfg, tokenURL: tokenURL, scope: scope}}
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret.Reveal(),
		TokenURL:     tokenURL,
		Scopes:       []string{scope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	return &tokenCache{src: fetchFunc(func() (*oauth2.Token, error) { return cc.Token(ctx) })}
}

type fetchFunc func() (*oauth2.Token, error)

func (f fetchFunc) Token() (*oauth2.Token, error) { return f() }

// assertionSource authenticates with a certificate: a short-lived RS256
// JWT (aud = token endpoint, iss = sub = client ID, x5t = SHA-1 thumbprint)
// as client_assertion.
type assertionSource struct {
	ctx      context.Context
	cfg      Config
	tokenURL string
	scope    string
}

func (s *assertionSource) Token() (*oauth2.Token, error) {
	jwt, err := s.assertion(time.Now())
	if err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{
		ClientID:  s.cfg.ClientID,
		TokenURL:  s.tokenURL,
		Scopes:    []string{s.scope},
		AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {jwt},
		},
	}
	return cc.Token(s.ctx)
}

func (s *assertionSource) assertion(now time.Time) (string, error) {
	thumb := sha1.Sum(s.cfg.Certificate.Raw)
	hdr, _ := json.Marshal(map[string]string{
		"alg": "RS256", "typ": "JWT", "x5t": base64.RawURLEncoding.EncodeToString(thumb[:]),
	})
	claims, _ := json.Marshal(map[string]any{
		"aud": s.tokenURL, "iss": s.cfg.ClientID, "sub": s.cfg.ClientID, "jti": uuid.NewString(),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := s.cfg.PrivateKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", connectors.Permanent(TypeAuth, fmt.Errorf("entra: sign client assertion: %w", err))
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
