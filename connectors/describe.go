package connectors

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Description is what a connector declares about itself, once, in its own
// package (after baton-sdk's config schemas): how a policy target of its
// type is configured, which actions it can run, its attribute catalog, its
// password rules and how it limits its request rate. Policy validation,
// target construction, the preview and password sync read it; nothing else
// describes a target type.
type Description struct {
	Type    string // the policy's target type: okta, scim, entra, rest
	Summary string
	// Fields are the target's configuration keys as the policy writes them.
	// A key the policy sets that is not here is refused.
	Fields []Field
	// Actions are the policy actions a target of this type can run
	// (sync_identity, manage_relationships, …).
	Actions []string
	// UniqueIdentifier is the default unique identifier of sync_identity.
	UniqueIdentifier string
	// EntityType is the default entity type of the outputs ({OktaUser.login}).
	EntityType string
	// Identifier is what the target accepts as an account's identifier
	// beyond the rule every target shares (transform.CheckIdentifier); nil
	// when nothing more.
	Identifier *IdentifierRules `json:",omitempty"`
	// Attributes is the attribute catalog. With OpenAttributes, names
	// outside it pass through as custom attributes; without, they are refused.
	Attributes     []AttributeSpec
	OpenAttributes bool
	// Passwords is nil when the target cannot set passwords.
	Passwords *PasswordRules
	// RateLimit is how the connector paces itself.
	RateLimit RateLimitBehaviour
	// Consistency bounds how long a write may take to show in the
	// target's reads (an eventually consistent directory: Entra ID); 0 for
	// targets that read their writes at once. Read-backs wait up to this
	// long, with backoff, before calling a write missing.
	Consistency time.Duration `json:",omitempty"`
	// Build makes the connector of one target; nil for types whose steps
	// send their requests themselves (rest).
	Build func(ctx context.Context, c Config) (any, error) `json:"-"`
}

// FieldKind is how a configuration value is checked.
type FieldKind string

// Field kinds.
const (
	FieldURL    FieldKind = "url"    // an absolute http(s) URL; plain http only to loopback
	FieldEnv    FieldKind = "env"    // the name of an environment variable
	FieldString FieldKind = "string" // free text
	FieldNumber FieldKind = "number" // a non-negative number
	FieldAuth   FieldKind = "auth"   // a credential block (auth.type, auth.token_env, …)
)

// Field is one configuration key of a target.
type Field struct {
	Name string // policy key: org_url, token_env, tenant, rate_limit
	Kind FieldKind
	// Secret marks an env field whose variable holds a secret.
	Secret   bool
	Required bool
	// OneOf names the other fields of which at least one must be set with
	// this one (scim: token_env or auth).
	OneOf   []string `json:",omitempty"`
	Default string   `json:",omitempty"`
	Help    string
}

// AttributeSpec is one entry of an attribute catalog.
type AttributeSpec struct {
	Name        string   // normalized name: first_name
	Wire        string   // the target's field: firstName, name.givenName
	Aliases     []string `json:",omitempty"` // other normalized names that mean it: given_name
	Required    bool     `json:",omitempty"` // needed to create an account
	Immutable   bool     `json:",omitempty"` // cannot change after creation
	MultiValued bool     `json:",omitempty"`
	// Reference: the value names another person's account on the same
	// target (Entra's manager). A value that is an HR employee ID is
	// resolved through that person's link before it is written.
	Reference bool `json:",omitempty"`
}

// IdentifierRules are a target's documented limits on one attribute of
// its accounts, checked wherever the policy checks an identifier: the run,
// the preview and the population dry run (policy.Policy.CheckIdentifier).
type IdentifierRules struct {
	// Attribute is the catalog name the rules apply to (login,
	// user_principal_name); its aliases are covered too.
	Attribute string
	// Email: the value must be local@domain.
	Email bool `json:",omitempty"`
	// MaxLength, MaxLocal and MaxDomain bound the value, the part before
	// the @ and the part after it, in characters (0: no limit here).
	MaxLength, MaxLocal, MaxDomain int `json:",omitempty"`
	// LocalChars are the only characters allowed before the @ besides
	// ASCII letters and digits ("": any the shared rule allows).
	LocalChars string `json:",omitempty"`
	// Forbidden are characters the value may not contain anywhere
	// (sAMAccountName: "/\[]:;|=,+*?<>@).
	Forbidden string `json:",omitempty"`
	// NoDotBeforeAt refuses a dot right before the @.
	NoDotBeforeAt bool `json:",omitempty"`
	// Source is where the target documents these limits.
	Source string
}

// CheckIdentifier reports why v breaks the rules for attribute attr of
// the target type d describes; nil when it does not, or when the rules are
// for another attribute.
func (d *Description) CheckIdentifier(attr, v string) error {
	r := d.Identifier
	if r == nil || d.Canonical(attr) != d.Canonical(r.Attribute) {
		return nil
	}
	n := utf8.RuneCountInString(v)
	if r.MaxLength > 0 && n > r.MaxLength {
		return fmt.Errorf("%s %s is %d characters long (at most %d: %s)", d.Type, r.Attribute, n, r.MaxLength, r.Source)
	}
	if i := strings.IndexAny(v, r.Forbidden); r.Forbidden != "" && i >= 0 {
		return fmt.Errorf("%s %s may not contain %q (%s)", d.Type, r.Attribute, v[i:i+1], r.Source)
	}
	i := strings.LastIndexByte(v, '@')
	if i < 0 {
		if r.Email {
			return fmt.Errorf("%s %s must be name@domain (%s)", d.Type, r.Attribute, r.Source)
		}
		return nil
	}
	local, domain := v[:i], v[i+1:]
	if n := utf8.RuneCountInString(local); r.MaxLocal > 0 && n > r.MaxLocal {
		return fmt.Errorf("%s %s has %d characters before @ (at most %d: %s)", d.Type, r.Attribute, n, r.MaxLocal, r.Source)
	}
	if n := utf8.RuneCountInString(domain); r.MaxDomain > 0 && n > r.MaxDomain {
		return fmt.Errorf("%s %s has %d characters after @ (at most %d: %s)", d.Type, r.Attribute, n, r.MaxDomain, r.Source)
	}
	if r.NoDotBeforeAt && strings.HasSuffix(local, ".") {
		return fmt.Errorf("%s %s has a dot right before @ (%s)", d.Type, r.Attribute, r.Source)
	}
	if r.LocalChars != "" {
		for _, c := range local {
			if !(c < utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c)) || strings.ContainsRune(r.LocalChars, c)) {
				return fmt.Errorf("%s %s may not contain %q before @ (letters A-Z, digits and %s only: %s)", d.Type, r.Attribute, c, r.LocalChars, r.Source)
			}
		}
	}
	return nil
}

// PasswordRules are what a target enforces on passwords by default.
type PasswordRules struct {
	MinLength, MaxLength                                    int
	RequireLower, RequireUpper, RequireDigit, RequireSymbol bool
	// MinClasses of lower, upper, digit and symbol (Entra: 3 of 4).
	MinClasses int
	// ASCIIOnly: printable ASCII characters only (Entra refuses Unicode).
	ASCIIOnly bool
}

// RateLimitBehaviour says how the connector limits its requests.
type RateLimitBehaviour struct {
	// Configurable: the target's rate_limit (requests per second) is honoured.
	Configurable bool
	// Adaptive describes pacing the connector does on its own, e.g. from
	// X-Rate-Limit-* headers; empty when none.
	Adaptive string
}

// Config is one target's configuration, as the policy wrote it, for Build.
type Config struct {
	Name string // the target's name in the policy
	// Values by field name; a credential block is flattened to auth.type,
	// auth.token_env, … and numbers are formatted.
	Values     map[string]string
	Getenv     func(string) string
	HTTPClient *http.Client // nil: the connector's default
	Logger     *zap.Logger
	// AllowInsecure permits plain-http URLs on loopback (dev and tests).
	AllowInsecure bool
	// Mapped are the attribute names the policy's steps write on this
	// target: a connector reads an attribute that costs a permission
	// (Entra's lifecycle dates) only when it is mapped.
	Mapped []string
	// Operations, when set, is a preview's record of the operations that
	// do not travel over HTTP (LDAP): the connector sends through it.
	Operations OperationRecorder
}

// Operation is one request a connector sent over a protocol other than
// HTTP (an LDAP add), as a preview shows it: secrets already masked.
type Operation struct {
	Method string // ADD, MODIFY, MODIFY_DN, DELETE, SEARCH, PASSWORD_MODIFY
	Target string // the DN, or the search base and filter
	Body   string // the changes, one per line
}

// OperationRecorder is the preview's recorder for such operations (the
// HTTP recorder's twin): the connector records each one with how it was
// answered: "sent" (the live target), "not found" (a read with no live
// target), "blocked" (a write: never sent, answered with a synthetic
// success).
type OperationRecorder interface {
	RecordOperation(op Operation, answer string)
	// Sends reports whether reads go to the live target, and whether
	// writes do too (tests that record what a run sends).
	Sends() (reads, writes bool)
}

// Get is a field's value.
func (c Config) Get(field string) string { return c.Values[field] }

// Secret reads the environment variable that field names. The error names
// the field and the variable, never the value.
func (c Config) Secret(field string) (string, error) {
	name := c.Values[field]
	if name == "" {
		return "", fmt.Errorf("%s: no environment variable named", field)
	}
	v := c.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s: environment variable %s is empty or unset", field, name)
	}
	return v, nil
}

// Field returns the field called name.
func (d *Description) Field(name string) (Field, bool) {
	i := slices.IndexFunc(d.Fields, func(f Field) bool { return f.Name == name })
	if i < 0 {
		return Field{}, false
	}
	return d.Fields[i], true
}

// Can reports whether the type runs action.
func (d *Description) Can(action string) bool { return slices.Contains(d.Actions, action) }

// Attribute finds a catalog entry by normalized name or alias.
func (d *Description) Attribute(name string) (AttributeSpec, bool) {
	for _, a := range d.Attributes {
		if a.Name == name || slices.Contains(a.Aliases, name) {
			return a, true
		}
	}
	return AttributeSpec{}, false
}

// Canonical is the catalog's name for name (first_name for given_name on
// Okta); name itself when the catalog does not know it.
func (d *Description) Canonical(name string) string {
	if a, ok := d.Attribute(name); ok {
		return a.Name
	}
	return name
}

// Required are the catalog's required attributes.
func (d *Description) Required() []string {
	var out []string
	for _, a := range d.Attributes {
		if a.Required {
			out = append(out, a.Name)
		}
	}
	return out
}

// CheckAttributes lists problems with the attribute names a sync step
// writes: unknown names (closed catalogs), two names for one attribute,
// missing required ones (when creating).
func (d *Description) CheckAttributes(names []string, creating bool) []string {
	var out []string
	seen := map[string]string{}
	for _, n := range names {
		a, ok := d.Attribute(n)
		if !ok {
			if !d.OpenAttributes {
				out = append(out, fmt.Sprintf("attribute %s: %s does not know it (known: %s)", n, d.Type, strings.Join(d.names(), ", ")))
			}
			continue
		}
		if prev, dup := seen[a.Name]; dup {
			out = append(out, fmt.Sprintf("attributes %s and %s are the same %s attribute %s: keep one", prev, n, d.Type, a.Name))
			continue
		}
		seen[a.Name] = n
	}
	if creating {
		for _, r := range d.Required() {
			if _, ok := seen[r]; !ok {
				a, _ := d.Attribute(r)
				also := ""
				if len(a.Aliases) > 0 {
					also = " (or " + strings.Join(a.Aliases, ", ") + ")"
				}
				out = append(out, fmt.Sprintf("attribute %s%s is required by %s to create an account", r, also, d.Type))
			}
		}
	}
	return out
}

func (d *Description) names() []string {
	var out []string
	for _, a := range d.Attributes {
		out = append(out, a.Name)
	}
	return out
}

// Normalize renames aliases in attrs to the catalog's names (a value
// already under the catalog's name wins).
func (d *Description) Normalize(attrs Attributes) Attributes {
	out := make(Attributes, len(attrs))
	for k, v := range attrs {
		c := d.Canonical(k)
		if _, own := attrs[c]; own && c != k {
			continue
		}
		out[c] = v
	}
	return out
}

// WithAliases adds, for every catalog attribute present in attrs, its
// aliases with the same value: an account read back answers to every name
// a policy may have written (given_name as well as first_name), so a
// read-back compares equal whichever the policy chose.
func (d *Description) WithAliases(attrs Attributes) Attributes {
	for _, a := range d.Attributes {
		v, ok := attrs[a.Name]
		if !ok {
			continue
		}
		for _, al := range a.Aliases {
			if _, own := attrs[al]; !own {
				attrs[al] = v
			}
		}
	}
	return attrs
}

// Action names as the policy writes them.
const (
	ActionSyncIdentity        = "sync_identity"
	ActionManageRelationships = "manage_relationships"
	ActionDeprovision         = "deprovision_identity"
	ActionDelete              = "delete_identity"
	ActionCreateEntitlement   = "create_entitlement"
	ActionResetPassword       = "reset_password"
	ActionSendRESTRequest     = "send_rest_request"
	ActionNotify              = "notify"
	ActionAttributeSync       = "attribute_sync" // continuous sync (AccountLister)
	ActionPasswordSync        = "password_sync"  // member of a password sync group
)

// Capability statuses of a probe.
const (
	CapWorks       = "works"       // the connector uses it as is
	CapFallback    = "fallback"    // refused: the connector falls back (Detail says how)
	CapUnsupported = "unsupported" // refused and no fallback: steps needing it fail
	CapUntested    = "untested"    // a write not probed (no --write-probe)
)

// Capability is one thing a connector relies on, as a live probe found it.
type Capability struct {
	Name   string `json:"name"`   // lookup, groups, members_filter, patch, …
	Status string `json:"status"` // CapWorks, CapFallback, CapUnsupported, CapUntested
	Detail string `json:"detail,omitempty"`
}

// Prober is implemented by connectors that can probe their target: reads
// only, unless write is set (then a clearly named probe user and group are
// created, changed and deleted).
type Prober interface {
	Probe(ctx context.Context, write bool) ([]Capability, error)
}

// Capability names probed and needed by policy steps.
const (
	CapLookup        = "lookup"         // find an account by its unique identifier
	CapCreate        = "create"         // create an account
	CapUpdate        = "update"         // change an account (attributes, active)
	CapDelete        = "delete"         // delete an account
	CapGroups        = "groups"         // find and create groups
	CapMembership    = "membership"     // add and remove members
	CapMemberships   = "memberships"    // read an account's groups
	CapMembersFilter = "members_filter" // SCIM: filter groups on members.value
	CapList          = "list"           // read accounts in pages (attribute sync)
)
