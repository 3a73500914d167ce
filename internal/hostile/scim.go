// Package hostile puts a reverse proxy in front of a real test peer and
// makes it behave like the less accommodating servers found in the field,
// so a flow can be proven against each deviation and not only against the
// peer's friendly defaults.
//
// SCIM: StartSCIM proxies a SCIM peer (e.g. the SCIMMY peer started by
// connectors/scim/scimtest) and applies SCIMSwitches:
//
//	peer := scimtest.Start(t)
//	px := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{NoGroups: true})
//	c, _ := scim.New(ctx, scim.Config{BaseURL: px.Rewrite(peer.BaseURL), …})
//	… run the flow …
//	require.Positive(t, px.Faults(hostile.FaultNoGroups)) // the fault really happened
//
// upstream is the peer's root, scheme://host:port (a path, if given, is
// ignored); the proxy's URL field replaces it, so the base path is kept:
// peer base http://127.0.0.1:P/scim/v2 → px.URL + "/scim/v2" (Rewrite does
// that). The proxy listens on 127.0.0.1 and stops at the test's cleanup.
//
// The switches (each counted under its Fault* kind every time it actually
// changed a request's answer):
//
//   - RejectMembersFilter: GET …/Groups?filter=… naming members is answered
//     400 with a SCIM error, scimType invalidFilter (RFC 7644 does not
//     require servers to filter on members).
//   - NoGroups: every …/Groups URL (collection, resource, .search) is
//     answered 404 with a text/html body, as a server without the endpoint
//     does.
//   - NoUserGroupsAttr: the groups attribute is stripped from every User in
//     an answer (single resource and list) and from the core User schema
//     in …/Schemas.
//   - OmitUserGroups: the groups attribute is stripped from every User in
//     an answer, while /Schemas still declares it (many servers never
//     return it on Users): absent must not be read as "no groups".
//   - Patch204: a successful PATCH is answered 204 with no body.
//   - MaxCount: a list request's count above MaxCount is lowered to it
//     before the peer sees it (counted when lowered).
//   - IgnoreExcludedAttributes: excludedAttributes is dropped from the
//     request, so the answer comes in full (counted when dropped).
//   - DropWrites: a PATCH or PUT is answered 204 and never reaches the
//     peer, as a server that acknowledges a change and loses it.
//   - LoseWriteAnswers: a PATCH reaches the peer, which makes the change;
//     its answer never comes back (held until the client gives up), as
//     when the connection or the worker dies after the write.
//
// Switches can be changed while the proxy runs (Set). Requests counts what
// reached the proxy, by method.
package hostile

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fault kinds, as counted by SCIMProxy.Faults.
const (
	FaultRejectMembersFilter = "reject_members_filter"
	FaultNoGroups            = "no_groups"
	FaultNoUserGroupsAttr    = "no_user_groups_attr"
	FaultPatch204            = "patch_204"
	FaultMaxCount            = "max_count"
	FaultIgnoreExcluded      = "ignore_excluded_attributes"
	FaultDropWrites          = "drop_writes"
	FaultOmitUserGroups      = "omit_user_groups"
	FaultLoseWriteAnswers    = "lose_write_answers"
)

// SCIMSwitches select the hostile behaviours; the zero value proxies
// faithfully.
type SCIMSwitches struct {
	// RejectMembersFilter: GET /Groups?filter=members.value … → 400
	// invalidFilter (SCIM error body).
	RejectMembersFilter bool
	// NoGroups: any /Groups URL → 404 text/html.
	NoGroups bool
	// NoUserGroupsAttr: strip "groups" from every User in answers (single
	// and list) and from the User schema in /Schemas.
	NoUserGroupsAttr bool
	// OmitUserGroups: strip "groups" from every User in answers, but
	// leave the schema declaring it.
	OmitUserGroups bool
	// Patch204: a successful PATCH is answered 204 with no body.
	Patch204 bool
	// MaxCount > 0 caps the count of a list request at MaxCount, whatever
	// the client asked (many providers cap at 100).
	MaxCount int
	// IgnoreExcludedAttributes drops excludedAttributes from requests, as
	// a server that does not support it answers in full (a group with
	// its members).
	IgnoreExcludedAttributes bool
	// DropWrites: PATCH and PUT → 204, not forwarded.
	DropWrites bool
	// LoseWriteAnswers: PATCH forwarded, its answer withheld.
	LoseWriteAnswers bool
}

// Strict is every switch a real server may have on while it still does
// what a flow needs (so not NoGroups or DropWrites, which break flows by
// design): the members filter refused, groups left out of Users though
// /Schemas declares them, PATCH answered 204, count capped at 100,
// excludedAttributes ignored.
func Strict() SCIMSwitches {
	return SCIMSwitches{RejectMembersFilter: true, OmitUserGroups: true, Patch204: true, MaxCount: 100, IgnoreExcludedAttributes: true}
}

// NoGroupsBody is the HTML body of the NoGroups 404.
const NoGroupsBody = "<html>\n<head><title>404 Not Found</title></head>\n<body>\n<center><h1>404 Not Found</h1></center>\n" +
	"<hr><center>nginx</center>\n</body>\n</html>\n"

// SCIMProxy is a running hostile SCIM proxy.
type SCIMProxy struct {
	// URL is the proxy's root (http://127.0.0.1:PORT); it replaces the
	// peer's scheme://host:port.
	URL string

	mu       sync.Mutex
	sw       SCIMSwitches
	faults   map[string]int
	byMethod map[string]int
	log      []string // "METHOD path?query" of every request, in order
}

// StartSCIM starts a proxy to upstream (scheme://host:port of the peer)
// with the given switches. It is closed at tb's cleanup.
func StartSCIM(tb testing.TB, upstream string, sw SCIMSwitches) *SCIMProxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		tb.Fatalf("hostile: upstream %q: want scheme://host:port", upstream)
	}
	target := &url.URL{Scheme: u.Scheme, Host: u.Host}
	p := &SCIMProxy{sw: sw, faults: map[string]int{}, byMethod: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		// Answers are rewritten: ask for them uncompressed.
		r.Header.Del("Accept-Encoding")
	}
	rp.ModifyResponse = p.modify
	rp.ErrorLog = slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError)
	srv := httptest.NewServer(p.handler(rp))
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Rewrite turns a URL of the peer (e.g. its SCIM base URL) into the same
// URL through the proxy: scheme://host:port replaced, path kept.
func (p *SCIMProxy) Rewrite(peerURL string) string {
	u, err := url.Parse(peerURL)
	if err != nil {
		return p.URL
	}
	out := p.URL + u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

// Set replaces the switches; it applies to the next request.
func (p *SCIMProxy) Set(sw SCIMSwitches) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sw = sw
}

// Switches are the switches in force.
func (p *SCIMProxy) Switches() SCIMSwitches {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sw
}

// Faults is how many times the switch of that kind (a Fault* constant)
// actually changed an answer.
func (p *SCIMProxy) Faults(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[kind]
}

// Requests is how many requests reached the proxy with that method ("" for
// all methods).
func (p *SCIMProxy) Requests(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if method != "" {
		return p.byMethod[strings.ToUpper(method)]
	}
	n := 0
	for _, v := range p.byMethod {
		n += v
	}
	return n
}

// Log is every request that reached the proxy since the start or the last
// Reset, in order, as "METHOD path?query" (query decoded: filters read as
// sent, e.g. `GET /scim/v2/Users?filter=userName eq "a@x"`).
func (p *SCIMProxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// Reset zeroes the request and fault counters and the log.
func (p *SCIMProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.byMethod, p.log = map[string]int{}, map[string]int{}, nil
}

func (p *SCIMProxy) fired(kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[kind]++
}

// segment reports whether the URL path has the segment name followed by
// the end or a slash (…/Groups, …/Groups/id, …/Groups/.search).
func segment(path, name string) bool {
	return strings.HasSuffix(path, "/"+name) || strings.Contains(path, "/"+name+"/")
}

func (p *SCIMProxy) handler(rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.byMethod[r.Method]++
		line := r.Method + " " + r.URL.Path
		if q, err := url.QueryUnescape(r.URL.RawQuery); err == nil && q != "" {
			line += "?" + q
		}
		p.log = append(p.log, line)
		sw := p.sw
		p.mu.Unlock()
		groups := segment(r.URL.Path, "Groups")
		switch {
		case sw.NoGroups && groups:
			p.fired(FaultNoGroups)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, NoGroupsBody)
			return
		case sw.RejectMembersFilter && groups && r.Method == http.MethodGet &&
			strings.Contains(strings.ToLower(r.URL.Query().Get("filter")), "members"):
			p.fired(FaultRejectMembersFilter)
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"schemas":  []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
				"status":   "400",
				"scimType": "invalidFilter",
				"detail":   "Filtering on members is not supported",
			})
			return
		case sw.DropWrites && (r.Method == http.MethodPatch || r.Method == http.MethodPut):
			p.fired(FaultDropWrites)
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if q := r.URL.Query(); sw.MaxCount > 0 || sw.IgnoreExcludedAttributes {
			changed := false
			if n, err := strconv.Atoi(q.Get("count")); err == nil && sw.MaxCount > 0 && n > sw.MaxCount {
				p.fired(FaultMaxCount)
				q.Set("count", strconv.Itoa(sw.MaxCount))
				changed = true
			}
			if sw.IgnoreExcludedAttributes && q.Has("excludedAttributes") {
				p.fired(FaultIgnoreExcluded)
				q.Del("excludedAttributes")
				changed = true
			}
			if changed {
				r.URL.RawQuery = q.Encode()
			}
		}
		if sw.LoseWriteAnswers && r.Method == http.MethodPatch {
			var lost lostAnswer
			rp.ServeHTTP(&lost, r)
			if lost.status >= 200 && lost.status < 300 {
				p.fired(FaultLoseWriteAnswers)
			}
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// lostAnswer is a peer's answer nobody receives.
type lostAnswer struct {
	header http.Header
	status int
}

func (l *lostAnswer) Header() http.Header {
	if l.header == nil {
		l.header = http.Header{}
	}
	return l.header
}
func (l *lostAnswer) Write(b []byte) (int, error) { return len(b), nil }
func (l *lostAnswer) WriteHeader(status int)      { l.status = status }

// modify rewrites the peer's answer per the switches.
func (p *SCIMProxy) modify(resp *http.Response) error {
	sw := p.Switches()
	req := resp.Request
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if sw.Patch204 && ok && req.Method == http.MethodPatch {
		p.fired(FaultPatch204)
		_ = resp.Body.Close()
		resp.StatusCode, resp.Status = http.StatusNoContent, "204 No Content"
		resp.Body = http.NoBody
		resp.ContentLength = 0
		resp.Header.Del("Content-Length")
		resp.Header.Del("Content-Type")
		return nil
	}
	if !sw.NoUserGroupsAttr && !sw.OmitUserGroups || !ok {
		return nil
	}
	users, schemas := segment(req.URL.Path, "Users"), segment(req.URL.Path, "Schemas") && sw.NoUserGroupsAttr
	if !users && !schemas {
		return nil
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	var body any
	changed := false
	if json.Unmarshal(data, &body) == nil {
		if users {
			changed = stripUserGroups(body)
		} else {
			changed = stripSchemaGroups(body)
		}
	}
	if changed {
		kind := FaultNoUserGroupsAttr
		if !sw.NoUserGroupsAttr {
			kind = FaultOmitUserGroups
		}
		p.fired(kind)
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Set("Content-Length", strconv.Itoa(len(data)))
	return nil
}

// stripUserGroups deletes "groups" from a User or from every resource of a
// list answer; true when something was deleted.
func stripUserGroups(body any) bool {
	m, ok := body.(map[string]any)
	if !ok {
		return false
	}
	changed := false
	if _, ok := m["groups"]; ok {
		delete(m, "groups")
		changed = true
	}
	if list, ok := m["Resources"].([]any); ok {
		for _, r := range list {
			if rm, ok := r.(map[string]any); ok {
				if _, ok := rm["groups"]; ok {
					delete(rm, "groups")
					changed = true
				}
			}
		}
	}
	return changed
}

// stripSchemaGroups deletes the groups attribute from the core User schema,
// in a /Schemas list, a bare array or a single schema.
func stripSchemaGroups(body any) bool {
	var defs []any
	switch v := body.(type) {
	case []any:
		defs = v
	case map[string]any:
		if list, ok := v["Resources"].([]any); ok {
			defs = list
		} else {
			defs = []any{v}
		}
	}
	changed := false
	for _, d := range defs {
		s, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if id, _ := s["id"].(string); !strings.EqualFold(id, "urn:ietf:params:scim:schemas:core:2.0:User") {
			continue
		}
		attrs, _ := s["attributes"].([]any)
		kept := attrs[:0:0]
		for _, a := range attrs {
			if am, ok := a.(map[string]any); ok {
				if n, _ := am["name"].(string); strings.EqualFold(n, "groups") {
					changed = true
					continue
				}
			}
			kept = append(kept, a)
		}
		s["attributes"] = kept
	}
	return changed
}
