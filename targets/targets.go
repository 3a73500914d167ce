// Package targets turns the targets of a policy into connectors. Secrets are
// read from the environment variables the policy names, never from the file.
package targets

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

// Options tune Build.
type Options struct {
	Getenv     func(string) string
	HTTPClient *http.Client // nil: each connector's default
	Logger     *zap.Logger
	// AllowInsecure permits plain-http Okta org URLs on loopback (dev and tests).
	AllowInsecure bool
}

// Build creates one connector per okta, scim and entra target of p, keyed by
// target name. rest targets need no connector: the REST sender reads them from
// the policy. Every configuration problem is reported at once.
func Build(ctx context.Context, p *policy.Policy, o Options) (map[string]any, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	out := map[string]any{}
	var problems []string
	names := make([]string, 0, len(p.Targets))
	for name := range p.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := p.Targets[name]
		c, err := build(ctx, name, t, o)
		if err != nil {
			problems = append(problems, fmt.Sprintf("target %s: %v", name, err))
			continue
		}
		if c != nil {
			out[name] = c
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("targets: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

func build(ctx context.Context, name string, t policy.Target, o Options) (any, error) {
	env := func(key, what string) (string, error) {
		if key == "" {
			return "", fmt.Errorf("%s: no environment variable named", what)
		}
		v := o.Getenv(key)
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, key)
		}
		return v, nil
	}
	switch t.Type {
	case "okta":
		tok, err := env(t.TokenEnv, "token_env")
		if err != nil {
			return nil, err
		}
		return okta.New(ctx, okta.Config{
			OrgURL: t.OrgURL, Token: secret.New(tok), HTTPClient: o.HTTPClient,
			AllowInsecure: o.AllowInsecure, Logger: o.Logger.Named("okta").With(zap.String("target", name)),
		})
	case "scim":
		auth, err := scimAuth(t, env)
		if err != nil {
			return nil, err
		}
		return scim.New(ctx, scim.Config{BaseURL: t.BaseURL, Auth: auth, HTTPClient: o.HTTPClient, RequestsPerSecond: t.RateLimit})
	case "entra":
		cfg, err := entra.ConfigFromEnv(o.Getenv)
		if err != nil {
			return nil, err
		}
		if t.Tenant != "" {
			cfg.Tenant = t.Tenant
		}
		cfg.HTTPClient = o.HTTPClient
		cfg.RateLimit = t.RateLimit
		return entra.New(ctx, cfg)
	case "rest", "smtp": // requests and mail are sent by the notify and REST steps themselves
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown type %q (want okta, scim, entra, rest or smtp)", t.Type)
	}
}

func scimAuth(t policy.Target, env func(key, what string) (string, error)) (scim.Auth, error) {
	a := t.Auth
	if a.Type == "" && t.TokenEnv != "" {
		a = policy.Credential{Type: "bearer", TokenEnv: t.TokenEnv}
	}
	switch a.Type {
	case "", "none":
		return scim.Auth{}, nil
	case "bearer":
		v, err := env(a.TokenEnv, "auth.token_env")
		return scim.Auth{BearerToken: v}, err
	case "basic":
		u, err := env(a.UsernameEnv, "auth.username_env")
		if err != nil {
			return scim.Auth{}, err
		}
		pw, err := env(a.PasswordEnv, "auth.password_env")
		return scim.Auth{BasicUser: u, BasicPassword: pw}, err
	case "header":
		v, err := env(a.ValueEnv, "auth.value_env")
		return scim.Auth{HeaderName: a.Header, HeaderValue: v}, err
	case "oauth2":
		id, err := env(a.ClientIDEnv, "auth.client_id_env")
		if err != nil {
			return scim.Auth{}, err
		}
		sec, err := env(a.ClientSecretEnv, "auth.client_secret_env")
		return scim.Auth{OAuth2: &scim.OAuth2ClientCredentials{
			TokenURL: a.TokenURL, ClientID: id, ClientSecret: sec, Scopes: a.Scopes,
		}}, err
	default:
		return scim.Auth{}, fmt.Errorf("auth.type %q is not supported for scim (bearer, basic, header, oauth2)", a.Type)
	}
}
