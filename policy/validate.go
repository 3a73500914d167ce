package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/registry"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/transform"
	"gopkg.in/yaml.v3"
)

var (
	authTypes = []string{"none", "bearer", "basic", "header", "oauth2", "login_bearer"}
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// scope is what templates may reference at a point of a flow.
type scope struct {
	outputs   map[string]bool // entity types produced by earlier steps
	passwords map[string]bool // entity types with a password output
	target    map[string]bool // $target attributes (nil: $target not allowed)
	// employee: references without an entity are employee attributes,
	// checked against what provides them (a source's own fields are not).
	employee bool
}

func (c *checker) validate(p *Policy) {
	c.validateTargets(p)
	tables := c.validateLookups(p)
	c.known = p.ProvidedAttributes()
	for name, src := range p.CommonAttributes {
		c.template(p, tables, "common_attributes."+name, src, scope{target: keys(p.CommonAttributes), employee: true})
	}
	c.validateScopedFlows(p)
	for i, f := range p.Flows() {
		path := f.Kind
		if i >= len(p.ownFlows()) {
			path = fmt.Sprintf("flows[%d]", i-len(p.ownFlows()))
		}
		c.validateFlow(p, tables, path, f)
	}
	c.validateRest(p)
	c.validatePasswordSyncGroups(p)
	c.validateReconcile(p)
	c.validateSources(p, tables)
	c.validateApprovals(p)
	for i, a := range p.Audit.Attributes {
		if secretish(a) {
			c.at(fmt.Sprintf("audit.attributes[%d]", i), "%s may hold a secret: its value never goes into the audit trail (its name always does)", a)
		}
	}
}

// secretish: an attribute name that may carry a password or a credential.
func secretish(attr string) bool {
	a := strings.ToLower(attr)
	return strings.Contains(a, "password") || strings.Contains(a, "secret") || strings.Contains(a, "token") || strings.Contains(a, "pwd")
}

func keys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func (c *checker) envName(path, v string, required bool) {
	switch {
	case v == "" && required:
		c.at(path, "required: the name of the environment variable that holds the secret")
	case v == "":
	case looksLikeSecret(v) != "": // already reported by walk
	case !envNameRE.MatchString(v) || len(v) >= 24 && hasLower(v) && hasUpper(v) && hasDigit(v):
		// Never echo the value: it may be the secret itself.
		c.at(path, "this looks like a secret, not an environment variable name: put the secret in an environment variable and write its name here (e.g. OKTA_API_TOKEN)")
	}
}

func hasLower(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' })
}
func hasUpper(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' })
}
func hasDigit(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= '0' && r <= '9' })
}

func (c *checker) url(path, raw string, required bool) {
	if raw == "" {
		if required {
			c.at(path, "required")
		}
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		c.at(path, "want an absolute http(s) URL")
	case u.User != nil:
		if _, has := u.User.Password(); has {
			c.at(path, "a password in the URL is a literal secret: configure auth with environment variables instead")
		}
	case u.Scheme == "http" && !connectors.IsLoopback(u.Hostname()):
		c.at(path, "plain http is only allowed to loopback (credentials would travel in clear text): use https")
	}
}

func (c *checker) validateTargets(p *Policy) {
	if len(p.Targets) == 0 {
		c.at("targets", "at least one target is required")
	}
	byEntity := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Targets)) {
		t := p.Targets[name]
		path := "targets." + name
		if !nameRE.MatchString(name) {
			c.at(path+"#key", "target name %q: use letters, digits, - and _", name)
		}
		if types := targetTypes(); !slices.Contains(types, t.Type) {
			c.at(path+".type", "type %q: want one of %s%s", t.Type, strings.Join(types, ", "), didYouMean(t.Type, types))
			continue
		}
		if d, ok := Describe(t.Type); ok {
			c.describedTarget(path, t, d)
		} else { // smtp: the notify steps' mail server
			c.smtpTarget(path, t)
			c.validateAuth(path+".auth", t.Auth)
			if t.RateLimit < 0 {
				c.at(path+".rate_limit", "must not be negative")
			}
		}
		if t.EntityType != "" && !identRE.MatchString(t.EntityType) {
			c.at(path+".entity_type", "entity_type %q: use letters, digits and _ (e.g. JiraUser)", t.EntityType)
		}
		e := p.EntityType(name)
		byEntity[e] = append(byEntity[e], name)
	}
	for _, e := range slices.Sorted(maps.Keys(byEntity)) {
		if names := byEntity[e]; len(names) > 1 {
			c.at("targets."+names[1], "targets %s all produce {%s.…}: set entity_type on all but one (e.g. entity_type: %s%s)",
				strings.Join(names, ", "), e, upperFirst(names[1]), "User")
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (c *checker) validateAuth(path string, a Credential) {
	if a.Type == "" {
		if !reflect.DeepEqual(a, Credential{}) {
			c.at(path, "auth needs a type: %s", strings.Join(authTypes, ", "))
		}
		return
	}
	if !slices.Contains(authTypes, a.Type) {
		c.at(path+".type", "type %q: want one of %s%s", a.Type, strings.Join(authTypes, ", "), didYouMean(a.Type, authTypes))
		return
	}
	req := func(field, v string) { c.envName(path+"."+field, v, true) }
	opt := func(field, v string) { c.envName(path+"."+field, v, false) }
	switch a.Type {
	case "bearer":
		req("token_env", a.TokenEnv)
	case "basic":
		req("username_env", a.UsernameEnv)
		req("password_env", a.PasswordEnv)
	case "header":
		if a.Header == "" {
			c.at(path, "header auth needs header (e.g. X-Api-Key)")
		}
		req("value_env", a.ValueEnv)
	case "oauth2":
		c.url(path+".token_url", a.TokenURL, true)
		req("client_id_env", a.ClientIDEnv)
		req("client_secret_env", a.ClientSecretEnv)
	case "login_bearer":
		c.url(path+".login_url", a.LoginURL, true)
		req("username_env", a.UsernameEnv)
		req("password_env", a.PasswordEnv)
	}
	opt("token_env", a.TokenEnv)
}

func (c *checker) validateLookups(p *Policy) map[string]bool {
	names := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(p.Lookups)) {
		l := p.Lookups[name]
		path := "lookups." + name
		names[name] = true
		switch {
		case l.File != "" && l.CSV != "":
			c.at(path, "set file or csv, not both")
			continue
		case l.File != "":
			f := l.File
			if !filepath.IsAbs(f) {
				f = filepath.Join(c.dir, f)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				c.at(path+".file", "cannot read %s: %v", l.File, errors.Unwrap(err))
				continue
			}
			l.CSV = string(data)
			p.Lookups[name] = l
		case l.CSV == "":
			c.at(path, "a lookup needs file or csv")
			continue
		}
		if _, err := parseTable(l); err != nil {
			c.at(path, "%v", err)
		}
	}
	return names
}

// template parses a transformer and checks what it references. The
// problem points at the template's own column where the YAML allows.
func (c *checker) template(p *Policy, tables map[string]bool, path, src string, sc scope) *transform.Template {
	t, err := transform.Parse(src)
	if err != nil {
		var te *transform.Error
		line, col := c.position(path, 0)
		if errors.As(err, &te) {
			line, col = c.position(path, te.Col)
		}
		c.add(line, col, path, err.Error())
		return nil
	}
	for _, r := range t.Refs() {
		switch {
		case r.Entity == "" && sc.employee:
			c.attribute(path, "{"+r.Attr+"}", r.Attr)
		case r.Entity == "":
		case r.Entity == transform.TargetEntity:
			if sc.target == nil {
				c.at(path, "{%s}: $target is only allowed in sync_identity attributes", r)
			} else if !sc.target[r.Attr] {
				c.at(path, "{%s}: unknown attribute $target.%s%s", r, r.Attr, didYouMean(r.Attr, slices.Sorted(maps.Keys(sc.target))))
			}
		case sc.outputs == nil:
		case !sc.outputs[r.Entity]:
			c.at(path, "{%s}: no earlier step in this flow produces %s%s", r, r.Entity, didYouMean(r.Entity, slices.Sorted(maps.Keys(sc.outputs))))
		case r.Attr == "password" && !sc.passwords[r.Entity]:
			c.at(path, "{%s}: no earlier step generates a password for %s (sync_identity with password: generate, or reset_password)", r, r.Entity)
		}
	}
	for _, call := range t.Calls() {
		if call.Func == "LOOKUP" && len(call.Args) > 1 {
			// Function-first LOOKUP has the input first.
			name := call.Args[0]
			if len(call.Args) == 4 || len(call.Args) == 3 && !tables[name] && tables[call.Args[1]] {
				name = call.Args[1]
			}
			if name != "" && !tables[name] {
				c.at(path, "LOOKUP: unknown lookup table %q%s", name, didYouMean(name, slices.Sorted(maps.Keys(tables))))
			}
		}
	}
	return t
}

// position maps a template column to a file position for single-line
// scalars; otherwise it is the scalar's own position.
func (c *checker) position(path string, col int) (int, int) {
	n := c.node(path)
	if n == nil {
		return 1, 1
	}
	if col <= 0 || strings.Contains(n.Value, "\n") {
		return n.Line, n.Column
	}
	switch n.Style {
	case 0:
		return n.Line, n.Column + col - 1
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		return n.Line, n.Column + col
	}
	return n.Line, n.Column
}

func didYouMean(s string, options []string) string {
	if s == "" {
		return ""
	}
	if m := closest(s, options); m != "" && m != s {
		return fmt.Sprintf(" (did you mean %s?)", m)
	}
	return ""
}

// targetTypes are the connectors' types and smtp (the notify steps' mail
// servers).
func targetTypes() []string { return append(registry.Types(), "smtp") }

// typesThatCan are the target types whose connector runs action.
func typesThatCan(action string) []string {
	var out []string
	for _, d := range registry.All() {
		if d.Can(action) {
			out = append(out, d.Type)
		}
	}
	return out
}

// target checks that a step's target exists and that its connector runs
// action ("" for any).
func (c *checker) target(p *Policy, path, name, action string) {
	if name == "" {
		c.at(path, "target: required")
		return
	}
	t, ok := p.Targets[name]
	if !ok {
		c.at(path+".target", "unknown target %q%s", name, didYouMean(name, slices.Sorted(maps.Keys(p.Targets))))
		return
	}
	if action == "smtp" { // e-mail notify steps: not a connector
		if t.Type != "" && t.Type != "smtp" {
			c.at(path+".target", "target %s is of type %s; this action needs smtp", name, t.Type)
		}
		return
	}
	if d, ok := Describe(t.Type); action != "" && t.Type != "" && (!ok || !d.Can(action)) {
		c.at(path+".target", "target %s is of type %s; this action needs %s", name, t.Type, strings.Join(typesThatCan(action), " or "))
	}
}

func (c *checker) duration(path, s string, allowNegative bool) time.Duration {
	d, err := ParseDuration(s)
	if err != nil {
		c.at(path, "%v", err)
		return 0
	}
	if d < 0 && !allowNegative {
		c.at(path, "must not be negative")
	}
	return d
}

func (c *checker) validateFlow(p *Policy, tables map[string]bool, name string, nf NamedFlow) {
	f := nf.Flow
	c.condition(name+".scope", f.Scope, nf.Kind, "")
	c.duration(name+".offset", f.Offset, true)
	if f.LocalTime != "" {
		if _, _, err := parseClock(f.LocalTime); err != nil {
			c.at(name+".local_time", "%v", err)
		}
	}
	sc := scope{outputs: map[string]bool{}, passwords: map[string]bool{}, employee: true}
	seen := map[string]string{}
	for i, s := range f.Steps {
		path := fmt.Sprintf("%s.steps[%d]", name, i)
		set := setActions(s)
		switch len(set) {
		case 0:
			c.at(path, "no action: want one of %s", strings.Join(actions, ", "))
			continue
		case 1:
		default:
			var names []string
			for _, a := range set {
				names = append(names, a.name)
			}
			c.at(path, "one action per step, found %s: split them into steps", strings.Join(names, " and "))
			continue
		}
		stepName := StepName(s)
		if prev, dup := seen[stepName]; dup {
			c.at(path, "step name %q is also used by %s: give one of them a name", stepName, prev)
		}
		seen[stepName] = path
		if t, ok := strings.CutSuffix(stepName, ".revoke"); ok && nf.Kind == KindMover && p.Targets[t].Type != "" {
			c.at(path, "step name %q is the mover's own step that takes back conditional grants: give this step another name", stepName)
		}
		if s.Notify != nil && s.Notify.After != "" {
			if _, ok := seen[s.Notify.After]; !ok || s.Notify.After == stepName {
				c.at(path+".notify.after", "after %q: not an earlier step of this flow%s", s.Notify.After, didYouMean(s.Notify.After, slices.Sorted(maps.Keys(seen))))
			}
		}
		c.condition(path+".when", s.When, nf.Kind, grantsGroups(s))
		if sc := f.Scope; grantsGroups(s) != "" && sc != "" {
			if cc, err := CompileCondition(sc); err == nil && cc.ReadsChange() {
				c.at(path, "%s: a grant follows its condition, and this flow's scope reads the change (%s): "+
					"give the grant its own flow, scoped on the state (department eq \"Sales\")", grantsGroups(s), sc)
			}
		}
		c.validateStep(p, tables, path, s, sc)
	}
}

func (c *checker) validateStep(p *Policy, tables map[string]bool, path string, s Step, sc scope) {
	for _, a := range setActions(s) { // one: validateFlow checked
		a.spec.check(c, p, tables, path+"."+a.name, sc)
	}
}

func (a *SyncIdentity) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionSyncIdentity)
	attrs := mergedAttributes(p, *a)
	local := scope{outputs: sc.outputs, passwords: sc.passwords, target: keys(attrs)}
	tmpls := map[string]*transform.Template{}
	for _, k := range slices.Sorted(maps.Keys(a.Attributes)) {
		if t := c.template(p, tables, ap+".attributes."+k, a.Attributes[k], local); t != nil {
			tmpls[k] = t
		}
	}
	for k, src := range p.CommonAttributes {
		if _, own := a.Attributes[k]; !own {
			if t, err := transform.Parse(src); err == nil {
				tmpls[k] = t
			}
		}
	}
	if len(tmpls) == len(attrs) {
		if _, err := targetOrder(tmpls); err != nil {
			c.at(ap+".attributes", "%v", err)
		}
	}
	if d, ok := Describe(p.Targets[a.Target].Type); ok && d.Can(connectors.ActionSyncIdentity) {
		for _, msg := range d.CheckAttributes(slices.Sorted(maps.Keys(attrs)), a.CreateAllowed) {
			c.at(ap+".attributes", "%s", msg)
		}
	}
	if _, known := p.Targets[a.Target]; known && attrs[p.UniqueIdentifier(*a)] == "" {
		uid := p.UniqueIdentifier(*a)
		c.at(ap, "unique_identifier %s has no template in attributes (or common_attributes)", uid)
	}
	switch a.Password {
	case "", "generate":
	default:
		c.at(ap+".password", "password %q: want generate or leave it out (never a literal password)", "…")
	}
	switch a.OnExistingAccount {
	case "", KeepPassword, SetPassword:
	default:
		c.at(ap+".on_existing_account", "%q: want keep_password or set_password", a.OnExistingAccount)
	}
	switch a.Rename {
	case "", RenameNever:
	case RenameAllowed:
		typ := p.Targets[a.Target].Type
		if d, ok := Describe(typ); ok {
			if at, ok := d.Attribute(p.UniqueIdentifier(*a)); ok && at.Immutable {
				c.at(ap+".rename", "%s %ss cannot change after creation: want never", typ, at.Name)
			}
		}
	default:
		c.at(ap+".rename", "%q: want never or allowed", a.Rename)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Fallbacks)) {
		if _, ok := attrs[k]; !ok {
			c.at(ap+".fallbacks."+k, "fallbacks for %s, which is not an attribute of this step", k)
		}
		for i, src := range a.Fallbacks[k] {
			c.template(p, tables, fmt.Sprintf("%s.fallbacks.%s[%d]", ap, k, i), src, local)
		}
	}
	for i, k := range a.NotContinuouslySynced {
		if _, ok := attrs[k]; !ok {
			c.at(fmt.Sprintf("%s.not_continuously_synced[%d]", ap, i), "%s is not an attribute of this step%s", k, didYouMean(k, slices.Sorted(maps.Keys(attrs))))
		}
	}
	for i, g := range a.Groups {
		c.template(p, tables, fmt.Sprintf("%s.groups[%d]", ap, i), g, sc)
	}
	if e := p.EntityType(a.Target); e != "" {
		sc.outputs[e] = true
		if a.Password == "generate" {
			sc.passwords[e] = true
		}
	}
}

func (a *ManageRelationships) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionManageRelationships)
	if len(a.Add) == 0 && len(a.Remove) == 0 && !a.RemoveAll {
		c.at(ap, "nothing to do: set add, remove or remove_all")
	}
	for i, g := range a.Add {
		c.template(p, tables, fmt.Sprintf("%s.add[%d]", ap, i), g, sc)
	}
	for i, g := range a.Remove {
		c.template(p, tables, fmt.Sprintf("%s.remove[%d]", ap, i), g, sc)
	}
}

func (a *DeprovisionIdentity) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionDeprovision)
	if !slices.Contains([]string{"", "suspend", "deactivate"}, a.Mode) {
		c.at(ap+".mode", "mode %q: want suspend or deactivate", a.Mode)
	}
}

func (a *DeleteIdentity) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionDelete)
	c.duration(ap+".after", a.After, false)
}

func (a *CreateEntitlement) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionCreateEntitlement)
	if a.Name == "" {
		c.at(ap, "name: required (a template, e.g. dept-{department | LOWER})")
	} else {
		c.template(p, tables, ap+".name", a.Name, sc)
	}
	c.template(p, tables, ap+".description", a.Description, sc)
}

func (a *ResetPassword) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.target(p, ap, a.Target, connectors.ActionResetPassword)
	if e := p.EntityType(a.Target); e != "" {
		sc.outputs[e] = true
		sc.passwords[e] = true
	}
}

func (a *RESTRequest) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.request(p, tables, ap, a, sc, false)
}

// notifySpec is a notify step's fields (a RESTRequest with channels).
type notifySpec RESTRequest

func (a *notifySpec) check(c *checker, p *Policy, tables map[string]bool, ap string, sc scope) {
	c.notify(p, tables, ap, (*RESTRequest)(a), sc)
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// credentialHeaders carry credentials; a constant value is a literal secret.
func credentialHeader(h string) bool {
	h = strings.ToLower(h)
	return h == "authorization" || h == "cookie" || h == "proxy-authorization" ||
		strings.Contains(h, "token") || strings.Contains(h, "secret") || strings.Contains(h, "api-key") ||
		strings.Contains(h, "apikey") || strings.Contains(h, "password")
}

func (c *checker) request(p *Policy, tables map[string]bool, path string, r *RESTRequest, sc scope, notify bool) {
	if r.Target != "" {
		c.target(p, path, r.Target, connectors.ActionSendRESTRequest)
	}
	if r.Method != "" && !slices.Contains(methods, strings.ToUpper(r.Method)) {
		c.at(path+".method", "method %q: want one of %s", r.Method, strings.Join(methods, ", "))
	}
	secret := false // the request carries a password or a credential
	if r.URL == "" {
		c.at(path, "url: required")
	} else if t := c.template(p, tables, path+".url", r.URL, sc); t != nil && r.Target == "" && t.IsConstant() {
		c.url(path+".url", r.URL, true)
	} else if t != nil {
		secret = t.ReadsSecret()
	} else if r.Target == "" && !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
		c.at(path+".url", "without a target the url must be absolute (https://…)")
	}
	for _, h := range slices.Sorted(maps.Keys(r.Headers)) {
		hp := path + ".headers." + h
		t := c.template(p, tables, hp, r.Headers[h], sc)
		if t != nil && credentialHeader(h) && t.IsConstant() && r.Headers[h] != "" {
			c.at(hp, "a literal credential in header %s: configure auth on a rest target (secrets from environment variables)", h)
		}
		secret = secret || t != nil && t.ReadsSecret()
	}
	if r.Body != "" && !json.Valid([]byte(r.Body)) {
		// The REST connector renders the strings of a JSON body, so the body
		// must be JSON before rendering: a quoted template argument breaks it.
		c.at(path+".body", `not valid JSON: write placeholders inside JSON strings, e.g. {"login": "{email}"}, and template arguments without raw double quotes (DATE_FORMAT, DATEONLY)`)
	}
	if r.Body != "" {
		if t := c.template(p, tables, path+".body", r.Body, sc); t != nil {
			secret = secret || t.ReadsSecret()
		}
	}
	c.secretTransport(p, path, r, secret)
	for i, code := range r.SuccessCodes {
		if code < 100 || code > 599 {
			c.at(fmt.Sprintf("%s.success_codes[%d]", path, i), "%d is not an HTTP status", code)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Extract)) {
		if !identRE.MatchString(k) {
			c.at(path+".extract."+k, "output name %q: use letters, digits and _", k)
		}
		if !strings.HasPrefix(r.Extract[k], "$") {
			c.at(path+".extract."+k, "path %q: want a JSON path like $.id", r.Extract[k])
		}
	}
	if len(r.Extract) > 0 {
		if r.Target == "" {
			c.at(path+".extract", "extract needs a rest target: outputs are named {<entity_type>.<name>}")
		} else if e := p.EntityType(r.Target); e != "" {
			sc.outputs[e] = true
		}
	}
	if !notify && len(r.On) > 0 { // notify checks its own (policy/notify.go)
		c.at(path+".on", "on is only for notify steps")
	}
}

// secretTransport refuses a request that carries a secret (a password it
// reads, or its target's or credential's authentication) to a plain-http
// URL, by the predicate the REST connector applies before sending
// (connectors.SecretsMayTravel, as a worker runs it: no loopback
// allowance): such a run would stop with RestInsecure after the steps
// before it, the account's creation among them, had been done.
func (c *checker) secretTransport(p *Policy, path string, r *RESTRequest, readsSecret bool) {
	t, hasTarget := p.Targets[r.Target]
	credential := r.Credential != "" || hasTarget && (t.TokenEnv != "" || t.Auth.Type != "" && t.Auth.Type != "none")
	if !readsSecret && !credential {
		return
	}
	raw, at := r.URL, path+".url"
	if lower := strings.ToLower(raw); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		if !hasTarget {
			return // a relative URL without a target is refused above
		}
		raw, at = t.BaseURL, path+".target"
	}
	if raw == "" {
		return // a target without base_url is refused elsewhere
	}
	u, err := url.Parse(raw)
	if err != nil {
		// A templated host ("http://{host}/…") does not parse; its scheme
		// is what decides.
		scheme, _, _ := strings.Cut(raw, ":")
		u = &url.URL{Scheme: strings.ToLower(scheme)}
	}
	if connectors.SecretsMayTravel(u, false) {
		return
	}
	what := "its target's credentials"
	if readsSecret {
		what = "a password"
	}
	c.at(at, "this request carries %s to %s: plain http is refused (the run would stop with RestInsecure, after the steps before it); use https", what, u.Scheme+"://"+u.Host)
}

func (c *checker) validateRest(p *Policy) {
	if s := p.AttributeSync; s.Every != "" || len(s.Targets) > 0 {
		if d := c.duration("attribute_sync.every", s.Every, false); s.Every != "" && d < time.Minute {
			c.at("attribute_sync.every", "must be at least 1m")
		}
		for i, t := range s.Targets {
			c.target(p, fmt.Sprintf("attribute_sync.targets[%d]", i), t, connectors.ActionAttributeSync)
		}
		if s.PageSize < 0 || s.PageSize > 1000 {
			c.at("attribute_sync.page_size", "must be 0 (default) to 1000")
		}
	}
	if l := p.Password.Length; l != 0 && (l < 12 || l > 256) {
		c.at("password.length", "must be 12 to 256")
	}
	for i, g := range p.PasswordSyncGroups {
		path := fmt.Sprintf("password_sync_groups[%d]", i)
		if g.Name == "" {
			c.at(path, "name: required")
		}
		c.target(p, path, g.Auth, "")
		for j, m := range g.Members {
			c.target(p, fmt.Sprintf("%s.members[%d]", path, j), m, "")
		}
		if r := g.Rules; r.MaxLength > 0 && r.MinLength > r.MaxLength {
			c.at(path+".rules", "min_length %d is more than max_length %d", r.MinLength, r.MaxLength)
		}
		for j, w := range g.Rules.ForbiddenWords {
			c.template(p, nil, fmt.Sprintf("%s.rules.forbidden_words[%d]", path, j), w, scope{employee: true})
		}
	}
	if p.Safety.MaxDestructivePerHour < 0 {
		c.at("safety.max_destructive_per_hour", "must not be negative")
	}
	if v := p.Safety.MaxDestructivePercent; v < 0 || v > 100 {
		c.at("safety.max_destructive_percent", "must be 0 to 100")
	}
	c.validateRequired(p)
	if t := p.Import.Type; t != "" && !slices.Contains([]string{hr.Hire, hr.Change, hr.Terminate, hr.Rehire}, t) {
		c.at("import.type", "type %q: want hire, change, terminate or rehire", t)
	}
}
