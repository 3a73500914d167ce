// Package graphtest is a loopback Microsoft Graph v1.0 server for tests: the
// Microsoft identity platform token endpoint (client credentials with a
// secret or a certificate assertion) and the users, groups, members,
// manager, revokeSignInSessions and $batch endpoints the Entra connector
// uses, with Graph's status codes, OData error bodies and Retry-After
// throttling. State lives in memory; every request is counted so tests can
// assert a request budget.
//
// Behaviour follows the Graph v1.0 documentation: 201 on create, 204 on
// PATCH/DELETE/$ref, 400 Request_BadRequest "One or more added object
// references already exist…" for a present member, 404
// Request_ResourceNotFound for an absent one, $filter string literals with
// doubled single quotes, a default property set unless $select names more,
// and soft-deleted users that leave the directory (and free their UPN).
package graphtest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server.
type Options struct {
	Tenant       string   // default "contoso-tenant"
	ClientID     string   // default "jml-client"
	ClientSecret string   // default "s3cret-value"
	Domains      []string // verified domains; default contoso.com and contoso.onmicrosoft.com
	// Certificate, when set, is registered on the app: a client assertion
	// signed by its key is accepted instead of the secret.
	Certificate   *x509.Certificate
	TokenLifetime time.Duration // default 3599s
	// Roles are the application permissions granted to the app (the
	// token's roles claim); nil grants DefaultRoles. A request that needs
	// a permission the token lacks is refused with 403
	// Authorization_RequestDenied, as Graph does.
	Roles []string
	// ReplicationLag is how long a created user or group stays invisible
	// to reads (GET by ID or name, $filter, lists, delta) and to
	// references in other writes: Entra ID replicates a write to its other
	// replicas eventually, and a read may reach one that has not seen it
	// (https://learn.microsoft.com/en-us/graph/api/user-post-users notes the
	// "Designing for Eventual Consistency for Microsoft Entra",
	// https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/:
	// a newly created object may return Not Found). Uniqueness checks of
	// writes see every object at once.
	ReplicationLag time.Duration
	// DeltaSparse: a change round through a delta link answers an updated
	// user with its ID and only the properties its last change set, the
	// least Graph promises ("at least the properties that have been
	// updated", https://learn.microsoft.com/en-us/graph/delta-query-users).
	DeltaSparse bool
	// Throttle, when Limit > 0, answers 429 with Retry-After once more
	// than Limit requests (batched ones each count) arrive in one Window
	// (https://learn.microsoft.com/en-us/graph/throttling).
	Throttle Throttle
}

// Throttle is a request budget per time window.
type Throttle struct {
	Limit  int
	Window time.Duration // default 1s
}

// Application permissions the stand-in checks.
const (
	RoleUserReadWrite     = "User.ReadWrite.All"
	RoleLifeCycle         = "User-LifeCycleInfo.ReadWrite.All"
	RoleGroupReadWrite    = "Group.ReadWrite.All"
	RoleGroupMember       = "GroupMember.ReadWrite.All"
	RoleRevokeSessions    = "User.RevokeSessions.All"
	RolePasswordProfile   = "User-PasswordProfile.ReadWrite.All"
	RoleEnableDisableUser = "User.EnableDisableAccount.All"
)

// DefaultRoles are the permissions the Entra connector documents.
var DefaultRoles = []string{RoleUserReadWrite, RoleLifeCycle, RoleGroupReadWrite, RoleGroupMember,
	RoleRevokeSessions, RolePasswordProfile, RoleEnableDisableUser}

// Fault makes the next request matching Method and Path prefix (the full
// URL path, e.g. "/v1.0/users" or "/v1.0/$batch") fail with Status. Inner
// requests of a $batch are matched too, as Graph throttles each of them.
type Fault struct {
	Method     string // "" matches any method
	Path       string // prefix of the URL path
	Status     int
	RetryAfter string // Retry-After header value, e.g. "7"
	Code       string // OData error code; default from Status
	Message    string
	Times      int // how many requests fail; default 1
}

// Server is a running loopback Graph.
type Server struct {
	URL  string // e.g. http://127.0.0.1:41234
	opts Options
	http *httptest.Server

	mu        sync.Mutex
	seq       int
	users     map[string]*user
	order     []string // user IDs in creation order (paging)
	groups    map[string]*group
	gorder    []string
	deleted   map[string]*user
	tokens    map[string]time.Time
	faults    []Fault
	requests  int // Graph HTTP requests (a $batch counts once)
	inner     int // requests inside $batch bodies
	tokenReqs int
	log       []string
	// change is the directory's change sequence (delta tokens).
	change int
	// deltaFloor: delta tokens below it are forgotten (ExpireDeltaLinks).
	deltaFloor int
	// window and inWindow count requests for Throttle.
	window     time.Time
	inWindow   int
	throttledN int
}

type user struct {
	visibleAt    time.Time // ReplicationLag: invisible to reads before
	changed      int       // change sequence of the last write (delta)
	changedProps []string  // what UpdateUser last set (DeltaSparse)
	props        map[string]any
	password     string
	forceChange  bool
	manager      string
	revocations  int
	signInsValid time.Time
}

type group struct {
	visibleAt time.Time
	props     map[string]any
	members   map[string]bool
}

// New starts a server bound to 127.0.0.1 and stops it when t ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Tenant == "" {
		o.Tenant = "contoso-tenant"
	}
	if o.ClientID == "" {
		o.ClientID = "jml-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "s3cret-value"
	}
	if len(o.Domains) == 0 {
		o.Domains = []string{"contoso.com", "contoso.onmicrosoft.com"}
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = 3599 * time.Second
	}
	if o.Roles == nil {
		o.Roles = DefaultRoles
	}
	if o.Throttle.Window == 0 {
		o.Throttle.Window = time.Second
	}
	s := &Server{
		opts:    o,
		users:   map[string]*user{},
		groups:  map[string]*group{},
		deleted: map[string]*user{},
		tokens:  map[string]time.Time{},
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL
	t.Cleanup(s.http.Close)
	return s
}

// GraphURL is the v1.0 service root.
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// AuthorityURL is the identity platform root; tokens are issued at
// {AuthorityURL}/{tenant}/oauth2/v2.0/token.
func (s *Server) AuthorityURL() string { return s.URL }

// Options returns the effective options (tenant, client credentials).
func (s *Server) Options() Options { return s.opts }

// FailNext queues a fault.
func (s *Server) FailNext(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Requests is the number of Graph HTTP requests received (token requests
// excluded; a $batch counts as one).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// BatchedRequests is the number of requests carried inside $batch bodies.
func (s *Server) BatchedRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner
}

// TokenRequests is the number of token endpoint calls.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReqs
}

// Log lists "METHOD /path" of every request, batched ones prefixed "batch ".
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetCounts zeroes the counters and the log.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.inner, s.tokenReqs, s.log = 0, 0, 0, nil
}

// ExpireDeltaLinks forgets the delta state of every link handed out so
// far, as Graph does after a while: they answer 410 Gone.
func (s *Server) ExpireDeltaLinks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deltaFloor = s.change + 1
}

// ExpireTokens invalidates every issued access token.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

func (s *Server) newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// AddUser seeds a user from Graph properties and returns its ID. Missing
// accountEnabled defaults to true.
func (s *Server) AddUser(props map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	p := map[string]any{"id": id, "accountEnabled": true}
	for k, v := range props {
		p[k] = v
	}
	s.change++
	s.users[id] = &user{props: p, changed: s.change}
	s.order = append(s.order, id)
	return id
}

// UpdateUser changes a live user's properties as someone outside jml
// would (a nil value clears one), for delta and sync tests.
func (s *Server) UpdateUser(id string, props map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	u.changedProps = u.changedProps[:0]
	for k, v := range props {
		u.changedProps = append(u.changedProps, k)
		if v == nil {
			delete(u.props, k)
		} else {
			u.props[k] = v
		}
	}
	s.change++
	u.changed = s.change
}

// GroupSpec seeds a group.
type GroupSpec struct {
	Name        string
	Description string
	Dynamic     bool // groupTypes DynamicMembership: members cannot be changed
	Unified     bool // a Microsoft 365 group
	MailEnabled bool
	OnPremises  bool // synced from on-premises AD: read-only in the cloud
}

// AddGroup seeds a group and returns its ID.
func (s *Server) AddGroup(g GroupSpec) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	types := []any{}
	if g.Unified {
		types = append(types, "Unified")
	}
	if g.Dynamic {
		types = append(types, "DynamicMembership")
	}
	p := map[string]any{
		"id": id, "displayName": g.Name, "description": nullIfEmpty(g.Description),
		"mailEnabled": g.MailEnabled || g.Unified, "securityEnabled": !g.Unified,
		"mailNickname": nickname(g.Name), "groupTypes": types,
		"onPremisesSyncEnabled": nil, "createdDateTime": time.Now().UTC().Format(time.RFC3339Nano),
	}
	if g.OnPremises {
		p["onPremisesSyncEnabled"] = true
	}
	s.groups[id] = &group{props: p, members: map[string]bool{}}
	s.gorder = append(s.gorder, id)
	return id
}

// AddMember seeds a membership.
func (s *Server) AddMember(groupID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[groupID].members[userID] = true
}

// User returns a copy of a live user's properties, or nil.
func (s *Server) User(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return nil
	}
	return cloneMap(u.props)
}

// UserByUPN returns the ID of the live user with that UPN, or "".
func (s *Server) UserByUPN(upn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUPN(upn); u != nil {
		return u.props["id"].(string)
	}
	return ""
}

// Users is the number of live users.
func (s *Server) Users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// Password returns the user's current password and whether it must be
// changed at next sign-in (test inspection only).
func (s *Server) Password(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		return u.password, u.forceChange
	}
	return "", false
}

// Manager returns the user's manager ID, or "".
func (s *Server) Manager(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		return u.manager
	}
	return ""
}

// Revocations counts revokeSignInSessions calls for a user.
func (s *Server) Revocations(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		return u.revocations
	}
	return 0
}

// Deleted reports whether the user is in deleted items.
func (s *Server) Deleted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.deleted[id]
	return ok
}

// Group returns a copy of a group's properties, or nil.
func (s *Server) Group(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return nil
	}
	return cloneMap(g.props)
}

// GroupByName returns the IDs of groups with that displayName.
func (s *Server) GroupByName(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, id := range s.gorder {
		if strings.EqualFold(s.groups[id].props["displayName"].(string), name) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Members lists a group's member IDs, sorted.
func (s *Server) Members(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return nil
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		s.mu.Lock()
		s.tokenReqs++
		s.mu.Unlock()
		if s.fault(w, r) {
			return
		}
		s.token(w, r)
		return
	}
	s.mu.Lock()
	s.requests++
	s.log = append(s.log, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	s.graph(w, r)
}

// throttled answers 429 with Retry-After when the request is over the
// Throttle budget of its window. Graph throttles each request of a $batch
// on its own and answers it 429 inside the batch
// (https://learn.microsoft.com/en-us/graph/throttling: "Retry-After"; and
// https://learn.microsoft.com/en-us/graph/json-batching).
func (s *Server) throttled(w http.ResponseWriter) bool {
	if s.opts.Throttle.Limit <= 0 {
		return false
	}
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.window) >= s.opts.Throttle.Window {
		s.window, s.inWindow = now, 0
	}
	s.inWindow++
	over := s.inWindow > s.opts.Throttle.Limit
	wait := s.window.Add(s.opts.Throttle.Window).Sub(now)
	s.mu.Unlock()
	if !over {
		return false
	}
	s.mu.Lock()
	s.throttledN++
	s.mu.Unlock()
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	writeError(w, 429, "TooManyRequests", "Too many requests.", nil)
	return true
}

// Throttled counts the requests answered 429 by Throttle.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttledN
}

// fault answers r with a queued fault, if one matches.
func (s *Server) fault(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	var f *Fault
	for i := range s.faults {
		c := &s.faults[i]
		if (c.Method == "" || c.Method == r.Method) && strings.HasPrefix(r.URL.Path, c.Path) {
			f = c
			break
		}
	}
	if f == nil {
		s.mu.Unlock()
		return false
	}
	ff := *f
	f.Times--
	s.faults = slices.DeleteFunc(s.faults, func(c Fault) bool { return c.Times <= 0 })
	s.mu.Unlock()
	if ff.RetryAfter != "" {
		w.Header().Set("Retry-After", ff.RetryAfter)
	}
	code, msg := ff.Code, ff.Message
	if code == "" {
		code = map[int]string{
			400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
			404: "Request_ResourceNotFound", 429: "TooManyRequests", 500: "InternalServerError",
			502: "BadGateway", 503: "serviceNotAvailable", 504: "GatewayTimeout",
		}[ff.Status]
	}
	if msg == "" {
		msg = http.StatusText(ff.Status)
	}
	writeError(w, ff.Status, code, msg, nil)
	return true
}

// writeError writes Graph's OData error body.
func writeError(w http.ResponseWriter, status int, code, message string, details []map[string]string) {
	inner := map[string]any{
		"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
		"request-id":        newRequestID(),
		"client-request-id": newRequestID(),
	}
	body := map[string]any{"code": code, "message": message, "innerError": inner}
	if len(details) > 0 {
		body["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func cloneMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nickname keeps the characters Graph allows in a mailNickname.
func nickname(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && r > 32 && !strings.ContainsRune(`@()\[]";:<>,`, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
