package ldap

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// DescribeAD is the description of active_directory targets (Active
// Directory, Samba AD DC).
func DescribeAD() *connectors.Description { return describe(ActiveDirectory) }

// DescribeOpenLDAP is the description of ldap targets (OpenLDAP:
// inetOrgPerson, groupOfNames, the ppolicy overlay).
func DescribeOpenLDAP() *connectors.Description { return describe(OpenLDAP) }

func describe(f Flavour) *connectors.Description {
	d := &connectors.Description{
		Type:    TypeAD,
		Summary: "Active Directory users and groups over LDAPS (or StartTLS): sAMAccountName, unicodePwd, userAccountControl",
		Fields: []connectors.Field{
			{Name: "url", Kind: connectors.FieldString, Required: true, Help: "ldaps://dc1.corp.example (or ldap://… with StartTLS)"},
			{Name: "tls", Kind: connectors.FieldString, Help: "starttls (default for ldap://) or none (plain LDAP: --dev only, never a password)"},
			{Name: "ca_file", Kind: connectors.FieldString, Help: "PEM file of the CA that signed the directory's certificate (default: the system roots)"},
			{Name: "bind_dn", Kind: connectors.FieldString, Required: true, Help: "the service account's DN"},
			{Name: "bind_password_env", Kind: connectors.FieldEnv, Secret: true, Required: true, Help: "environment variable holding the service account's password"},
			{Name: "base_dn", Kind: connectors.FieldString, Required: true, Help: "where accounts and groups are looked up: DC=corp,DC=example"},
			{Name: "user_container", Kind: connectors.FieldString, Required: true, Help: "template of a new account's parent DN: OU={department},OU=Staff,DC=corp,DC=example"},
			{Name: "groups_container", Kind: connectors.FieldString, Help: "where create_entitlement creates groups (default base_dn)"},
			{Name: "disabled_container", Kind: connectors.FieldString, Help: "where a leaver's account is moved (default: it stays)"},
			{Name: "page_size", Kind: connectors.FieldNumber, Default: strconv.Itoa(DefaultPageSize), Help: "entries per page of a listing (RFC 2696)"},
			{Name: "timeout", Kind: connectors.FieldString, Default: DefaultTimeout.String(), Help: "time limit of one operation (Go duration)"},
			{Name: "must_change_password", Kind: connectors.FieldString, Help: "true: a joiner must change the generated password at first logon (AD pwdLastSet=0, OpenLDAP pwdReset)"},
		},
		Actions: []string{connectors.ActionSyncIdentity, connectors.ActionManageRelationships, connectors.ActionDeprovision,
			connectors.ActionDelete, connectors.ActionCreateEntitlement, connectors.ActionResetPassword,
			connectors.ActionAttributeSync, connectors.ActionPasswordSync},
		UniqueIdentifier: attrLogin,
		EntityType:       "ADUser",
		Identifier: &connectors.IdentifierRules{Attribute: attrLogin, MaxLength: 20, Forbidden: `"/\[]:;|=,+*?<>@`,
			Source: `Active Directory sAMAccountName: at most 20 characters, none of "/\[]:;|=,+*?<>@`},
		// The default domain policy: 7 characters, three of four classes.
		Passwords: &connectors.PasswordRules{MinLength: 7, MaxLength: 256, MinClasses: 3},
		Build:     func(ctx context.Context, c connectors.Config) (any, error) { return build(f, c) },
	}
	if f == OpenLDAP {
		d.Type = TypeOpenLDAP
		d.Summary = "OpenLDAP users (inetOrgPerson) and groups (groupOfNames) over LDAPS (or StartTLS); disabled by a ppolicy lock"
		d.EntityType = "LDAPUser"
		d.Identifier = &connectors.IdentifierRules{Attribute: attrLogin, Forbidden: `,+"\<>;=`,
			Source: "the uid is the account's RDN: no RDN special characters"}
		d.Passwords = &connectors.PasswordRules{MinLength: 8, MaxLength: 128}
	}
	for _, a := range schemaOf(f).attrs {
		d.Attributes = append(d.Attributes, connectors.AttributeSpec{Name: a.name, Wire: a.wire, Aliases: a.aliases,
			Required: a.name == attrLogin})
	}
	return d
}

func build(f Flavour, c connectors.Config) (any, error) {
	pw, err := c.Secret("bind_password_env")
	if err != nil {
		return nil, err
	}
	cfg := Config{Flavour: f, URL: c.Get("url"), TLS: c.Get("tls"), BindDN: c.Get("bind_dn"), BindPassword: secret.New(pw),
		BaseDN: c.Get("base_dn"), UserContainer: c.Get("user_container"), GroupsContainer: c.Get("groups_container"),
		DisabledContainer: c.Get("disabled_container"), AllowInsecure: c.AllowInsecure, Recorder: c.Operations,
		MustChangePassword: strings.EqualFold(c.Get("must_change_password"), "true")}
	offline := false
	if c.Operations != nil {
		reads, _ := c.Operations.Sends()
		offline = !reads
	}
	if v := c.Get("ca_file"); v != "" && !offline { // an offline preview connects to nothing
		if cfg.RootCAs, err = LoadCAFile(v); err != nil {
			return nil, connectors.Permanentf(TypeConfig, "ldap: ca_file %s: %v", v, err)
		}
	}
	if v := c.Get("page_size"); v != "" {
		if cfg.PageSize, err = strconv.Atoi(v); err != nil {
			return nil, connectors.Permanentf(TypeConfig, "ldap: page_size %q: want a whole number", v)
		}
	}
	if v := c.Get("timeout"); v != "" {
		if cfg.Timeout, err = time.ParseDuration(v); err != nil {
			return nil, connectors.Permanentf(TypeConfig, "ldap: timeout %q: want a Go duration (30s)", v)
		}
	}
	return New(cfg)
}
