// Package policy is the operator's description of what to provision: the
// targets, the attributes, and for each lifecycle event the ordered steps.
// A Policy is plain data (JSON-serializable) so workflows can carry the
// steps they run in their history.
package policy

// Policy is a parsed policy file.
type Policy struct {
	// Targets by name (the name is what steps refer to and what outputs are
	// keyed by, e.g. target "okta" of type okta produces {OktaUser.login}).
	Targets map[string]Target `yaml:"targets" json:"targets"`
	// CommonAttributes are transformer templates evaluated for every sync
	// step before its own attributes (step attributes win).
	CommonAttributes map[string]string `yaml:"common_attributes" json:"common_attributes,omitempty"`
	// Lookups are CSV lookup tables for the LOOKUP transformer, by name.
	Lookups map[string]Lookup `yaml:"lookups" json:"lookups,omitempty"`
	// Credentials are reusable named credentials for send_rest_request and
	// notify steps (credential: name).
	Credentials map[string]Credential `yaml:"credentials" json:"credentials,omitempty"`
	// Password is how generated passwords are made.
	Password PasswordPolicy `yaml:"password" json:"password"`
	// RequiredAttributes of an HR event's employee, beyond employee_id, by
	// event type: read them with RequiredFor.
	RequiredAttributes RequiredAttributes `yaml:"required_attributes" json:"required_attributes,omitzero"`

	Joiner Flow `yaml:"joiner" json:"joiner"`
	Mover  Flow `yaml:"mover" json:"mover"`
	Leaver Flow `yaml:"leaver" json:"leaver"`
	Rehire Flow `yaml:"rehire" json:"rehire"` // empty: the joiner flow with reactivation
	// ScopedFlows are more flows for the lifecycle events, each for the
	// people its scope selects (flows: in the file). An event runs the
	// first flow of its kind whose scope matches, in file order, then the
	// kind's own flow (joiner:, …) (Policy.SelectFlow).
	ScopedFlows []Flow `yaml:"flows" json:"flows,omitempty"`
	// Optional are employee attributes conditions and templates may read
	// that no HR schema, required_attributes or mapper provides (custom
	// HR fields): naming one here says it is not a typo.
	Optional      []string      `yaml:"optional" json:"optional,omitempty"`
	AttributeSync AttributeSync `yaml:"attribute_sync" json:"attribute_sync"`

	PasswordSyncGroups []PasswordSyncGroup `yaml:"password_sync_groups" json:"password_sync_groups,omitempty"`
	Safety             Safety              `yaml:"safety" json:"safety"`
	// Reconcile turns on group and account reconciliation (policy/reconcile.go).
	Reconcile Reconcile `yaml:"reconcile" json:"reconcile,omitzero"`
	// Import maps CSV/JSONL column names to employee attribute names.
	Import ImportMapping `yaml:"import" json:"import,omitempty"`
	// Sources are systems jml polls for HR changes, by name (docs/sources.md).
	Sources map[string]Source `yaml:"sources" json:"sources,omitempty"`
	// Approvals configures access requests (policy/approvals.go).
	Approvals Approvals `yaml:"approvals" json:"approvals,omitzero"`
	// Audit is what the audit trail records beyond its defaults (docs/audit.md).
	Audit Audit `yaml:"audit" json:"audit,omitzero"`
}

// Audit configures the audit trail. By default an account update records
// the names of the attributes written, never their values.
type Audit struct {
	// Attributes are the attributes whose new values an update records
	// (department, title, manager): the ones an auditor needs to see.
	Attributes []string `yaml:"attributes" json:"attributes,omitempty"`
}

// Auditable reports whether attr's value may go into an audit record.
func (a Audit) Auditable(attr string) bool {
	for _, x := range a.Attributes {
		if x == attr {
			return true
		}
	}
	return false
}

// Target is one system jml provisions into. Secrets are never in the file:
// only the names of environment variables that hold them.
type Target struct {
	Type     string `yaml:"type" json:"type"` // okta | scim | rest | entra | smtp
	BaseURL  string `yaml:"base_url" json:"base_url,omitempty"`
	OrgURL   string `yaml:"org_url" json:"org_url,omitempty"` // okta
	TokenEnv string `yaml:"token_env" json:"token_env,omitempty"`
	// Auth for scim/rest: none | bearer | basic | header | oauth2 | login_bearer.
	Auth Credential `yaml:"auth" json:"auth,omitempty"`
	// EntityType names the outputs of this target's steps ({OktaUser.login}).
	// Default: OktaUser for okta, ScimUser for scim, EntraUser for entra, the
	// target name for rest.
	EntityType string `yaml:"entity_type" json:"entity_type,omitempty"`
	// RateLimit is the most requests per second jml sends (0: no limit).
	RateLimit float64 `yaml:"rate_limit" json:"rate_limit,omitempty"`
	// Tenant/ClientIDEnv/ClientSecretEnv for entra.
	Tenant          string `yaml:"tenant" json:"tenant,omitempty"`
	ClientIDEnv     string `yaml:"client_id_env" json:"client_id_env,omitempty"`
	ClientSecretEnv string `yaml:"client_secret_env" json:"client_secret_env,omitempty"`
	// AuthorityURL (entra) is the token authority of a national cloud
	// (default https://login.microsoftonline.com); base_url is Graph's root.
	AuthorityURL string `yaml:"authority_url" json:"authority_url,omitempty"`
	// Host, Port, TLS and From for smtp targets (mail servers): TLS is
	// starttls (default, port 587), implicit (465) or none (25); auth is
	// none or basic (username_env, password_env).
	Host string `yaml:"host" json:"host,omitempty"`
	Port int    `yaml:"port" json:"port,omitempty"`
	TLS  string `yaml:"tls" json:"tls,omitempty"`
	From string `yaml:"from" json:"from,omitempty"`
	// CAFile (smtp): PEM file of the CA that signed the mail server's
	// certificate, for a private CA (default: the system roots).
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// LDAP targets (active_directory, ldap): url is ldaps://host or
	// ldap://host (then StartTLS; tls: none only with --dev), ca_file the
	// directory's CA, the containers DNs (user_container a template of
	// the account's attributes: OU={department},OU=Staff,DC=corp,DC=example).
	URL                string `yaml:"url" json:"url,omitempty"`
	BindDN             string `yaml:"bind_dn" json:"bind_dn,omitempty"`
	BindPasswordEnv    string `yaml:"bind_password_env" json:"bind_password_env,omitempty"`
	BaseDN             string `yaml:"base_dn" json:"base_dn,omitempty"`
	UserContainer      string `yaml:"user_container" json:"user_container,omitempty"`
	GroupsContainer    string `yaml:"groups_container" json:"groups_container,omitempty"`
	DisabledContainer  string `yaml:"disabled_container" json:"disabled_container,omitempty"`
	PageSize           int    `yaml:"page_size" json:"page_size,omitempty"`
	Timeout            string `yaml:"timeout" json:"timeout,omitempty"`
	MustChangePassword bool   `yaml:"must_change_password" json:"must_change_password,omitempty"`
}

// Credential is how to authenticate to a target. Only env var names.
type Credential struct {
	Type            string   `yaml:"type" json:"type,omitempty"` // none|bearer|basic|header|oauth2|login_bearer
	TokenEnv        string   `yaml:"token_env" json:"token_env,omitempty"`
	UsernameEnv     string   `yaml:"username_env" json:"username_env,omitempty"`
	PasswordEnv     string   `yaml:"password_env" json:"password_env,omitempty"`
	Header          string   `yaml:"header" json:"header,omitempty"`
	ValueEnv        string   `yaml:"value_env" json:"value_env,omitempty"`
	TokenURL        string   `yaml:"token_url" json:"token_url,omitempty"`
	ClientIDEnv     string   `yaml:"client_id_env" json:"client_id_env,omitempty"`
	ClientSecretEnv string   `yaml:"client_secret_env" json:"client_secret_env,omitempty"`
	Scopes          []string `yaml:"scopes" json:"scopes,omitempty"`
	LoginURL        string   `yaml:"login_url" json:"login_url,omitempty"`     // login_bearer
	TokenField      string   `yaml:"token_field" json:"token_field,omitempty"` // login_bearer: JSON field of the token
}

// Lookup is a CSV table: rows keyed by the column Key.
type Lookup struct {
	File string `yaml:"file" json:"file,omitempty"` // relative to the policy file
	CSV  string `yaml:"csv" json:"csv,omitempty"`   // or inline
	Key  string `yaml:"key" json:"key,omitempty"`   // key column; default the first
}

// PasswordPolicy is how generated passwords are made (crypto/rand).
type PasswordPolicy struct {
	Length         int    `yaml:"length" json:"length,omitempty"` // default 20
	Lower          bool   `yaml:"lower" json:"lower,omitempty"`
	Upper          bool   `yaml:"upper" json:"upper,omitempty"`
	Digits         bool   `yaml:"digits" json:"digits,omitempty"`
	Symbols        bool   `yaml:"symbols" json:"symbols,omitempty"`
	ExcludeSimilar bool   `yaml:"exclude_similar" json:"exclude_similar,omitempty"` // no 0O1lI
	ExcludeChars   string `yaml:"exclude_chars" json:"exclude_chars,omitempty"`
}

// Flow is the ordered steps of one lifecycle event kind.
type Flow struct {
	// Name and Kind (joiner, mover, leaver, rehire) of a flow listed under
	// flows:; a kind's own flow (joiner: …) is named after its kind.
	Name string `yaml:"name" json:"name,omitempty"`
	Kind string `yaml:"kind" json:"kind,omitempty"`
	// Scope is the condition (the when language) choosing who the flow
	// runs for; empty: everyone. A mover flow's scope may read the change
	// (changed(department)).
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// Offset shifts the event's effective time: a joiner with -72h creates
	// the account three days before the start date. Go duration syntax plus
	// "d" for days ("-3d").
	Offset string `yaml:"offset" json:"offset,omitempty"`
	// LocalTime, when set ("17:00"), runs a dated event (termination) at
	// that wall-clock time in the employee's time zone on the effective day.
	LocalTime string `yaml:"local_time" json:"local_time,omitempty"`
	Steps     []Step `yaml:"steps" json:"steps"`
}

// Step is one action. Exactly one action field is set.
type Step struct {
	// Name is the stable step name shown in the UI and used by RetryStep;
	// default "<target>.<action>", e.g. "okta.sync_identity".
	Name string `yaml:"name" json:"name,omitempty"`
	// When is an optional condition on identity attributes, SCIM-filter-like:
	// department eq "Engineering" and country_code ne "US".
	When string `yaml:"when" json:"when,omitempty"`

	SyncIdentity        *SyncIdentity        `yaml:"sync_identity" json:"sync_identity,omitempty"`
	ManageRelationships *ManageRelationships `yaml:"manage_relationships" json:"manage_relationships,omitempty"`
	DeprovisionIdentity *DeprovisionIdentity `yaml:"deprovision_identity" json:"deprovision_identity,omitempty"`
	DeleteIdentity      *DeleteIdentity      `yaml:"delete_identity" json:"delete_identity,omitempty"`
	CreateEntitlement   *CreateEntitlement   `yaml:"create_entitlement" json:"create_entitlement,omitempty"`
	ResetPassword       *ResetPassword       `yaml:"reset_password" json:"reset_password,omitempty"`
	SendRESTRequest     *RESTRequest         `yaml:"send_rest_request" json:"send_rest_request,omitempty"`
	Notify              *RESTRequest         `yaml:"notify" json:"notify,omitempty"`
	// Approval waits for approval before the steps after it (policy/approvals.go).
	Approval *Approval `yaml:"approval" json:"approval,omitempty"`
}

// SyncIdentity is SYNC_IDENTITIES.
type SyncIdentity struct {
	Target           string `yaml:"target" json:"target"`
	CreateAllowed    bool   `yaml:"create_allowed" json:"create_allowed,omitempty"`
	UniqueIdentifier string `yaml:"unique_identifier" json:"unique_identifier,omitempty"` // default user_name (scim) / login (okta)
	// Password: "" (none), "generate" (from the password policy into the vault).
	Password string `yaml:"password" json:"password,omitempty"`
	// Attributes: destination attribute → transformer template.
	Attributes map[string]string `yaml:"attributes" json:"attributes,omitempty"`
	// Fallbacks: destination attribute → templates tried in order when the
	// value is taken in the target (uniqueness), e.g. with NEXT_NUMBER.
	Fallbacks map[string][]string `yaml:"fallbacks" json:"fallbacks,omitempty"`
	// NotContinuouslySynced attributes are written at creation only.
	NotContinuouslySynced []string `yaml:"not_continuously_synced" json:"not_continuously_synced,omitempty"`
	// Groups granted at creation in the same call where possible (Okta groupIds).
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	// OnExistingAccount is what a joiner does to the password of an
	// account it adopts (found unlinked, matched by correlation keys):
	// keep_password (default) or set_password.
	OnExistingAccount string `yaml:"on_existing_account" json:"on_existing_account,omitempty"`
	// Rename says whether a linked account's unique identifier follows HR
	// changes: never (default; Okta logins cannot change) or allowed.
	Rename string `yaml:"rename" json:"rename,omitempty"`
}

// Values of SyncIdentity.OnExistingAccount and SyncIdentity.Rename.
const (
	KeepPassword  = "keep_password"
	SetPassword   = "set_password"
	RenameNever   = "never"
	RenameAllowed = "allowed"
)

// ManageRelationships adds and removes group memberships (templates allowed:
// "dept-{department | LOWER}"). On a mover, groups rendered from the old
// attributes and not from the new ones are removed.
type ManageRelationships struct {
	Target        string   `yaml:"target" json:"target"`
	Add           []string `yaml:"add" json:"add,omitempty"`
	Remove        []string `yaml:"remove" json:"remove,omitempty"`
	RemoveAll     bool     `yaml:"remove_all" json:"remove_all,omitempty"`
	CreateMissing bool     `yaml:"create_missing" json:"create_missing,omitempty"`
}

// DeprovisionIdentity is DEPROVISION_IDENTITY.
type DeprovisionIdentity struct {
	Target        string `yaml:"target" json:"target"`
	Mode          string `yaml:"mode" json:"mode,omitempty"` // suspend | deactivate
	RemoveGroups  bool   `yaml:"remove_groups" json:"remove_groups,omitempty"`
	ClearSessions bool   `yaml:"clear_sessions" json:"clear_sessions,omitempty"`
}

// DeleteIdentity is DELETE_IDENTITY, optionally after a durable delay.
type DeleteIdentity struct {
	Target string `yaml:"target" json:"target"`
	After  string `yaml:"after" json:"after,omitempty"` // "30d", "720h"
}

// CreateEntitlement is CREATE_ENTITLEMENT.
type CreateEntitlement struct {
	Target      string `yaml:"target" json:"target"`
	Name        string `yaml:"name" json:"name"`                         // template
	Description string `yaml:"description" json:"description,omitempty"` // template
}

// ResetPassword is RESET_PASSWORD (temporary password into the vault).
type ResetPassword struct {
	Target string `yaml:"target" json:"target"`
}

// RESTRequest is SEND_REST_REQUEST and NOTIFY. URL, headers and body are
// templates. Body is a JSON template: values substituted into it are
// JSON-escaped.
type RESTRequest struct {
	Target string `yaml:"target" json:"target,omitempty"` // a rest target for base URL and auth
	// Credential names a reusable credential (Policy.Credentials); it wins
	// over the target's auth.
	Credential   string            `yaml:"credential" json:"credential,omitempty"`
	Method       string            `yaml:"method" json:"method,omitempty"`
	URL          string            `yaml:"url" json:"url"`
	Headers      map[string]string `yaml:"headers" json:"headers,omitempty"`
	Body         string            `yaml:"body" json:"body,omitempty"`
	SuccessCodes []int             `yaml:"success_codes" json:"success_codes,omitempty"`
	// Extract: output name → JSONPath-like path in the response ($.id).
	Extract map[string]string `yaml:"extract" json:"extract,omitempty"`
	// On (notify only): completed | needs_attention | failed | blocked |
	// aborted. Empty: completed.
	On []string `yaml:"on" json:"on,omitempty"`

	// The fields below are notify only (docs/notifications.md).

	// Channel is webhook (default; a REST request as above), email (an
	// smtp target), slack or teams (incoming webhooks).
	Channel string `yaml:"channel" json:"channel,omitempty"`
	// URLEnv names the environment variable holding the webhook URL (a
	// Slack or Teams webhook URL is a credential); it replaces url.
	URLEnv string `yaml:"url_env" json:"url_env,omitempty"`
	// To, Cc and Bcc are recipient templates ({email}, {Manager.email},
	// fixed addresses); a value may render to a comma-separated list.
	To  []string `yaml:"to" json:"to,omitempty"`
	Cc  []string `yaml:"cc" json:"cc,omitempty"`
	Bcc []string `yaml:"bcc" json:"bcc,omitempty"`
	// Subject (email) or title (chat) template.
	Subject string `yaml:"subject" json:"subject,omitempty"`
	// Text and HTML are the message templates; TextFile and HTMLFile name
	// files next to the policy, which Load reads into Text and HTML.
	Text     string `yaml:"text" json:"text,omitempty"`
	HTML     string `yaml:"html" json:"html,omitempty"`
	TextFile string `yaml:"text_file" json:"text_file,omitempty"`
	HTMLFile string `yaml:"html_file" json:"html_file,omitempty"`
	// After names an earlier step of the flow: the notification is sent
	// right after that step is done.
	After string `yaml:"after" json:"after,omitempty"`
	// MaxAttempts bounds the step's attempts (default: every step's 20).
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts,omitempty"`
}

// AttributeSync is continuous attribute synchronization.
type AttributeSync struct {
	Every    string   `yaml:"every" json:"every,omitempty"` // "15m"; empty: off
	Targets  []string `yaml:"targets" json:"targets,omitempty"`
	PageSize int      `yaml:"page_size" json:"page_size,omitempty"`
}

// PasswordSyncGroup keeps one password across several targets.
type PasswordSyncGroup struct {
	Name    string        `yaml:"name" json:"name"`
	Auth    string        `yaml:"auth" json:"auth"` // the authoritative target, changed first
	Members []string      `yaml:"members" json:"members"`
	Rules   PasswordRules `yaml:"rules" json:"rules"`
}

// PasswordRules are what a synced password must satisfy.
type PasswordRules struct {
	MinLength      int      `yaml:"min_length" json:"min_length,omitempty"`
	MaxLength      int      `yaml:"max_length" json:"max_length,omitempty"`
	RequireLower   bool     `yaml:"require_lower" json:"require_lower,omitempty"`
	RequireUpper   bool     `yaml:"require_upper" json:"require_upper,omitempty"`
	RequireDigit   bool     `yaml:"require_digit" json:"require_digit,omitempty"`
	RequireSymbol  bool     `yaml:"require_symbol" json:"require_symbol,omitempty"`
	History        int      `yaml:"history" json:"history,omitempty"`
	ForbiddenWords []string `yaml:"forbidden_words" json:"forbidden_words,omitempty"` // templates: "{first_name}"
}

// Safety is the mass-change limit on destructive steps.
type Safety struct {
	MaxDestructivePerHour int     `yaml:"max_destructive_per_hour" json:"max_destructive_per_hour,omitempty"` // e.g. 25
	MaxDestructivePercent float64 `yaml:"max_destructive_percent" json:"max_destructive_percent,omitempty"`   // e.g. 5
}

// ImportMapping maps file columns to employee attributes.
type ImportMapping struct {
	Columns map[string]string `yaml:"columns" json:"columns,omitempty"` // column → attribute
	Type    string            `yaml:"type" json:"type,omitempty"`       // default event type: hire
}

// Source is a source of identity jml polls (docs/sources.md): Okta users
// changed since a cursor, or a full HR report diffed against the last one.
// Its changes become HR events on the same path as the intake's.
type Source struct {
	Type string `yaml:"type" json:"type"` // okta | report
	// OrgURL and TokenEnv (okta): the org and the API token's variable.
	OrgURL   string `yaml:"org_url" json:"org_url,omitempty"`
	TokenEnv string `yaml:"token_env" json:"token_env,omitempty"`
	// URL (https) or File (a path, relative to the policy file) of a
	// report; Format is json or csv (default: from the name or content
	// type); Auth is none, bearer, basic or header.
	URL    string     `yaml:"url" json:"url,omitempty"`
	File   string     `yaml:"file" json:"file,omitempty"`
	Format string     `yaml:"format" json:"format,omitempty"`
	Auth   Credential `yaml:"auth" json:"auth,omitempty"`
	// Records is the JSON field holding the rows (Workday RaaS:
	// Report_Entry; BambooHR: employees); default: a top-level array, or
	// the only array field of the top-level object.
	Records string `yaml:"records" json:"records,omitempty"`
	// Every is the poll interval (default 15m, at least 1m).
	Every string `yaml:"every" json:"every,omitempty"`
	// EmployeeID is the template that finds the employee ID in a row, e.g.
	// '{employeeNumber}'. Required.
	EmployeeID string `yaml:"employee_id" json:"employee_id"`
	// Attributes: identity attribute → template over the source's fields.
	Attributes map[string]string `yaml:"attributes" json:"attributes,omitempty"`
	// Active (report) is a condition on the mapped attributes telling
	// who is employed (status eq "Active"); default: every row. Okta users
	// are active by their status.
	Active string `yaml:"active" json:"active,omitempty"`
	// MaxTerminatePercent: a poll that would terminate more than this
	// share of the people known is not applied but waits Blocked for an
	// operator (default 5; 100 turns the check off).
	MaxTerminatePercent float64 `yaml:"max_terminate_percent" json:"max_terminate_percent,omitempty"`
	// Initial is what the first poll does with the people it finds: hire
	// (default: everyone active is hired, accounts found are adopted) or
	// baseline (remember them, emit nothing).
	Initial string `yaml:"initial" json:"initial,omitempty"`
}

// Values of Source.Initial.
const (
	InitialHire     = "hire"
	InitialBaseline = "baseline"
)
