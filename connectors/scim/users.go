package scim

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

type listResponse struct {
	TotalResults int        `json:"totalResults"`
	StartIndex   int        `json:"startIndex"`
	Resources    []resource `json:"Resources"`
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

func patchBody(ops ...patchOp) map[string]any {
	return map[string]any{"schemas": []string{patchOpURN}, "Operations": ops}
}

func userPath(id string) string { return "/Users/" + url.PathEscape(id) }

// index is the discovered schema index, or the RFC schemas before discovery
// (reading needs little of it; writing always discovers first).
func (c *Client) index() *schemaIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc != nil {
		return c.disc.schema
	}
	return c.rfc
}

func (c *Client) account(r resource) *connectors.Account {
	id, _ := r["id"].(string)
	active := true // absent means active
	switch v := r["active"].(type) {
	case bool:
		active = v
	case string: // "False", as some providers send it
		active = !strings.EqualFold(v, "false")
	}
	status := "ACTIVE"
	if !active {
		status = "INACTIVE"
	}
	return &connectors.Account{ID: id, Active: active, Status: status, Attributes: c.index().flatten(r)}
}

// FindAccount looks an account up by a normalized attribute (the configured
// unique identifier when by.Attribute is empty; "id" reads by SCIM id). The
// filter value is escaped; userName and emails compare case-insensitively.
func (c *Client) FindAccount(ctx context.Context, by connectors.Key) (*connectors.Account, error) {
	attr := by.Attribute
	if attr == "" {
		attr = c.uniqueID
	}
	if by.Value == "" {
		return nil, connectors.Permanentf("ScimValidation", "scim: find user: empty value for %q", attr)
	}
	if attr == "id" { // no discovery: a lookup is one request
		c.mu.Lock()
		d := c.disc
		c.mu.Unlock()
		return c.readUser(ctx, by.Value, d)
	}
	path, err := c.filterPath(ctx, attr)
	if err != nil {
		return nil, err
	}
	var list listResponse
	q := url.Values{"filter": {path + " eq " + quote(by.Value)}}
	if err := c.do(ctx, request{op: "find user by " + attr, method: "GET", path: "/Users", query: q}, &list); err != nil {
		return nil, err
	}
	var found []*connectors.Account
	for _, r := range list.Resources {
		a := c.account(r)
		if sameValue(attr, a.Attributes, by.Value) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("scim: find user by %s: %w", attr, connectors.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, connectors.Permanentf("ScimAmbiguous", "scim: find user by %s: %d accounts match", attr, len(found))
}

// filterPath is the SCIM attribute path to filter on for a normalized name.
// The common identifiers need no discovery.
func (c *Client) filterPath(ctx context.Context, attr string) (string, error) {
	switch attr {
	case "user_name":
		return "userName", nil
	case "external_id":
		return "externalId", nil
	case "email":
		return "emails.value", nil
	}
	d, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	t, err := d.schema.resolve(attr)
	if err != nil {
		return "", err
	}
	if t.multi {
		return "", connectors.Permanentf("ScimMapping", "scim: cannot look accounts up by %q", attr)
	}
	return t.path(), nil
}

// sameValue re-checks a filter hit on our side: servers differ in case
// handling, and userName and email addresses are case-insensitive.
func sameValue(attr string, a connectors.Attributes, want string) bool {
	switch attr {
	case "user_name":
		return strings.EqualFold(a["user_name"], want)
	case "email":
		for k, v := range a {
			if (k == "email" || strings.HasPrefix(k, "emails.")) && strings.EqualFold(v, want) {
				return true
			}
		}
		return false
	}
	return a[attr] == want
}

// CreateAccount creates a user from normalized attributes. When the target
// answers 409 (the unique identifier is taken) it finds and returns the
// existing account. GroupIDs are added after the create, one PATCH each.
func (c *Client) CreateAccount(ctx context.Context, a connectors.Attributes, o connectors.CreateOptions) (*connectors.Account, error) {
	if strings.TrimSpace(a["user_name"]) == "" {
		return nil, errNoUserName()
	}
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.userResource(d, a, o)
	if err != nil {
		return nil, err
	}
	req := request{op: "create user", method: "POST", path: "/Users", body: r}
	if o.Password != nil && !o.Password.Empty() {
		r["password"] = o.Password.Reveal()
		req.secret = o.Password.Reveal()
	}
	var created resource
	var acct *connectors.Account
	if err := c.do(ctx, req, &created); errors.Is(err, connectors.ErrConflict) {
		if acct, err = c.adopt(ctx, a, err); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	} else {
		acct = c.account(created)
	}
	// Also after adopting: a retried create must still grant the groups.
	for _, g := range o.GroupIDs {
		if err := c.AddMember(ctx, g, acct.ID); err != nil {
			return acct, err
		}
	}
	return acct, nil
}

func errNoUserName() error {
	return connectors.Permanentf("ScimValidation", "scim: create user: attribute user_name (SCIM userName) is required")
}

// userResource builds the SCIM User to create, without the password.
func (c *Client) userResource(d *discovery, a connectors.Attributes, o connectors.CreateOptions) (resource, error) {
	if strings.TrimSpace(a["user_name"]) == "" {
		return nil, errNoUserName()
	}
	plan, err := d.schema.plan(a)
	if err != nil {
		return nil, fmt.Errorf("scim: create user: %w", err)
	}
	r := resource{"schemas": []any{coreUserURN}}
	for _, p := range plan {
		if p.value != "" {
			r.set(p.t, p.typed)
		}
	}
	if _, ok := a["active"]; !ok {
		r["active"] = o.Activate
	}
	return r, nil
}

// adopt finds the account whose create conflicted; conflict is returned
// when the target refused the create but no account matches.
func (c *Client) adopt(ctx context.Context, a connectors.Attributes, conflict error) (*connectors.Account, error) {
	key := connectors.Key{Attribute: c.uniqueID, Value: a[c.uniqueID]}
	if key.Value == "" {
		key = connectors.Key{Attribute: "user_name", Value: a["user_name"]}
	}
	existing, err := c.FindAccount(ctx, key)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, conflict
	}
	return existing, err
}

// UpdateAccount writes only the attributes in change, with one PATCH (or a
// GET and a PUT where PATCH is unsupported). A change that touches a
// multi-valued attribute reads the user first, to add an item of a new type
// but replace one that exists. An empty change sends nothing.
func (c *Client) UpdateAccount(ctx context.Context, id string, change connectors.Diff) error {
	if len(change) == 0 {
		return nil
	}
	d, err := c.discover(ctx)
	if err != nil {
		return err
	}
	plan, err := d.schema.plan(change)
	if err != nil {
		return fmt.Errorf("scim: update user: %w", err)
	}
	multi := false
	for _, p := range plan {
		multi = multi || p.t.multi
	}
	var cur resource
	if multi || !d.caps.Patch {
		if err := c.do(ctx, request{op: "read user", method: "GET", path: userPath(id)}, &cur); err != nil {
			return err
		}
	}
	if !d.caps.Patch {
		for _, p := range plan {
			if p.value == "" {
				cur.unset(p.t)
			} else {
				cur.set(p.t, p.typed)
			}
		}
		return c.putUser(ctx, "update user", id, cur, "")
	}
	ops := patchOps(plan, cur)
	if len(ops) == 0 {
		return nil
	}
	return c.do(ctx, request{op: "update user", method: "PATCH", path: userPath(id), body: patchBody(ops...)}, nil)
}

// patchOps turns a plan into RFC 7644 operations; cur is the user as read,
// needed only for multi-valued attributes.
func patchOps(plan []planned, cur resource) []patchOp {
	var ops []patchOp
	added := map[string]map[string]any{} // attr|type → new item
	var order []string
	for _, p := range plan {
		t := p.t
		switch {
		case t.multi && p.value == "":
			if cur.item(t) == nil {
				continue
			}
			path := t.path()
			if t.sub == "value" {
				path = strings.TrimSuffix(path, ".value")
			}
			ops = append(ops, patchOp{Op: "remove", Path: path})
		case t.multi && cur.item(t) != nil:
			ops = append(ops, patchOp{Op: "replace", Path: t.path(), Value: p.typed})
		case t.multi:
			k := t.attr + "|" + t.typ
			it, ok := added[k]
			if !ok {
				it = map[string]any{"type": t.typ}
				added[k] = it
				order = append(order, k)
			}
			it[t.sub] = p.typed
			if t.primary {
				it["primary"] = true
			}
		case p.value == "" && t.urn != "" && t.sub == "value":
			// An extension reference (manager) without its value is void.
			ops = append(ops, patchOp{Op: "remove", Path: t.urn + ":" + t.attr})
		case p.value == "":
			ops = append(ops, patchOp{Op: "remove", Path: t.path()})
		case t.urn != "" && t.sub != "":
			// Paths like urn:…:User:manager.value defeat some providers
			// (SCIMMY among them); a path-less add merges the same value.
			ops = append(ops, patchOp{Op: "add", Value: map[string]any{t.urn: map[string]any{t.attr: map[string]any{t.sub: p.typed}}}})
		default:
			ops = append(ops, patchOp{Op: "replace", Path: t.path(), Value: p.typed})
		}
	}
	for _, k := range order {
		attr, _, _ := strings.Cut(k, "|")
		ops = append(ops, patchOp{Op: "add", Path: attr, Value: []any{added[k]}})
	}
	return ops
}

// putUser replaces the user with r minus what the server owns.
func (c *Client) putUser(ctx context.Context, op, id string, r resource, pw string) error {
	delete(r, "meta")
	delete(r, "groups")
	return c.do(ctx, request{op: op, method: "PUT", path: userPath(id), body: r, secret: pw}, nil)
}

// setActive writes active; it returns the provider's answer, nil when the
// answer had no body (a PATCH answered 204).
func (c *Client) setActive(ctx context.Context, id string, active bool, op string) (resource, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	var out resource
	if d.caps.Patch {
		err := c.do(ctx, request{op: op, method: "PATCH", path: userPath(id),
			body: patchBody(patchOp{Op: "replace", Path: "active", Value: active})}, &out)
		return out, err
	}
	var cur resource
	if err := c.do(ctx, request{op: "read user", method: "GET", path: userPath(id)}, &cur); err != nil {
		return nil, err
	}
	cur["active"] = active
	delete(cur, "meta")
	delete(cur, "groups")
	err = c.do(ctx, request{op: op, method: "PUT", path: userPath(id), body: cur}, &out)
	return out, err
}

// Deprovision disables the account first (active=false: one PATCH, or a
// GET and a PUT where PATCH is unsupported) and only then, when
// o.RemoveGroups, removes every group membership, one PATCH remove of
// members[value eq "<id>"] per group. The account and its attributes stay,
// so Reactivate undoes it. A missing account is success. SCIM has no
// sessions: ClearSessions has nothing to do.
//
// A failed membership read or removal never hides the disable: the error
// says the account was disabled and what failed, and keeps its class
// (permanent, e.g. ScimUnsupported for a provider without /Groups, or
// transient).
func (c *Client) Deprovision(ctx context.Context, id string, o connectors.DeprovisionOptions) error {
	got, err := c.setActive(ctx, id, false, "deprovision user")
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !o.RemoveGroups {
		return nil
	}
	d, err := c.discover(ctx) // done by setActive: no request
	if err != nil {
		return disabledBut("reading its group memberships", err)
	}
	// The write's answer usually carries the user's groups; a 204 does not.
	groups, ok := c.groupsOf(got, d)
	if !ok { // the answer does not settle them (or a 204 had no body)
		groups, err = c.listMemberships(ctx, id)
	}
	if errors.Is(err, connectors.ErrNotFound) && !isType(err, "ScimUnsupported") {
		return nil // deleted meanwhile
	}
	if err != nil {
		return disabledBut("reading its group memberships", err)
	}
	var transient, first error
	failed := 0
	for _, g := range groups {
		if err := c.RemoveMember(ctx, g.ID, id); err != nil {
			failed++
			if first == nil {
				first = err
			}
			if transient == nil && !connectors.IsPermanent(err) {
				transient = err
			}
		}
	}
	if failed == 0 {
		return nil
	}
	if transient != nil {
		first = transient // worth a retry: the removals are idempotent
	}
	return disabledBut(fmt.Sprintf("removing %d of %d group memberships", failed, len(groups)), first)
}

// disabledBut is Deprovision's error after the disable succeeded; err's
// class (permanent type, transient, rate limited) is kept.
func disabledBut(what string, err error) error {
	return fmt.Errorf("scim: deprovision user: the account was disabled, but %s failed: %w", what, err)
}

// Reactivate sets active=true. Group memberships are not restored: the
// mover/joiner policy grants them again.
func (c *Client) Reactivate(ctx context.Context, id string) error {
	_, err := c.setActive(ctx, id, true, "reactivate user")
	return err
}

// ReadAccount reads the user by its SCIM id with one GET: the read-back
// that verifies a write. ErrNotFound only when the user is absent. Groups
// come from the User's groups attribute when the answer has it; when it does
// not, Groups is empty if absent means none (see groupsOf) and nil
// otherwise (the answer says nothing: ask Memberships). The
// first call of a Client discovers (as every write does), so the answer
// does not depend on what the Client did before.
func (c *Client) ReadAccount(ctx context.Context, id string) (*connectors.Account, error) {
	if id == "" {
		return nil, connectors.Permanentf("ScimValidation", "scim: read user: empty id")
	}
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	return c.readUser(ctx, id, d)
}

// readUser is one GET of the user; d (nil before discovery) tells whether
// an absent groups attribute means none.
func (c *Client) readUser(ctx context.Context, id string, d *discovery) (*connectors.Account, error) {
	var r resource
	if err := c.do(ctx, request{op: "read user", method: "GET", path: userPath(id)}, &r); err != nil {
		return nil, err
	}
	acct := c.account(r)
	if groups, ok := c.groupsOf(r, d); ok {
		acct.Groups = groups
	}
	return acct, nil
}

// Delete removes the user. A user already gone is success.
func (c *Client) Delete(ctx context.Context, id string) error {
	err := c.do(ctx, request{op: "delete user", method: "DELETE", path: userPath(id)}, nil)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// SetPassword sets the SCIM password attribute. The value never appears in
// an error: the server's answer is scrubbed of it.
func (c *Client) SetPassword(ctx context.Context, id string, pw secret.Secret) error {
	if pw.Empty() {
		return connectors.Permanentf("ScimValidation", "scim: set password: the password is empty")
	}
	d, err := c.discover(ctx)
	if err != nil {
		return err
	}
	if d.caps.Patch {
		return c.do(ctx, request{op: "set password", method: "PATCH", path: userPath(id), secret: pw.Reveal(),
			body: patchBody(patchOp{Op: "replace", Path: "password", Value: pw.Reveal()})}, nil)
	}
	var cur resource
	if err := c.do(ctx, request{op: "read user", method: "GET", path: userPath(id)}, &cur); err != nil {
		return err
	}
	cur["password"] = pw.Reveal()
	return c.putUser(ctx, "set password", id, cur, pw.Reveal())
}

// ListAccounts reads one page of users. The cursor is the SCIM startIndex.
func (c *Client) ListAccounts(ctx context.Context, cursor string, pageSize int) ([]connectors.Account, string, error) {
	start := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return nil, "", connectors.Permanentf("ScimValidation", "scim: list users: bad cursor %q", cursor)
		}
		start = n
	}
	count := orDefault(pageSize, c.pageSize)
	c.mu.Lock()
	if c.disc != nil && c.disc.caps.MaxResults > 0 && count > c.disc.caps.MaxResults {
		count = c.disc.caps.MaxResults
	}
	c.mu.Unlock()
	var list listResponse
	q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(count)}}
	if err := c.do(ctx, request{op: "list users", method: "GET", path: "/Users", query: q}, &list); err != nil {
		return nil, "", err
	}
	out := make([]connectors.Account, 0, len(list.Resources))
	for _, r := range list.Resources {
		out = append(out, *c.account(r))
	}
	next := start + len(list.Resources)
	if len(list.Resources) == 0 || next > list.TotalResults {
		return out, "", nil
	}
	return out, strconv.Itoa(next), nil
}
