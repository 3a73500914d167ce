package scim

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
)

// Describe is the SCIM connector's description. Its attribute catalog is
// RFC 7643's core and enterprise User attributes; a target's own schemas
// (read from /Schemas at run time, and by `starter targets check`) may add
// more, so names outside the catalog pass through to that check.
func Describe() *connectors.Description {
	return &connectors.Description{
		Type:    "scim",
		Summary: "any SCIM 2.0 service provider (RFC 7643/7644), capabilities read from /ServiceProviderConfig",
		Fields: []connectors.Field{
			{Name: "base_url", Kind: connectors.FieldURL, Required: true, Help: "the SCIM root, https://app.example/scim/v2"},
			{Name: "token_env", Kind: connectors.FieldEnv, Secret: true, OneOf: []string{"auth"}, Help: "environment variable holding a bearer token"},
			{Name: "auth", Kind: connectors.FieldAuth, OneOf: []string{"token_env"}, Help: "bearer, basic, header or oauth2 credentials"},
			{Name: "rate_limit", Kind: connectors.FieldNumber, Help: "most requests per second"},
		},
		Actions: []string{connectors.ActionSyncIdentity, connectors.ActionManageRelationships, connectors.ActionDeprovision,
			connectors.ActionDelete, connectors.ActionCreateEntitlement, connectors.ActionAttributeSync, connectors.ActionPasswordSync},
		UniqueIdentifier: "user_name",
		EntityType:       "ScimUser",
		Attributes: []connectors.AttributeSpec{
			{Name: "user_name", Wire: "userName", Required: true},
			{Name: "external_id", Wire: "externalId"},
			{Name: "email", Wire: `emails[type eq "work"].value`, MultiValued: true},
			{Name: "given_name", Wire: "name.givenName", Aliases: []string{"first_name"}},
			{Name: "family_name", Wire: "name.familyName", Aliases: []string{"last_name"}},
			{Name: "middle_name", Wire: "name.middleName"},
			{Name: "formatted_name", Wire: "name.formatted"},
			{Name: "honorific_prefix", Wire: "name.honorificPrefix"},
			{Name: "honorific_suffix", Wire: "name.honorificSuffix"},
			{Name: "display_name", Wire: "displayName"},
			{Name: "nick_name", Wire: "nickName"},
			{Name: "title", Wire: "title"},
			{Name: "user_type", Wire: "userType"},
			{Name: "preferred_language", Wire: "preferredLanguage"},
			{Name: "locale", Wire: "locale"},
			{Name: "timezone", Wire: "timezone", Aliases: []string{"time_zone"}},
			{Name: "active", Wire: "active"},
			{Name: "phone_numbers.work", Wire: `phoneNumbers[type eq "work"].value`, MultiValued: true},
			{Name: "phone_numbers.mobile", Wire: `phoneNumbers[type eq "mobile"].value`, MultiValued: true, Aliases: []string{"mobile_phone"}},
			{Name: "employee_number", Wire: enterpriseURN + ":employeeNumber", Aliases: []string{"employee_id"}},
			{Name: "cost_center", Wire: enterpriseURN + ":costCenter"},
			{Name: "organization", Wire: enterpriseURN + ":organization"},
			{Name: "division", Wire: enterpriseURN + ":division"},
			{Name: "department", Wire: enterpriseURN + ":department"},
			{Name: "manager", Wire: enterpriseURN + ":manager.value"},
		},
		OpenAttributes: true,
		Passwords:      &connectors.PasswordRules{}, // sets passwords; publishes no rules
		RateLimit:      connectors.RateLimitBehaviour{Configurable: true, Adaptive: "honours Retry-After on 429"},
		Build:          build,
	}
}

func build(ctx context.Context, c connectors.Config) (any, error) {
	auth, err := authFrom(c)
	if err != nil {
		return nil, err
	}
	cfg := Config{BaseURL: c.Get("base_url"), Auth: auth, HTTPClient: c.HTTPClient}
	if v := c.Get("rate_limit"); v != "" {
		if cfg.RequestsPerSecond, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, fmt.Errorf("rate_limit %q: want a number", v)
		}
	}
	return New(ctx, cfg)
}

// authFrom reads the target's credential (token_env alone is bearer).
func authFrom(c connectors.Config) (Auth, error) {
	typ := c.Get("auth.type")
	if typ == "" && c.Get("token_env") != "" {
		v, err := c.Secret("token_env")
		return Auth{BearerToken: v}, err
	}
	switch typ {
	case "", "none":
		return Auth{}, nil
	case "bearer":
		v, err := c.Secret("auth.token_env")
		return Auth{BearerToken: v}, err
	case "basic":
		u, err := c.Secret("auth.username_env")
		if err != nil {
			return Auth{}, err
		}
		pw, err := c.Secret("auth.password_env")
		return Auth{BasicUser: u, BasicPassword: pw}, err
	case "header":
		v, err := c.Secret("auth.value_env")
		return Auth{HeaderName: c.Get("auth.header"), HeaderValue: v}, err
	case "oauth2":
		id, err := c.Secret("auth.client_id_env")
		if err != nil {
			return Auth{}, err
		}
		sec, err := c.Secret("auth.client_secret_env")
		var scopes []string
		if s := c.Get("auth.scopes"); s != "" {
			scopes = strings.Split(s, ",")
		}
		return Auth{OAuth2: &OAuth2ClientCredentials{TokenURL: c.Get("auth.token_url"), ClientID: id, ClientSecret: sec, Scopes: scopes}}, err
	default:
		return Auth{}, fmt.Errorf("auth.type %q is not supported for scim (bearer, basic, header, oauth2)", typ)
	}
}
