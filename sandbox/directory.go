// Package sandbox is the dev stack's demo directory: a small SCIM 2.0
// service provider (RFC 7643, RFC 7644) with Users, Groups, PATCH, filters,
// paging and the discovery endpoints, bearer-token protected and kept as a
// JSON file so it survives a restart; and an HTTPS "HR portal" sink that
// receives the joiner's password handoff and records only that it arrived,
// its length and whether the directory accepts it.
//
// The sandbox is a demo target reached through connectors/scim like any
// other SCIM app. It is never the proof that the connector is right: the
// connector's own tests run against third-party SCIM servers.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// object is a SCIM resource or any JSON object.
type object = map[string]any

// Directory is the sandbox's SCIM data: users, groups and password hashes.
// It is safe for concurrent use.
type Directory struct {
	path string // JSON file; "" keeps everything in memory
	now  func() time.Time

	mu     sync.Mutex
	users  map[string]object // id → user as stored (no password, no groups)
	groups map[string]object // id → group (members hold only "value")
	hashes map[string]string // user id → bcrypt hash of the password
	names  map[string]string // lower(userName) → id
	// userOrder and groupOrder are ids in creation order: list pages are
	// stable and need no sorting.
	userOrder, groupOrder []string
}

// state is the file format.
type state struct {
	Users  []object `json:"users"`
	Groups []object `json:"groups"`
	// PasswordHashes are bcrypt hashes by user id: passwords themselves are
	// never stored.
	PasswordHashes map[string]string `json:"password_hashes"`
}

// Open loads the directory from path, or starts an empty one there when the
// file does not exist yet. An empty path keeps the data in memory only.
func Open(path string) (*Directory, error) {
	d := &Directory{path: path, now: time.Now, users: map[string]object{}, groups: map[string]object{},
		hashes: map[string]string{}, names: map[string]string{}}
	if path == "" {
		return d, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, d.save()
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: open %s: %w", path, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sandbox: %s is not a sandbox data file: %w", path, err)
	}
	for _, u := range st.Users {
		id, _ := u["id"].(string)
		name, _ := u["userName"].(string)
		d.users[id] = u
		d.names[strings.ToLower(name)] = id
		d.userOrder = append(d.userOrder, id)
	}
	for _, g := range st.Groups {
		id, _ := g["id"].(string)
		d.groups[id] = g
		d.groupOrder = append(d.groupOrder, id)
	}
	if st.PasswordHashes != nil {
		d.hashes = st.PasswordHashes
	}
	return d, nil
}

// save writes the whole state atomically (temp file + rename). Callers hold mu.
func (d *Directory) save() error {
	if d.path == "" {
		return nil
	}
	st := state{Users: inOrder(d.userOrder, d.users), Groups: inOrder(d.groupOrder, d.groups), PasswordHashes: d.hashes}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("sandbox: save: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0o700); err != nil {
		return fmt.Errorf("sandbox: save: %w", err)
	}
	tmp := d.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sandbox: save: %w", err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fmt.Errorf("sandbox: save: %w", err)
	}
	return nil
}

// inOrder lists the resources of m by ids.
func inOrder(ids []string, m map[string]object) []object {
	out := make([]object, 0, len(ids))
	for _, id := range ids {
		out = append(out, m[id])
	}
	return out
}

// CheckPassword reports whether password is the password of the user with
// userName (case-insensitive). It is how the HR portal sink verifies a
// handoff without the directory ever storing a password.
func (d *Directory) CheckPassword(userName, password string) (bool, error) {
	d.mu.Lock()
	id, ok := d.names[strings.ToLower(userName)]
	hash := d.hashes[id]
	d.mu.Unlock()
	if !ok {
		return false, fmt.Errorf("sandbox: no user %q", userName)
	}
	if hash == "" {
		return false, nil
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, nil
}

// apiError is a SCIM error answer (RFC 7644 §3.12).
type apiError struct {
	status   int
	scimType string
	detail   string
}

func (e *apiError) Error() string { return e.detail }

func errorf(status int, scimType, format string, args ...any) *apiError {
	return &apiError{status: status, scimType: scimType, detail: fmt.Sprintf(format, args...)}
}

func notFound(kind, id string) error {
	return errorf(http.StatusNotFound, "", "%s %q not found", kind, id)
}

func hashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errorf(http.StatusBadRequest, "invalidValue", "password: empty")
	}
	if len(pw) > 72 {
		return "", errorf(http.StatusBadRequest, "invalidValue", "password: longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("sandbox: hash password: %w", err)
	}
	return string(h), nil
}

// clone deep-copies a JSON value.
func clone(o object) object {
	b, _ := json.Marshal(o)
	var c object
	_ = json.Unmarshal(b, &c)
	return c
}

func (d *Directory) stamp(o object, prev object) {
	now := d.now().UTC().Format(time.RFC3339Nano)
	meta := object{"created": now, "lastModified": now, "version": 1.0}
	if pm, ok := prev["meta"].(map[string]any); ok {
		meta["created"] = pm["created"]
		v, _ := pm["version"].(float64)
		meta["version"] = v + 1
	}
	o["meta"] = meta
}

// cleanUser validates a User body against the schema and returns it with
// canonical attribute names, without id, meta, groups and password (which
// is returned separately).
func cleanUser(in object) (object, *string, error) {
	if err := checkSchemas(in, coreUserURN); err != nil {
		return nil, nil, err
	}
	out := object{}
	var pw *string
	core := userSchema()
	for k, v := range in {
		lk := strings.ToLower(k)
		switch {
		case lk == "schemas" || lk == "id" || lk == "meta" || lk == "groups":
			// read-only or rebuilt: ignored as RFC 7644 §3.3 says
		case lk == "password":
			s, ok := v.(string)
			if !ok {
				return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "password: must be a string")
			}
			pw = &s
		case strings.EqualFold(k, enterpriseURN):
			ext, ok := v.(map[string]any)
			if !ok {
				return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "%s: must be an object", enterpriseURN)
			}
			clean, err := canonical(ext, enterpriseSchema(), enterpriseURN+":")
			if err != nil {
				return nil, nil, err
			}
			if len(clean) > 0 {
				out[enterpriseURN] = clean
			}
		case strings.HasPrefix(lk, "urn:"):
			return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "%s: unknown schema extension (this directory knows %s)", k, enterpriseURN)
		default:
			a := known(core, k)
			if a == nil {
				return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "%s: not an attribute of the User schema", k)
			}
			if v != nil {
				out[a.Name] = v
			}
		}
	}
	if name, _ := out["userName"].(string); strings.TrimSpace(name) == "" {
		return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "userName: required")
	}
	if v, ok := out["active"]; ok {
		if _, isBool := v.(bool); !isBool {
			return nil, nil, errorf(http.StatusBadRequest, "invalidValue", "active: must be a boolean")
		}
	}
	schemas := []any{coreUserURN}
	if _, ok := out[enterpriseURN]; ok {
		schemas = append(schemas, enterpriseURN)
	}
	out["schemas"] = schemas
	return out, pw, nil
}

// canonical renames an extension's keys to their schema spelling and
// rejects unknown ones.
func canonical(in object, schema []attr, prefix string) (object, error) {
	out := object{}
	for k, v := range in {
		a := known(schema, k)
		if a == nil {
			return nil, errorf(http.StatusBadRequest, "invalidValue", "%s%s: not an attribute of the schema", prefix, k)
		}
		if a.Mutability == "readOnly" {
			continue
		}
		if v != nil && v != "" {
			out[a.Name] = v
		}
	}
	return out, nil
}

func checkSchemas(in object, urn string) error {
	list, _ := get(in, "schemas").([]any)
	for _, s := range list {
		if str, ok := s.(string); ok && strings.EqualFold(str, urn) {
			return nil
		}
	}
	return errorf(http.StatusBadRequest, "invalidSyntax", "schemas: must list %s", urn)
}

// cleanGroup validates a Group body: displayName, members that are users of
// this directory (kept as {"value": id} only).
func (d *Directory) cleanGroup(in object) (object, error) {
	if err := checkSchemas(in, coreGroupURN); err != nil {
		return nil, err
	}
	out := object{"schemas": []any{coreGroupURN}}
	for k, v := range in {
		lk := strings.ToLower(k)
		switch lk {
		case "schemas", "id", "meta":
		case "displayname", "externalid":
			out[map[string]string{"displayname": "displayName", "externalid": "externalId"}[lk]] = v
		case "members":
			list, ok := v.([]any)
			if !ok && v != nil {
				return nil, errorf(http.StatusBadRequest, "invalidValue", "members: must be a list")
			}
			var members []any
			seen := map[string]bool{}
			for _, m := range list {
				mm, _ := m.(map[string]any)
				id, _ := get(mm, "value").(string)
				if _, ok := d.users[id]; !ok {
					return nil, errorf(http.StatusBadRequest, "invalidValue", "members: no user with id %q", id)
				}
				if !seen[id] {
					seen[id] = true
					members = append(members, object{"value": id})
				}
			}
			if len(members) > 0 {
				out["members"] = members
			}
		default:
			return nil, errorf(http.StatusBadRequest, "invalidValue", "%s: not an attribute of the Group schema", k)
		}
	}
	if name, _ := out["displayName"].(string); strings.TrimSpace(name) == "" {
		return nil, errorf(http.StatusBadRequest, "invalidValue", "displayName: required")
	}
	return out, nil
}

func (d *Directory) groupNamed(name, except string) bool {
	for id, g := range d.groups {
		if n, _ := g["displayName"].(string); id != except && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// putUser stores u (already cleaned) under id, checking userName uniqueness.
// Callers hold mu.
func (d *Directory) putUser(id string, u object, prev object, hash string) error {
	name := strings.ToLower(u["userName"].(string))
	if other, ok := d.names[name]; ok && other != id {
		return errorf(http.StatusConflict, "uniqueness", "userName %q is taken", u["userName"])
	}
	if prev != nil {
		delete(d.names, strings.ToLower(prev["userName"].(string)))
	}
	u["id"] = id
	d.stamp(u, prev)
	if prev == nil {
		d.userOrder = append(d.userOrder, id)
	}
	d.users[id] = u
	d.names[name] = id
	if hash != "" {
		d.hashes[id] = hash
	}
	return d.save()
}

func (d *Directory) putGroup(id string, g object, prev object) error {
	if d.groupNamed(g["displayName"].(string), id) {
		return errorf(http.StatusConflict, "uniqueness", "displayName %q is taken", g["displayName"])
	}
	g["id"] = id
	d.stamp(g, prev)
	if prev == nil {
		d.groupOrder = append(d.groupOrder, id)
	}
	d.groups[id] = g
	return d.save()
}

// userFromBody validates a SCIM User body and hashes its password, if it
// has one ("" otherwise).
func userFromBody(body object) (u object, hash string, err error) {
	u, pw, err := cleanUser(body)
	if err != nil || pw == nil {
		return u, "", err
	}
	hash, err = hashPassword(*pw)
	return u, hash, err
}

// CreateUser adds a user from a SCIM User body.
func (d *Directory) CreateUser(body object) (object, error) {
	u, hash, err := userFromBody(body)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.putUser(uuid.NewString(), u, nil, hash); err != nil {
		return nil, err
	}
	return d.userView(u, d.groupsOf(u["id"].(string))), nil
}

// User returns the user with id.
func (d *Directory) User(id string) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return nil, notFound("User", id)
	}
	return d.userView(u, d.groupsOf(u["id"].(string))), nil
}

// ReplaceUser is PUT: the body replaces every writable attribute; a body
// without a password keeps the current one.
func (d *Directory) ReplaceUser(id string, body object) (object, error) {
	u, hash, err := userFromBody(body)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, ok := d.users[id]
	if !ok {
		return nil, notFound("User", id)
	}
	if err := d.putUser(id, u, prev, hash); err != nil {
		return nil, err
	}
	return d.userView(u, d.groupsOf(u["id"].(string))), nil
}

// PatchUser applies RFC 7644 §3.5.2 operations.
func (d *Directory) PatchUser(id string, ops []patchOp) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, ok := d.users[id]
	if !ok {
		return nil, notFound("User", id)
	}
	work := clone(prev)
	pw, err := applyPatch(work, ops, userSchema(), map[string][]attr{enterpriseURN: enterpriseSchema()})
	if err != nil {
		return nil, err
	}
	u, _, err := cleanUser(work)
	if err != nil {
		return nil, err
	}
	hash := ""
	if pw != nil {
		if hash, err = hashPassword(*pw); err != nil {
			return nil, err
		}
	}
	if err := d.putUser(id, u, prev, hash); err != nil {
		return nil, err
	}
	return d.userView(u, d.groupsOf(u["id"].(string))), nil
}

// DeleteUser removes the user and its group memberships.
func (d *Directory) DeleteUser(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return notFound("User", id)
	}
	delete(d.users, id)
	d.userOrder = slices.DeleteFunc(d.userOrder, func(x string) bool { return x == id })
	delete(d.hashes, id)
	delete(d.names, strings.ToLower(u["userName"].(string)))
	for _, g := range d.groups {
		if members, ok := g["members"].([]any); ok {
			g["members"] = slices.DeleteFunc(members, func(m any) bool { return memberID(m) == id })
			if len(g["members"].([]any)) == 0 {
				delete(g, "members")
			}
		}
	}
	return d.save()
}

func memberID(m any) string {
	mm, _ := m.(map[string]any)
	id, _ := get(mm, "value").(string)
	return id
}

// memberships maps user id → the user's groups (as the read-only User
// groups attribute lists them), in group creation order. Callers hold mu.
func (d *Directory) memberships() map[string][]any {
	out := map[string][]any{}
	for _, g := range inOrder(d.groupOrder, d.groups) {
		members, _ := g["members"].([]any)
		for _, m := range members {
			id := memberID(m)
			out[id] = append(out[id], object{"value": g["id"], "display": g["displayName"], "type": "direct"})
		}
	}
	return out
}

// groupsOf is memberships for one user. Callers hold mu.
func (d *Directory) groupsOf(id string) map[string][]any {
	var gs []any
	for _, g := range inOrder(d.groupOrder, d.groups) {
		members, _ := g["members"].([]any)
		if slices.ContainsFunc(members, func(m any) bool { return memberID(m) == id }) {
			gs = append(gs, object{"value": g["id"], "display": g["displayName"], "type": "direct"})
		}
	}
	return map[string][]any{id: gs}
}

// userView is what a client reads: the stored user plus its groups from
// ms (see memberships). Callers hold mu.
func (d *Directory) userView(u object, ms map[string][]any) object {
	v := clone(u)
	if groups := ms[u["id"].(string)]; len(groups) > 0 {
		v["groups"] = groups
	}
	return v
}

// groupView adds each member's display name.
func (d *Directory) groupView(g object) object {
	v := clone(g)
	if members, ok := v["members"].([]any); ok {
		for _, m := range members {
			mm := m.(map[string]any)
			if u, ok := d.users[memberID(m)]; ok {
				mm["display"] = displayOf(u)
				mm["type"] = "User"
			}
		}
	}
	return v
}

func displayOf(u object) string {
	if s, _ := u["displayName"].(string); s != "" {
		return s
	}
	s, _ := u["userName"].(string)
	return s
}

// Users lists users matching f (nil: all) in creation order.
func (d *Directory) Users(f filter) []object {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []object
	ms := d.memberships()
	for _, u := range inOrder(d.userOrder, d.users) {
		probe := u // filter first, deep-copy only the matches
		if gs := ms[u["id"].(string)]; len(gs) > 0 && f != nil {
			probe = maps.Clone(u)
			probe["groups"] = gs
		}
		if f == nil || f(probe) {
			out = append(out, d.userView(u, ms))
		}
	}
	return out
}

// UserByName is the user whose userName is name (case-insensitive), by
// index: the lookup a SCIM client makes for every joiner.
func (d *Directory) UserByName(name string) (object, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.names[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return d.userView(d.users[id], d.groupsOf(id)), true
}

// Groups lists groups matching f (nil: all) in creation order.
func (d *Directory) Groups(f filter) []object {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []object
	for _, g := range inOrder(d.groupOrder, d.groups) {
		if f == nil || f(g) {
			out = append(out, d.groupView(g))
		}
	}
	return out
}

// CreateGroup adds a group.
func (d *Directory) CreateGroup(body object) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, err := d.cleanGroup(body)
	if err != nil {
		return nil, err
	}
	if err := d.putGroup(uuid.NewString(), g, nil); err != nil {
		return nil, err
	}
	return d.groupView(g), nil
}

// Group returns the group with id.
func (d *Directory) Group(id string) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.groups[id]
	if !ok {
		return nil, notFound("Group", id)
	}
	return d.groupView(g), nil
}

// ReplaceGroup is PUT on a group.
func (d *Directory) ReplaceGroup(id string, body object) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, ok := d.groups[id]
	if !ok {
		return nil, notFound("Group", id)
	}
	g, err := d.cleanGroup(body)
	if err != nil {
		return nil, err
	}
	if err := d.putGroup(id, g, prev); err != nil {
		return nil, err
	}
	return d.groupView(g), nil
}

// PatchGroup applies PATCH operations to a group: members add (present
// members stay once), remove members[value eq "id"], displayName replace.
func (d *Directory) PatchGroup(id string, ops []patchOp) (object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, ok := d.groups[id]
	if !ok {
		return nil, notFound("Group", id)
	}
	work := clone(prev)
	if _, err := applyPatch(work, ops, groupSchema(), nil); err != nil {
		return nil, err
	}
	g, err := d.cleanGroup(work)
	if err != nil {
		return nil, err
	}
	if err := d.putGroup(id, g, prev); err != nil {
		return nil, err
	}
	return d.groupView(g), nil
}

// DeleteGroup removes a group.
func (d *Directory) DeleteGroup(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.groups[id]; !ok {
		return notFound("Group", id)
	}
	delete(d.groups, id)
	d.groupOrder = slices.DeleteFunc(d.groupOrder, func(x string) bool { return x == id })
	return d.save()
}
