package okta_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOkta is a small stateful Okta for what the emulate stand-in lacks:
// groupIds at creation, expire_password with tempPassword, clearing
// sessions, X-Rate-Limit-* headers and 429, `after` paging and the
// lastUpdated filter. Responses follow Okta's documented shapes: status
// codes, errorCode/errorSummary/errorCauses JSON.
type fakeOkta struct {
	URL   string
	Token string

	mu        sync.Mutex
	seq       int
	users     map[string]*fakeUser
	groups    map[string]*fakeGroup
	members   map[string]map[string]bool // group ID → user IDs
	sessions  map[string]string          // user ID → query of the last DELETE sessions
	temps     []string                   // temporary passwords handed out
	requests  []string
	limit     int            // X-Rate-Limit-Limit per bucket
	remaining map[string]int // per bucket
	reset     time.Time
	pageMax   int // largest page served
	// intercept, when set, may answer a request itself (fault injection).
	// It runs after the request is counted and, for after=true, after the
	// state change.
	intercept func(w http.ResponseWriter, r *http.Request, after bool) bool
}

type fakeUser struct {
	ID, Status  string
	Profile     map[string]any
	Password    string
	LastUpdated time.Time
}

type fakeGroup struct {
	ID, Type, Name, Description string
}

func newFakeOkta(t testing.TB) *fakeOkta {
	f := &fakeOkta{
		Token: "fake-okta-token", users: map[string]*fakeUser{}, groups: map[string]*fakeGroup{},
		members: map[string]map[string]bool{}, sessions: map[string]string{},
		limit: 600, remaining: map[string]int{}, reset: time.Now().Add(time.Minute), pageMax: 200,
	}
	f.groups["00gEveryone"] = &fakeGroup{ID: "00gEveryone", Type: "BUILT_IN", Name: "Everyone", Description: "All users"}
	f.members["00gEveryone"] = map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeOkta) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeOkta) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

func (f *fakeOkta) user(id string) fakeUser {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.users[id]
}

func (f *fakeOkta) groupsOf(uid string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for gid, m := range f.members {
		if m[uid] {
			out = append(out, gid)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeOkta) nextID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s%016d", prefix, f.seq)
}

func oktaErr(w http.ResponseWriter, status int, code, summary string, causes ...string) {
	body := map[string]any{"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": "oae" + code, "errorCauses": []any{}}
	var cs []any
	for _, c := range causes {
		cs = append(cs, map[string]string{"errorSummary": c})
	}
	if cs != nil {
		body["errorCauses"] = cs
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fakeBucket(path string) string {
	rest := strings.TrimPrefix(path, "/api/v1/")
	coll, tail, _ := strings.Cut(rest, "/")
	if tail == "" {
		return coll
	}
	return coll + "/{id}"
}

var (
	reUser      = regexp.MustCompile(`^/api/v1/users/([^/]+)$`)
	reLifecycle = regexp.MustCompile(`^/api/v1/users/([^/]+)/lifecycle/([a-z_]+)$`)
	reSessions  = regexp.MustCompile(`^/api/v1/users/([^/]+)/sessions$`)
	reUserGrps  = regexp.MustCompile(`^/api/v1/users/([^/]+)/groups$`)
	reGroup     = regexp.MustCompile(`^/api/v1/groups/([^/]+)$`)
	reMember    = regexp.MustCompile(`^/api/v1/groups/([^/]+)/users/([^/]+)$`)
)

func (f *fakeOkta) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	intercept := f.intercept
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "SSWS "+f.Token {
		oktaErr(w, 401, "E0000011", "Invalid token provided")
		return
	}
	if f.rateLimit(w, r) {
		return
	}
	if intercept != nil && intercept(w, r, false) {
		return
	}
	rec := httptest.NewRecorder()
	f.mu.Lock()
	f.route(rec, r)
	f.mu.Unlock()
	if intercept != nil && intercept(w, r, true) {
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// rateLimit sets X-Rate-Limit-* and answers 429 E0000047 when the bucket is spent.
func (f *fakeOkta) rateLimit(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	b := fakeBucket(r.URL.Path)
	if now := time.Now(); now.After(f.reset) { // a new window
		f.reset = now.Add(time.Minute)
		f.remaining = map[string]int{}
	}
	rem, ok := f.remaining[b]
	if !ok {
		rem = f.limit
	}
	spent := rem <= 0
	if !spent {
		rem--
	}
	f.remaining[b] = rem
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(f.limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(rem))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(f.reset.Unix(), 10))
	f.mu.Unlock()
	if spent {
		oktaErr(w, 429, "E0000047", "API call exceeded rate limit due to too many requests.")
	}
	return spent
}

func (f *fakeOkta) findUser(ref string) *fakeUser {
	if u := f.users[ref]; u != nil {
		return u
	}
	for _, u := range f.users {
		if strings.EqualFold(fmt.Sprint(u.Profile["login"]), ref) {
			return u
		}
	}
	return nil
}

func (f *fakeOkta) userJSON(u *fakeUser) map[string]any {
	return map[string]any{"id": u.ID, "status": u.Status, "profile": u.Profile,
		"lastUpdated": u.LastUpdated.Format("2006-01-02T15:04:05.000Z"), "created": u.LastUpdated.Format("2006-01-02T15:04:05.000Z")}
}

func (f *fakeOkta) touch(u *fakeUser) {
	// Strictly increasing, millisecond precision like Okta.
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, o := range f.users {
		if !now.After(o.LastUpdated) {
			now = o.LastUpdated.Add(time.Millisecond)
		}
	}
	u.LastUpdated = now
}

func (f *fakeOkta) route(w http.ResponseWriter, r *http.Request) {
	p, q := r.URL.Path, r.URL.Query()
	var m []string
	match := func(re *regexp.Regexp) bool { m = re.FindStringSubmatch(p); return m != nil }
	switch {
	case r.Method == "GET" && p == "/api/v1/users":
		f.listUsers(w, r)
	case r.Method == "POST" && p == "/api/v1/users":
		f.createUser(w, r)
	case match(reLifecycle):
		f.lifecycle(w, r, m[1], m[2])
	case r.Method == "DELETE" && match(reSessions):
		if f.findUser(m[1]) == nil {
			oktaErr(w, 404, "E0000007", "Not found: Resource not found: "+m[1]+" (User)")
			return
		}
		f.sessions[m[1]] = r.URL.RawQuery
		w.WriteHeader(204)
	case r.Method == "GET" && match(reUserGrps):
		u := f.findUser(m[1])
		if u == nil {
			oktaErr(w, 404, "E0000007", "Not found: Resource not found: "+m[1]+" (User)")
			return
		}
		out := []any{}
		for gid, mem := range f.members {
			if mem[u.ID] {
				g := f.groups[gid]
				out = append(out, map[string]any{"id": g.ID, "type": g.Type, "profile": map[string]any{"name": g.Name, "description": g.Description}})
			}
		}
		writeJSON(w, 200, out)
	case match(reUser):
		u := f.findUser(m[1])
		if u == nil {
			oktaErr(w, 404, "E0000007", "Not found: Resource not found: "+m[1]+" (User)")
			return
		}
		switch r.Method {
		case "GET":
			writeJSON(w, 200, f.userJSON(u))
		case "POST":
			var body struct {
				Profile     map[string]any `json:"profile"`
				Credentials struct {
					Password struct{ Value string } `json:"password"`
				} `json:"credentials"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				oktaErr(w, 400, "E0000003", "The request body was not well-formed.")
				return
			}
			for k, v := range body.Profile {
				if v == nil {
					delete(u.Profile, k)
				} else {
					u.Profile[k] = v
				}
			}
			if body.Credentials.Password.Value != "" {
				u.Password = body.Credentials.Password.Value
			}
			f.touch(u)
			writeJSON(w, 200, f.userJSON(u))
		case "DELETE":
			if u.Status != "DEPROVISIONED" {
				u.Status = "DEPROVISIONED"
				f.touch(u)
			} else {
				delete(f.users, u.ID)
				for _, mem := range f.members {
					delete(mem, u.ID)
				}
			}
			w.WriteHeader(204)
		}
	case r.Method == "GET" && p == "/api/v1/groups":
		out := []any{}
		for _, g := range f.groups {
			if strings.HasPrefix(strings.ToLower(g.Name), strings.ToLower(q.Get("q"))) {
				out = append(out, map[string]any{"id": g.ID, "type": g.Type, "profile": map[string]any{"name": g.Name, "description": g.Description}})
			}
		}
		writeJSON(w, 200, out)
	case r.Method == "POST" && p == "/api/v1/groups":
		var body struct {
			Profile struct{ Name, Description string } `json:"profile"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, g := range f.groups {
			if strings.EqualFold(g.Name, body.Profile.Name) && g.Type == "OKTA_GROUP" {
				oktaErr(w, 400, "E0000001", "Api validation failed: name", "name: An object with this field already exists in the current organization")
				return
			}
		}
		g := &fakeGroup{ID: f.nextID("00g"), Type: "OKTA_GROUP", Name: body.Profile.Name, Description: body.Profile.Description}
		f.groups[g.ID] = g
		f.members[g.ID] = map[string]bool{}
		writeJSON(w, 200, map[string]any{"id": g.ID, "type": g.Type, "profile": map[string]any{"name": g.Name, "description": g.Description}})
	case match(reMember):
		g, u := f.groups[m[1]], f.findUser(m[2])
		if g == nil || u == nil {
			oktaErr(w, 404, "E0000007", "Not found: Resource not found")
			return
		}
		if g.Type != "OKTA_GROUP" {
			oktaErr(w, 403, "E0000006", "You do not have permission to perform the requested action")
			return
		}
		if r.Method == "PUT" {
			f.members[g.ID][u.ID] = true
		} else {
			delete(f.members[g.ID], u.ID)
		}
		w.WriteHeader(204)
	case match(reGroup):
		g := f.groups[m[1]]
		if g == nil {
			oktaErr(w, 404, "E0000007", "Not found: Resource not found: "+m[1]+" (UserGroup)")
			return
		}
		switch r.Method {
		case "PUT":
			var body struct {
				Profile struct{ Name, Description string } `json:"profile"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			g.Name, g.Description = body.Profile.Name, body.Profile.Description
		case "DELETE":
			delete(f.groups, g.ID)
			delete(f.members, g.ID)
			w.WriteHeader(204)
			return
		}
		writeJSON(w, 200, map[string]any{"id": g.ID, "type": g.Type, "profile": map[string]any{"name": g.Name, "description": g.Description}})
	default:
		oktaErr(w, 404, "E0000022", "The endpoint does not support the provided HTTP method")
	}
}

func (f *fakeOkta) createUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Profile     map[string]any `json:"profile"`
		GroupIds    []string       `json:"groupIds"`
		Credentials struct {
			Password struct{ Value string } `json:"password"`
		} `json:"credentials"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		oktaErr(w, 400, "E0000003", "The request body was not well-formed.")
		return
	}
	var causes []string
	for _, k := range []string{"login", "email", "firstName", "lastName"} {
		if s, _ := body.Profile[k].(string); s == "" {
			causes = append(causes, k+": The field cannot be left blank")
		}
	}
	if len(causes) > 0 {
		oktaErr(w, 400, "E0000001", "Api validation failed: profile", causes...)
		return
	}
	if f.findUser(body.Profile["login"].(string)) != nil {
		oktaErr(w, 400, "E0000001", "Api validation failed: login", "login: An object with this field already exists in the current organization")
		return
	}
	for _, g := range body.GroupIds {
		if f.groups[g] == nil {
			oktaErr(w, 400, "E0000001", "Api validation failed: groupIds", "groupIds: Group "+g+" not found")
			return
		}
	}
	u := &fakeUser{ID: f.nextID("00u"), Status: "STAGED", Profile: body.Profile, Password: body.Credentials.Password.Value}
	if r.URL.Query().Get("activate") != "false" {
		u.Status = "PROVISIONED"
		if u.Password != "" {
			u.Status = "ACTIVE"
		}
	}
	f.touch(u)
	f.users[u.ID] = u
	f.members["00gEveryone"][u.ID] = true
	for _, g := range body.GroupIds {
		f.members[g][u.ID] = true
	}
	writeJSON(w, 200, f.userJSON(u))
}

func (f *fakeOkta) lifecycle(w http.ResponseWriter, r *http.Request, ref, op string) {
	u := f.findUser(ref)
	if u == nil {
		oktaErr(w, 404, "E0000007", "Not found: Resource not found: "+ref+" (User)")
		return
	}
	bad := func() {
		oktaErr(w, 400, "E0000001", "Api validation failed: "+op, op+": This operation is not allowed in the user's current status")
	}
	switch op {
	case "activate":
		if u.Status != "STAGED" && u.Status != "DEPROVISIONED" {
			oktaErr(w, 403, "E0000016", "Activation failed because the user is already active")
			return
		}
		u.Status = "ACTIVE"
	case "deactivate":
		u.Status = "DEPROVISIONED"
	case "suspend":
		if u.Status != "ACTIVE" {
			bad()
			return
		}
		u.Status = "SUSPENDED"
	case "unsuspend":
		if u.Status != "SUSPENDED" {
			bad()
			return
		}
		u.Status = "ACTIVE"
	case "expire_password":
		if u.Status == "DEPROVISIONED" || u.Status == "SUSPENDED" || u.Status == "STAGED" {
			bad()
			return
		}
		u.Status = "PASSWORD_EXPIRED"
		f.touch(u)
		if r.URL.Query().Get("tempPassword") == "true" {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			tp := "Tmp-" + hex.EncodeToString(b)
			u.Password = tp
			f.temps = append(f.temps, tp)
			writeJSON(w, 200, map[string]string{"tempPassword": tp})
			return
		}
		writeJSON(w, 200, f.userJSON(u))
		return
	default:
		oktaErr(w, 404, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	}
	f.touch(u)
	writeJSON(w, 200, map[string]any{})
}

func (f *fakeOkta) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := q.Get("filter")
	var since time.Time
	if m := regexp.MustCompile(`lastUpdated gt "([^"]+)"`).FindStringSubmatch(filter); m != nil {
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			oktaErr(w, 400, "E0000031", "Invalid search criteria.")
			return
		}
		since = t
	}
	wantDeprov := strings.Contains(filter, `status eq "DEPROVISIONED"`)
	var all []*fakeUser
	for _, u := range f.users {
		if (u.Status == "DEPROVISIONED") != wantDeprov || !u.LastUpdated.After(since) {
			continue
		}
		if s := q.Get("search"); s != "" {
			m := regexp.MustCompile(`profile\.(\w+) eq "(.*)"`).FindStringSubmatch(s)
			if m == nil || !strings.EqualFold(fmt.Sprint(u.Profile[m[1]]), m[2]) {
				continue
			}
		}
		all = append(all, u)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > f.pageMax {
		limit = f.pageMax
	}
	start := 0
	if a := q.Get("after"); a != "" {
		for start < len(all) && all[start].ID <= a {
			start++
		}
	}
	end := min(start+limit, len(all))
	out := []any{}
	for _, u := range all[start:end] {
		out = append(out, f.userJSON(u))
	}
	if end < len(all) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", all[end-1].ID)
		nq.Set("limit", strconv.Itoa(limit))
		next.RawQuery = nq.Encode()
		w.Header().Add("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, next.RequestURI()))
	}
	w.Header().Add("Link", fmt.Sprintf(`<http://%s%s>; rel="self"`, r.Host, r.URL.RequestURI()))
	writeJSON(w, 200, out)
}
