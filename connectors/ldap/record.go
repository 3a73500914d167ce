package ldap

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// previewIDAttr carries the ID the recorder gives an entry a preview
// adds (preview-N, shown as <new id N>) or stands in for (a linked
// account of an offline preview): read as the entry's ID.
const previewIDAttr = "jmlPreviewID"

// previewPrefix starts the placeholder ID of an account an offline
// preview acts on (targets.PreviewAccountPrefix).
const previewPrefix = "preview."

// Answers, as the HTTP recorder words them.
const (
	answerSent    = "sent"
	answerBlocked = "blocked"
	answerMissing = "not found"
	answerEarlier = "the account of an earlier step"
)

// recorder is the ldap.Client under a connector in a preview: every
// operation is recorded (passwords masked); reads go to the directory when
// there is one (inner; nil without --live); writes are not sent but
// answered with success and remembered, so a later read of what was
// written answers as the directory would once they were made.
type recorder struct {
	inner   ldapv3.Client
	rec     connectors.OperationRecorder
	flavour Flavour

	mu      sync.Mutex
	n       int
	added   map[string]*ldapv3.Entry // by lower-case DN
	changes map[string][]ldapv3.Change
	moved   map[string]string // lower-case old DN → new DN
	deleted map[string]bool
}

var _ ldapv3.Client = (*recorder)(nil)

func (r *recorder) wire() bool { _, w := r.rec.Sends(); return w && r.inner != nil }

func (r *recorder) record(method, target string, lines []string, answer string) {
	r.rec.RecordOperation(connectors.Operation{Method: method, Target: target, Body: strings.Join(lines, "\n")}, answer)
}

// masked is an attribute's values as a preview shows them.
func masked(name string, values []string) string {
	switch strings.ToLower(name) {
	case "unicodepwd", "userpassword":
		return secret.Redacted
	}
	return strings.Join(values, "; ")
}

func (r *recorder) Search(req *ldapv3.SearchRequest) (*ldapv3.SearchResult, error) {
	target := fmt.Sprintf("%s?%s?%s", req.BaseDN, scopeName(req.Scope), req.Filter)
	if p, ok := ldapv3.FindControl(req.Controls, ldapv3.ControlTypePaging).(*ldapv3.ControlPaging); ok {
		target += fmt.Sprintf(" (page of %d)", p.PagingSize)
	}
	local := r.local(req)
	if r.inner == nil || req.Scope == ldapv3.ScopeBaseObject && len(local) > 0 {
		answer := answerMissing
		if len(local) > 0 {
			answer = answerEarlier
		}
		if g := r.assumedGroup(req); len(local) == 0 && g != nil {
			// A group the policy names is taken to exist, as the HTTP
			// recorder takes it: the run's calls after it are the point.
			local, answer = []*ldapv3.Entry{g}, "group assumed to exist: preview without --live"
		}
		r.record("SEARCH", target, nil, answer)
		if len(local) == 0 && req.Scope == ldapv3.ScopeBaseObject {
			return nil, ldapv3.NewError(ldapv3.LDAPResultNoSuchObject, errors.New("preview without --live"))
		}
		return &ldapv3.SearchResult{Entries: local}, nil
	}
	r.record("SEARCH", target, nil, answerSent)
	res, err := r.inner.Search(req)
	if err != nil {
		return nil, err
	}
	out := *res
	out.Entries = append(r.applied(res.Entries), local...)
	return &out, nil
}

func scopeName(s int) string {
	switch s {
	case ldapv3.ScopeBaseObject:
		return "base"
	case ldapv3.ScopeSingleLevel:
		return "one"
	}
	return "sub"
}

// applied are live entries with the unsent writes made.
func (r *recorder) applied(es []*ldapv3.Entry) []*ldapv3.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ldapv3.Entry
	for _, e := range es {
		k := strings.ToLower(e.DN)
		if r.deleted[k] {
			continue
		}
		if ch := r.changes[k]; len(ch) > 0 {
			e = clone(e)
			apply(e, ch)
		}
		if to, ok := r.moved[k]; ok {
			e = clone(e)
			e.DN = to
		}
		out = append(out, e)
	}
	return out
}

var filterTerm = regexp.MustCompile(`\(([A-Za-z0-9;.-]+)=([^()]*)\)`)

// local are the entries this preview added (or stands in for) that req
// finds: under its base, with every equality term of its filter but the
// object class ones.
func (r *recorder) local(req *ldapv3.SearchRequest) []*ldapv3.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ldapv3.Entry
	cands := make([]*ldapv3.Entry, 0, len(r.added)+1)
	for _, e := range r.added {
		cands = append(cands, e)
	}
	if r.inner == nil && strings.Contains(req.Filter, previewPrefix) {
		cands = append(cands, r.placeholder(req))
	}
	for _, e := range cands {
		if req.Scope == ldapv3.ScopeBaseObject && !sameDN(e.DN, req.BaseDN) ||
			req.Scope != ldapv3.ScopeBaseObject && !strings.HasSuffix(strings.ToLower(e.DN), strings.ToLower(req.BaseDN)) {
			continue
		}
		if matches(e, req.Filter) {
			out = append(out, e)
		}
	}
	return out
}

var (
	groupSearch    = regexp.MustCompile(`^\(&\(objectClass=(?:group|groupOfNames)\)\(cn=([^()]*)\)\)$`)
	assumedGroupID = regexp.MustCompile(`^\(&\(objectClass=(?:group|groupOfNames)\)\((?:objectGUID|entryUUID)=<group id of ([^()]*)>\)\)$`)
)

// assumedGroup answers an offline search for a group by name: the group,
// its ID naming it; nil for any other search.
func (r *recorder) assumedGroup(req *ldapv3.SearchRequest) *ldapv3.Entry {
	m := groupSearch.FindStringSubmatch(req.Filter)
	if m == nil {
		m = assumedGroupID.FindStringSubmatch(req.Filter)
	}
	if r.inner != nil || m == nil {
		return nil
	}
	name := unescapeFilter(m[1])
	return ldapv3.NewEntry(rdn("CN", name)+","+req.BaseDN, map[string][]string{
		previewIDAttr: {"<group id of " + name + ">"}, "cn": {name}})
}

// placeholder is the account an offline preview of a mover or leaver
// acts on: active, in no group, its ID the one asked for.
func (r *recorder) placeholder(req *ldapv3.SearchRequest) *ldapv3.Entry {
	id := ""
	for _, m := range filterTerm.FindAllStringSubmatch(req.Filter, -1) {
		if strings.HasPrefix(m[2], previewPrefix) {
			id = m[2]
		}
	}
	attrs := map[string][]string{previewIDAttr: {id}, "cn": {"<" + strings.TrimPrefix(id, previewPrefix) + ">"}}
	if r.flavour == ActiveDirectory {
		attrs["userAccountControl"] = []string{fmt.Sprint(uacEnabled)}
	}
	return ldapv3.NewEntry(rdn("CN", "<"+strings.TrimPrefix(id, previewPrefix)+">")+","+req.BaseDN, attrs)
}

// matches reports whether e has every equality term of filter (object
// classes aside; an ID term compares the preview ID).
func matches(e *ldapv3.Entry, filter string) bool {
	for _, m := range filterTerm.FindAllStringSubmatch(filter, -1) {
		name, want := m[1], unescapeFilter(m[2])
		switch strings.ToLower(name) {
		case "objectclass", "objectcategory":
			continue
		case "objectguid", "entryuuid":
			name = previewIDAttr
		}
		ok := false
		for _, v := range e.GetAttributeValues(name) {
			if strings.EqualFold(v, want) || sameDN(v, want) && strings.Contains(want, "=") {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// unescapeFilter undoes EscapeFilter's \xx escapes.
func unescapeFilter(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.Write(v)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func clone(e *ldapv3.Entry) *ldapv3.Entry {
	out := &ldapv3.Entry{DN: e.DN}
	for _, a := range e.Attributes {
		out.Attributes = append(out.Attributes, ldapv3.NewEntryAttribute(a.Name, append([]string(nil), a.Values...)))
	}
	return out
}

// apply makes changes on e.
func apply(e *ldapv3.Entry, changes []ldapv3.Change) {
	for _, ch := range changes {
		name, vals := ch.Modification.Type, ch.Modification.Vals
		i := -1
		for j, a := range e.Attributes {
			if strings.EqualFold(a.Name, name) {
				i = j
			}
		}
		switch ch.Operation {
		case ldapv3.ReplaceAttribute:
			if i >= 0 {
				e.Attributes = append(e.Attributes[:i], e.Attributes[i+1:]...)
			}
			if len(vals) > 0 {
				e.Attributes = append(e.Attributes, ldapv3.NewEntryAttribute(name, vals))
			}
		case ldapv3.AddAttribute:
			if i < 0 {
				e.Attributes = append(e.Attributes, ldapv3.NewEntryAttribute(name, vals))
			} else {
				e.Attributes[i] = ldapv3.NewEntryAttribute(name, append(e.Attributes[i].Values, vals...))
			}
		case ldapv3.DeleteAttribute:
			if i < 0 {
				continue
			}
			if len(vals) == 0 {
				e.Attributes = append(e.Attributes[:i], e.Attributes[i+1:]...)
				continue
			}
			var keep []string
			for _, v := range e.Attributes[i].Values {
				drop := false
				for _, d := range vals {
					drop = drop || sameDN(v, d) || v == d
				}
				if !drop {
					keep = append(keep, v)
				}
			}
			e.Attributes[i] = ldapv3.NewEntryAttribute(name, keep)
		}
	}
}

func (r *recorder) Add(req *ldapv3.AddRequest) error {
	var lines []string
	attrs := map[string][]string{}
	for _, a := range req.Attributes {
		lines = append(lines, a.Type+": "+masked(a.Type, a.Vals))
		if !strings.EqualFold(a.Type, "unicodePwd") && !strings.EqualFold(a.Type, "userPassword") {
			attrs[a.Type] = a.Vals
		}
	}
	if r.wire() {
		r.record("ADD", req.DN, lines, answerSent)
		return r.inner.Add(req)
	}
	r.record("ADD", req.DN, lines, answerBlocked)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	attrs[previewIDAttr] = []string{fmt.Sprintf("preview-%d", r.n)}
	if r.added == nil {
		r.added = map[string]*ldapv3.Entry{}
	}
	r.added[strings.ToLower(req.DN)] = ldapv3.NewEntry(req.DN, attrs)
	return nil
}

func (r *recorder) Modify(req *ldapv3.ModifyRequest) error {
	var lines []string
	ops := map[uint]string{ldapv3.AddAttribute: "add", ldapv3.DeleteAttribute: "delete", ldapv3.ReplaceAttribute: "replace"}
	var kept []ldapv3.Change
	for _, ch := range req.Changes {
		m := ch.Modification
		l := ops[ch.Operation] + " " + m.Type
		if len(m.Vals) > 0 {
			l += ": " + masked(m.Type, m.Vals)
		}
		lines = append(lines, l)
		if !strings.EqualFold(m.Type, "unicodePwd") {
			kept = append(kept, ch)
		}
	}
	if r.wire() {
		r.record("MODIFY", req.DN, lines, answerSent)
		return r.inner.Modify(req)
	}
	r.record("MODIFY", req.DN, lines, answerBlocked)
	r.mu.Lock()
	defer r.mu.Unlock()
	k := strings.ToLower(req.DN)
	if e, ok := r.added[k]; ok {
		apply(e, kept)
		return nil
	}
	if r.changes == nil {
		r.changes = map[string][]ldapv3.Change{}
	}
	r.changes[k] = append(r.changes[k], kept...)
	return nil
}

func (r *recorder) ModifyWithResult(req *ldapv3.ModifyRequest) (*ldapv3.ModifyResult, error) {
	return &ldapv3.ModifyResult{}, r.Modify(req)
}

func (r *recorder) ModifyDN(req *ldapv3.ModifyDNRequest) error {
	sup := req.NewSuperior
	if sup == "" {
		sup = parentDN(req.DN)
	}
	to := req.NewRDN + "," + sup
	if r.wire() {
		r.record("MODIFY_DN", req.DN, []string{"new DN: " + to}, answerSent)
		return r.inner.ModifyDN(req)
	}
	r.record("MODIFY_DN", req.DN, []string{"new DN: " + to}, answerBlocked)
	r.mu.Lock()
	defer r.mu.Unlock()
	k := strings.ToLower(req.DN)
	if e, ok := r.added[k]; ok {
		delete(r.added, k)
		e.DN = to
		r.added[strings.ToLower(to)] = e
		return nil
	}
	if r.moved == nil {
		r.moved = map[string]string{}
	}
	r.moved[k] = to
	return nil
}

func (r *recorder) Del(req *ldapv3.DelRequest) error {
	if r.wire() {
		r.record("DELETE", req.DN, nil, answerSent)
		return r.inner.Del(req)
	}
	r.record("DELETE", req.DN, nil, answerBlocked)
	r.mu.Lock()
	defer r.mu.Unlock()
	k := strings.ToLower(req.DN)
	delete(r.added, k)
	if r.deleted == nil {
		r.deleted = map[string]bool{}
	}
	r.deleted[k] = true
	return nil
}

func (r *recorder) PasswordModify(req *ldapv3.PasswordModifyRequest) (*ldapv3.PasswordModifyResult, error) {
	lines := []string{"new password: " + secret.Redacted}
	if r.wire() {
		r.record("PASSWORD_MODIFY", req.UserIdentity, lines, answerSent)
		return r.inner.PasswordModify(req)
	}
	r.record("PASSWORD_MODIFY", req.UserIdentity, lines, answerBlocked)
	return &ldapv3.PasswordModifyResult{}, nil
}

// The rest is the connection's own business: passed on, not recorded.

func (r *recorder) Start() {
	if r.inner != nil {
		r.inner.Start()
	}
}
func (r *recorder) StartTLS(c *tls.Config) error {
	if r.inner != nil {
		return r.inner.StartTLS(c)
	}
	return nil
}
func (r *recorder) Close() error {
	if r.inner != nil {
		return r.inner.Close()
	}
	return nil
}
func (r *recorder) GetLastError() error {
	if r.inner != nil {
		return r.inner.GetLastError()
	}
	return nil
}
func (r *recorder) IsClosing() bool { return r.inner != nil && r.inner.IsClosing() }
func (r *recorder) SetTimeout(d time.Duration) {
	if r.inner != nil {
		r.inner.SetTimeout(d)
	}
}
func (r *recorder) TLSConnectionState() (tls.ConnectionState, bool) {
	if r.inner != nil {
		return r.inner.TLSConnectionState()
	}
	return tls.ConnectionState{}, true
}
func (r *recorder) Bind(u, p string) error {
	if r.inner != nil {
		return r.inner.Bind(u, p)
	}
	return nil
}

var errPreview = errors.New("ldap: not used by the connector")

func (r *recorder) UnauthenticatedBind(string) error { return errPreview }
func (r *recorder) SimpleBind(*ldapv3.SimpleBindRequest) (*ldapv3.SimpleBindResult, error) {
	return nil, errPreview
}
func (r *recorder) ExternalBind() error                          { return errPreview }
func (r *recorder) NTLMUnauthenticatedBind(string, string) error { return errPreview }
func (r *recorder) Unbind() error                                { return errPreview }
func (r *recorder) Extended(*ldapv3.ExtendedRequest) (*ldapv3.ExtendedResponse, error) {
	return nil, errPreview
}
func (r *recorder) Compare(string, string, string) (bool, error) { return false, errPreview }
func (r *recorder) SearchAsync(context.Context, *ldapv3.SearchRequest, int) ldapv3.Response {
	return nil
}
func (r *recorder) SearchWithPaging(*ldapv3.SearchRequest, uint32) (*ldapv3.SearchResult, error) {
	return nil, errPreview
}
func (r *recorder) DirSync(*ldapv3.SearchRequest, int64, int64, []byte) (*ldapv3.SearchResult, error) {
	return nil, errPreview
}
func (r *recorder) DirSyncAsync(context.Context, *ldapv3.SearchRequest, int, int64, int64, []byte) ldapv3.Response {
	return nil
}
func (r *recorder) Syncrepl(context.Context, *ldapv3.SearchRequest, int, ldapv3.ControlSyncRequestMode, []byte, bool) ldapv3.Response {
	return nil
}
