package okta

import (
	"context"
	"strconv"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Describe is the Okta connector's description: its policy fields, actions,
// attribute catalog, Okta's default password rules and its rate limiting.
func Describe() *connectors.Description {
	return &connectors.Description{
		Type:    "okta",
		Summary: "Okta users and groups through okta-sdk-golang v2 (SSWS API token)",
		Fields: []connectors.Field{
			{Name: "org_url", Kind: connectors.FieldURL, Required: true, Help: "the org's base URL, https://acme.okta.com"},
			{Name: "token_env", Kind: connectors.FieldEnv, Secret: true, Required: true, Help: "environment variable holding the SSWS API token"},
			{Name: "rate_limit", Kind: connectors.FieldNumber, Help: "most requests per second, on top of pacing from X-Rate-Limit-* headers"},
		},
		Actions: []string{connectors.ActionSyncIdentity, connectors.ActionManageRelationships, connectors.ActionDeprovision,
			connectors.ActionDelete, connectors.ActionCreateEntitlement, connectors.ActionResetPassword,
			connectors.ActionAttributeSync, connectors.ActionPasswordSync},
		UniqueIdentifier: "login",
		EntityType:       "OktaUser",
		// The default user profile's login: at most 100 characters.
		Identifier: &connectors.IdentifierRules{Attribute: "login", MaxLength: 100,
			Source: "Okta Users API, default profile property login"},
		Attributes:     catalog,
		OpenAttributes: true, // custom profile attributes of the org's schema
		// Okta's default password policy: 8 characters, lower, upper, digit.
		Passwords: &connectors.PasswordRules{MinLength: 8, RequireLower: true, RequireUpper: true, RequireDigit: true},
		RateLimit: connectors.RateLimitBehaviour{Configurable: true,
			Adaptive: "paces from X-Rate-Limit-Limit/Remaining/Reset; a wait over 10s becomes a retry after the reset"},
		Build: build,
	}
}

func build(ctx context.Context, c connectors.Config) (any, error) {
	tok, err := c.Secret("token_env")
	if err != nil {
		return nil, err
	}
	cfg := Config{OrgURL: c.Get("org_url"), Token: secret.New(tok), HTTPClient: c.HTTPClient,
		AllowInsecure: c.AllowInsecure, Logger: c.Logger}
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.Named("okta").With(zap.String("target", c.Name))
	}
	if v := c.Get("rate_limit"); v != "" {
		if cfg.RateLimit.RequestsPerSecond, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, connectors.Permanentf("OktaConfig", "okta: rate_limit %q: want a number", v)
		}
	}
	return New(ctx, cfg)
}
