package entra

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Describe is the Entra connector's description. Each target carries its
// own tenant and names its own credential variables, so one policy can
// provision several tenants.
func Describe() *connectors.Description {
	d := &connectors.Description{
		Type:    "entra",
		Summary: "Microsoft Entra ID users and groups through Microsoft Graph v1.0 (app client credentials)",
		Fields: []connectors.Field{
			{Name: "tenant", Kind: connectors.FieldString, Required: true, Help: "directory (tenant) ID or a verified domain"},
			{Name: "client_id_env", Kind: connectors.FieldEnv, Required: true, Help: "environment variable holding the application (client) ID"},
			{Name: "client_secret_env", Kind: connectors.FieldEnv, Secret: true, Required: true, Help: "environment variable holding the client secret"},
			{Name: "base_url", Kind: connectors.FieldURL, Default: DefaultGraphURL, Help: "Microsoft Graph service root (national clouds)"},
			{Name: "authority_url", Kind: connectors.FieldURL, Default: DefaultAuthorityURL, Help: "the token authority (national clouds)"},
			{Name: "rate_limit", Kind: connectors.FieldNumber, Help: "most requests per second"},
		},
		Actions: []string{connectors.ActionSyncIdentity, connectors.ActionManageRelationships, connectors.ActionDeprovision,
			connectors.ActionDelete, connectors.ActionCreateEntitlement, connectors.ActionResetPassword,
			connectors.ActionAttributeSync, connectors.ActionPasswordSync},
		UniqueIdentifier: "user_name", // an alias of user_principal_name, the default policies were written with
		EntityType:       "EntraUser",
		// Microsoft 365 / Entra ID user name (UPN) requirements.
		Identifier: &connectors.IdentifierRules{Attribute: "user_principal_name", Email: true,
			MaxLength: 113, MaxLocal: 64, MaxDomain: 48, LocalChars: "'.-_!#^~", NoDotBeforeAt: true,
			Source: "Microsoft Entra ID user name policies: A-Z a-z 0-9 ' . - _ ! # ^ ~ before @, 64 before and 48 after it, 113 in all"},
		// Microsoft Entra ID: 8 to 256 characters, three of four classes,
		// letters, digits, symbols and spaces of ASCII only.
		Passwords:   &connectors.PasswordRules{MinLength: 8, MaxLength: 256, MinClasses: 3, ASCIIOnly: true},
		RateLimit:   connectors.RateLimitBehaviour{Configurable: true, Adaptive: "honours Retry-After on 429 and 503"},
		Consistency: DefaultConsistency,
		Build:       build,
	}
	for _, a := range attributes {
		d.Attributes = append(d.Attributes, connectors.AttributeSpec{Name: a.name, Wire: a.graph, Aliases: a.aliases,
			Required: a.name == "user_principal_name", MultiValued: a.kind == list})
	}
	d.Attributes = append(d.Attributes,
		connectors.AttributeSpec{Name: attrManager, Wire: "manager/$ref", Reference: true},
		connectors.AttributeSpec{Name: attrManagerID, Wire: "manager/$ref", Reference: true})
	return d
}

func build(ctx context.Context, c connectors.Config) (any, error) {
	id, err := c.Secret("client_id_env")
	if err != nil {
		return nil, err
	}
	sec, err := c.Secret("client_secret_env")
	if err != nil {
		return nil, err
	}
	cfg := Config{Tenant: strings.TrimSpace(c.Get("tenant")), ClientID: strings.TrimSpace(id), ClientSecret: secret.New(sec),
		GraphURL: c.Get("base_url"), AuthorityURL: c.Get("authority_url"), HTTPClient: c.HTTPClient,
		LifecycleDates: slices.ContainsFunc(c.Mapped, func(n string) bool {
			a, ok := lookupAttribute(n)
			return ok && a.lifecycle
		})}
	if v := c.Get("rate_limit"); v != "" {
		if cfg.RateLimit, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, connectors.Permanentf(TypeConfig, "entra: rate_limit %q: want a number", v)
		}
	}
	return New(ctx, cfg)
}
