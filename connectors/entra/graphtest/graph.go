package graphtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	notFoundMsg = "Resource '%s' does not exist or one of its queried reference-property objects are not present."
	alreadyMsg  = "One or more added object references already exist for the following modified properties: 'members'."
	domainMsg   = "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization."
	pwMsg       = "The specified password does not comply with password complexity requirements. Please provide a different password."
)

// Property kinds of the user resource.
var userProps = map[string]string{
	"displayName": "s", "givenName": "s", "surname": "s", "mail": "s", "mailNickname": "s",
	"department": "s", "jobTitle": "s", "companyName": "s", "employeeId": "s", "employeeType": "s",
	"officeLocation": "s", "city": "s", "state": "s", "country": "s", "streetAddress": "s",
	"postalCode": "s", "mobilePhone": "s", "preferredLanguage": "s", "usageLocation": "s",
	"userPrincipalName": "s", "onPremisesImmutableId": "s",
	"accountEnabled": "b", "employeeHireDate": "d", "businessPhones": "l", "otherMails": "l",
	"passwordProfile": "p", "id": "r", "createdDateTime": "r", "userType": "r", "signInSessionsValidFromDateTime": "r",
}

var defaultUserSelect = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail",
	"mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

var userFilterable = []string{"id", "userPrincipalName", "employeeId", "mail", "mailNickname",
	"displayName", "givenName", "surname", "accountEnabled", "department", "jobTitle", "employeeType"}

var groupProps = []string{"id", "displayName", "description", "mailEnabled", "mailNickname",
	"securityEnabled", "groupTypes", "onPremisesSyncEnabled", "createdDateTime", "uniqueName"}

var defaultGroupSelect = groupProps

var groupFilterable = []string{"id", "displayName", "mailNickname", "securityEnabled", "mailEnabled"}

func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) || s.fault(w, r) || s.throttled(w) {
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1.0/")
	if !ok {
		writeError(w, 400, "BadRequest", "Invalid version.", nil)
		return
	}
	seg := strings.Split(strings.TrimSuffix(path, "/"), "/")
	m := r.Method
	switch {
	case len(seg) == 1 && seg[0] == "$batch" && m == "POST":
		s.batch(w, r)
	case len(seg) == 1 && seg[0] == "users" && m == "GET":
		s.listUsers(w, r)
	case len(seg) == 1 && seg[0] == "users" && m == "POST":
		s.createUser(w, r)
	case len(seg) == 2 && seg[0] == "users" && seg[1] == "delta" && m == "GET":
		s.delta(w, r)
	case len(seg) == 2 && seg[0] == "users":
		s.userItem(w, r, seg[1])
	case len(seg) == 4 && seg[0] == "users" && seg[2] == "manager" && seg[3] == "$ref":
		s.managerRef(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "users" && seg[2] == "manager" && m == "GET":
		s.getManager(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "users" && seg[2] == "memberOf" && m == "GET":
		s.memberOf(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "users" && seg[2] == "revokeSignInSessions" && m == "POST":
		s.revoke(w, r, seg[1])
	case len(seg) == 1 && seg[0] == "groups" && m == "GET":
		s.listGroups(w, r)
	case len(seg) == 1 && seg[0] == "groups" && m == "POST":
		s.createGroup(w, r)
	case len(seg) == 1 && strings.HasPrefix(seg[0], "groups(uniqueName="):
		s.groupByUniqueName(w, r, seg[0])
	case len(seg) == 2 && seg[0] == "groups" && (m == "GET" || m == "DELETE"):
		s.groupItem(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "groups" && seg[2] == "members" && m == "GET":
		s.listMembers(w, r, seg[1])
	case len(seg) == 4 && seg[0] == "groups" && seg[2] == "members" && seg[3] == "$ref" && m == "POST":
		s.addMember(w, r, seg[1])
	case len(seg) == 5 && seg[0] == "groups" && seg[2] == "members" && seg[4] == "$ref" && m == "DELETE":
		s.removeMember(w, seg[1], seg[3])
	default:
		last := seg[len(seg)-1]
		writeError(w, 400, "BadRequest", "Resource not found for the segment '"+last+"'.", nil)
	}
}

// --- users ---

func (s *Server) findUPN(upn string) *user {
	for _, id := range s.order {
		if u := s.users[id]; u != nil && strings.EqualFold(u.props["userPrincipalName"].(string), upn) {
			return u
		}
	}
	return nil
}

// lookupUser resolves an ID or a userPrincipalName, as /users/{id | upn}
// does; a user still replicating (ReplicationLag) is not found.
func (s *Server) lookupUser(key string) *user {
	u := s.users[key]
	if u == nil && strings.Contains(key, "@") {
		u = s.findUPN(key)
	}
	if u == nil || !visible(u.visibleAt) {
		return nil
	}
	return u
}

// visible reports whether an object created with visibility at t has
// reached every replica (ReplicationLag).
func visible(t time.Time) bool { return !time.Now().Before(t) }

// hasRole reports whether the app holds one of the permissions.
func (s *Server) hasRole(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(s.opts.Roles, r) {
			return true
		}
	}
	return false
}

// denied is Graph's answer to a token without the permission an operation
// needs (https://learn.microsoft.com/en-us/graph/resolve-auth-errors#403-forbidden-error-codes).
func denied() *apiErr {
	return &apiErr{403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", nil}
}

func parseSelect(r *http.Request, known func(string) bool, def []string) ([]string, string) {
	q := r.URL.Query().Get("$select")
	if q == "" {
		return def, ""
	}
	sel := []string{"id"}
	for _, p := range strings.Split(q, ",") {
		p = strings.TrimSpace(p)
		if !known(p) {
			return nil, p
		}
		sel = append(sel, p)
	}
	return sel, ""
}

func isUserProp(p string) bool { k, ok := userProps[p]; return ok && k != "p" }

func (s *Server) renderUser(u *user, sel []string, mgrSel []string, withType bool) map[string]any {
	out := map[string]any{}
	if withType {
		out["@odata.type"] = "#microsoft.graph.user"
	}
	for _, p := range sel {
		v, ok := u.props[p]
		if !ok {
			v = nil
			if userProps[p] == "l" {
				v = []any{}
			}
		}
		out[p] = v
	}
	if mgrSel != nil && u.manager != "" {
		if m := s.users[u.manager]; m != nil {
			out["manager"] = s.renderUser(m, mgrSel, nil, true)
		}
	}
	return out
}

// parseExpand accepts "manager" and "manager($select=a,b)".
func parseExpand(r *http.Request) ([]string, bool) {
	e := r.URL.Query().Get("$expand")
	if e == "" {
		return nil, true
	}
	if e == "manager" {
		return defaultUserSelect, true
	}
	inner, ok := strings.CutPrefix(e, "manager($select=")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, false
	}
	sel := []string{"id"}
	for _, p := range strings.Split(strings.TrimSuffix(inner, ")"), ",") {
		if !isUserProp(p) {
			return nil, false
		}
		sel = append(sel, p)
	}
	return sel, true
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	sel, bad := parseSelect(r, isUserProp, defaultUserSelect)
	if bad != "" {
		writeError(w, 400, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.user'.", nil)
		return
	}
	mgr, ok := parseExpand(r)
	if !ok {
		writeError(w, 400, "BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '"+r.URL.Query().Get("$expand")+"' on type 'microsoft.graph.user'.", nil)
		return
	}
	conds, ok := s.filter(w, r, userFilterable, "User")
	if !ok {
		return
	}
	s.mu.Lock()
	var items []map[string]any
	for _, id := range s.order {
		if u := s.users[id]; u != nil && visible(u.visibleAt) && matches(u.props, conds) {
			items = append(items, s.renderUser(u, sel, mgr, false))
		}
	}
	s.mu.Unlock()
	s.page(w, r, "users", items)
}

func (s *Server) filter(w http.ResponseWriter, r *http.Request, allowed []string, resource string) ([]cond, bool) {
	f := r.URL.Query().Get("$filter")
	if f == "" {
		return nil, true
	}
	conds, err := parseFilter(f)
	if err != nil {
		writeError(w, 400, "BadRequest", err.Error(), nil)
		return nil, false
	}
	for _, c := range conds {
		if !slices.Contains(allowed, c.prop) {
			writeError(w, 400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '"+c.prop+"' of resource '"+resource+"'.", nil)
			return nil, false
		}
	}
	return conds, true
}

// page writes one page of a collection with an @odata.nextLink.
func (s *Server) page(w http.ResponseWriter, r *http.Request, ctx string, items []map[string]any) {
	q := r.URL.Query()
	top := atoi(q.Get("$top"), 100)
	if top < 1 || top > 999 {
		// The most a page of directory objects holds is 999
		// (https://learn.microsoft.com/en-us/graph/api/user-list#optional-query-parameters,
		// https://learn.microsoft.com/en-us/graph/paging).
		writeError(w, 400, "Request_UnsupportedQuery", "Invalid page size specified: '"+q.Get("$top")+"'. Must be between 1 and 999 inclusive.", nil)
		return
	}
	skip := atoi(q.Get("$skiptoken"), 0)
	if items == nil {
		items = []map[string]any{}
	}
	out := map[string]any{"@odata.context": s.GraphURL() + "/$metadata#" + ctx}
	end := min(skip+top, len(items))
	out["value"] = items[min(skip, len(items)):end]
	if end < len(items) {
		q.Set("$skiptoken", strconv.Itoa(end))
		out["@odata.nextLink"] = s.URL + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, 200, out)
}

func decodeBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var body map[string]any
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil || body == nil {
		writeError(w, 400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.", nil)
		return nil, false
	}
	return body, true
}

type apiErr struct {
	status        int
	code, message string
	details       []map[string]string
}

func invalid(prop string) *apiErr {
	return &apiErr{400, "Request_BadRequest", "Invalid value specified for property '" + prop + "' of resource 'User'.", nil}
}

// applyUser validates a create/update body against the live directory and
// applies it to u (mu held). required lists properties a create must carry.
func (s *Server) applyUser(u *user, body map[string]any, create bool) *apiErr {
	if !s.hasRole(RoleUserReadWrite) {
		return denied()
	}
	for k, v := range body {
		kind, ok := userProps[k]
		switch {
		case !ok:
			return &apiErr{400, "Request_BadRequest", "Property '" + k + "' does not exist as a declared property or extension property.", nil}
		case kind == "r":
			return &apiErr{400, "Request_BadRequest", "Property '" + k + "' is read-only and cannot be set.", nil}
		case v == nil:
			if slices.Contains([]string{"displayName", "userPrincipalName", "mailNickname", "accountEnabled", "passwordProfile"}, k) {
				return invalid(k)
			}
			continue
		}
		var valid bool
		switch kind {
		case "s":
			str, isStr := v.(string)
			valid = isStr
			if k == "usageLocation" {
				valid = isStr && len(str) == 2 && strings.ToUpper(str) == str
			}
			if k == "mailNickname" {
				valid = isStr && str != "" && nickname(str) == str && len(str) <= 64
			}
		case "b":
			_, valid = v.(bool)
		case "d":
			if !s.hasRole(RoleLifeCycle) {
				// Writing employeeHireDate (and employeeLeaveDateTime)
				// needs User-LifeCycleInfo.ReadWrite.All:
				// https://learn.microsoft.com/en-us/graph/api/user-update#permissions
				return denied()
			}
			str, isStr := v.(string)
			_, err := time.Parse(time.RFC3339, str)
			valid = isStr && err == nil
		case "l":
			list, isList := v.([]any)
			valid = isList
			for _, e := range list {
				if _, isStr := e.(string); !isStr {
					valid = false
				}
			}
			if k == "businessPhones" && len(list) > 1 {
				// "Although it's a string collection, only one number
				// can be set for this property."
				// https://learn.microsoft.com/en-us/graph/api/resources/user#properties
				return &apiErr{400, "Request_BadRequest", "Invalid value specified for property 'businessPhones' of resource 'User'.", nil}
			}
		case "p":
			pp, isObj := v.(map[string]any)
			pw, _ := pp["password"].(string)
			valid = isObj && pw != ""
			if valid && !complexEnough(pw) {
				return &apiErr{400, "Request_BadRequest", pwMsg, nil}
			}
		}
		if !valid {
			return invalid(k)
		}
	}
	if create {
		for _, k := range []string{"accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"} {
			if body[k] == nil {
				return invalid(k)
			}
		}
	}
	self, _ := u.props["id"].(string)
	if upn, ok := body["userPrincipalName"].(string); ok {
		local, domain, found := strings.Cut(upn, "@")
		if !found || local == "" || strings.ContainsAny(local, " @") {
			return &apiErr{400, "Request_BadRequest", "Property userPrincipalName is invalid.", []map[string]string{{"target": "userPrincipalName", "code": "InvalidValue"}}}
		}
		if !slices.ContainsFunc(s.opts.Domains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return &apiErr{400, "Request_BadRequest", domainMsg, []map[string]string{{"target": "userPrincipalName", "code": "InvalidValue"}}}
		}
		if o := s.findUPN(upn); o != nil && o.props["id"] != self {
			return &apiErr{400, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.", []map[string]string{{"target": "userPrincipalName", "code": "ObjectConflict"}}}
		}
	}
	if mail, ok := body["mail"].(string); ok && mail != "" {
		for _, o := range s.users {
			if o.props["id"] != self && strings.EqualFold(str(o.props["mail"]), mail) {
				return &apiErr{400, "Request_BadRequest", "Another object with the same value for property proxyAddresses already exists.", []map[string]string{{"target": "proxyAddresses", "code": "ObjectConflict"}}}
			}
		}
	}
	for k, v := range body {
		if k == "passwordProfile" {
			pp := v.(map[string]any)
			u.password = pp["password"].(string)
			u.forceChange, _ = pp["forceChangePasswordNextSignIn"].(bool)
			continue
		}
		if v == nil {
			delete(u.props, k)
			continue
		}
		u.props[k] = v
	}
	s.change++
	u.changed = s.change
	return nil
}

func str(v any) string { s, _ := v.(string); return s }

// pwSymbols are the symbols Entra allows in a password, space included.
const pwSymbols = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> "

// complexEnough is Entra's password policy for cloud accounts: 8–256
// characters, three of lower case, upper case, digits and symbols, and only
// A–Z, a–z, 0–9 and the listed symbols ("Characters not allowed: Unicode
// characters"):
// https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy#password-policies-that-only-apply-to-cloud-user-accounts
func complexEnough(pw string) bool {
	var lower, upper, digit, other int
	for _, r := range pw {
		switch {
		case r >= 'a' && r <= 'z':
			lower = 1
		case r >= 'A' && r <= 'Z':
			upper = 1
		case r >= '0' && r <= '9':
			digit = 1
		case strings.ContainsRune(pwSymbols, r):
			other = 1
		default:
			return false
		}
	}
	return len(pw) >= 8 && len(pw) <= 256 && lower+upper+digit+other >= 3
}

func (e *apiErr) write(w http.ResponseWriter) { writeError(w, e.status, e.code, e.message, e.details) }

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	id := s.newID()
	u := &user{visibleAt: time.Now().Add(s.opts.ReplicationLag),
		props: map[string]any{"id": id, "createdDateTime": time.Now().UTC().Format(time.RFC3339), "userType": "Member"}}
	if e := s.applyUser(u, body, true); e != nil {
		s.mu.Unlock()
		e.write(w)
		return
	}
	s.users[id] = u
	s.order = append(s.order, id)
	out := s.renderUser(u, defaultUserSelect, nil, false)
	s.mu.Unlock()
	out["@odata.context"] = s.GraphURL() + "/$metadata#users/$entity"
	w.Header().Set("Location", s.GraphURL()+"/directoryObjects/"+id+"/Microsoft.DirectoryServices.User")
	writeJSON(w, 201, out)
}

func (s *Server) userItem(w http.ResponseWriter, r *http.Request, key string) {
	s.mu.Lock()
	u := s.lookupUser(key)
	if u == nil {
		s.mu.Unlock()
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
		return
	}
	id := u.props["id"].(string)
	s.mu.Unlock()
	switch r.Method {
	case "GET":
		sel, bad := parseSelect(r, isUserProp, defaultUserSelect)
		if bad != "" {
			writeError(w, 400, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.user'.", nil)
			return
		}
		mgr, ok := parseExpand(r)
		if !ok {
			writeError(w, 400, "BadRequest", "Parsing OData Select and Expand failed.", nil)
			return
		}
		s.mu.Lock()
		out := s.renderUser(u, sel, mgr, false)
		s.mu.Unlock()
		out["@odata.context"] = s.GraphURL() + "/$metadata#users/$entity"
		writeJSON(w, 200, out)
	case "PATCH":
		body, ok := decodeBody(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		e := s.applyUser(u, body, false)
		s.mu.Unlock()
		if e != nil {
			e.write(w)
			return
		}
		w.WriteHeader(204)
	case "DELETE":
		s.mu.Lock()
		delete(s.users, id)
		s.deleted[id] = u
		s.change++
		u.changed = s.change
		for _, g := range s.groups {
			delete(g.members, id)
		}
		s.mu.Unlock()
		w.WriteHeader(204)
	default:
		writeError(w, 405, "Request_BadRequest", "The requested method is not allowed.", nil)
	}
}

// refID extracts the object ID of an @odata.id reference URL.
func refID(w http.ResponseWriter, r *http.Request) (string, bool) {
	body, ok := decodeBody(w, r)
	if !ok {
		return "", false
	}
	ref, _ := body["@odata.id"].(string)
	u, err := url.Parse(ref)
	if err != nil {
		u = &url.URL{}
	}
	seg := strings.Split(u.Path, "/")
	if !u.IsAbs() || len(seg) < 2 || (seg[len(seg)-2] != "directoryObjects" && seg[len(seg)-2] != "users") {
		writeError(w, 400, "BadRequest", "Invalid object identifier '"+ref+"'.", nil)
		return "", false
	}
	return seg[len(seg)-1], true
}

func (s *Server) managerRef(w http.ResponseWriter, r *http.Request, key string) {
	switch r.Method {
	case "PUT":
		mid, ok := refID(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u, m := s.lookupUser(key), s.lookupUser(mid)
		switch {
		case u == nil:
			writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
		case m == nil:
			writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", mid, 1), nil)
		default:
			u.manager = mid
			s.change++
			u.changed = s.change
			w.WriteHeader(204)
		}
	case "DELETE":
		s.mu.Lock()
		defer s.mu.Unlock()
		u := s.lookupUser(key)
		if u == nil || u.manager == "" {
			writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
			return
		}
		u.manager = ""
		s.change++
		u.changed = s.change
		w.WriteHeader(204)
	default:
		writeError(w, 405, "Request_BadRequest", "The requested method is not allowed.", nil)
	}
}

func (s *Server) getManager(w http.ResponseWriter, r *http.Request, key string) {
	s.mu.Lock()
	u := s.lookupUser(key)
	var m *user
	if u != nil {
		m = s.users[u.manager]
	}
	if m == nil {
		s.mu.Unlock()
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
		return
	}
	out := s.renderUser(m, defaultUserSelect, nil, true)
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

func (s *Server) memberOf(w http.ResponseWriter, r *http.Request, key string) {
	sel, bad := parseSelect(r, func(p string) bool { return slices.Contains(groupProps, p) }, defaultGroupSelect)
	if bad != "" {
		writeError(w, 400, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.directoryObject'.", nil)
		return
	}
	s.mu.Lock()
	u := s.lookupUser(key)
	if u == nil {
		s.mu.Unlock()
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
		return
	}
	var items []map[string]any
	for _, gid := range s.gorder {
		if g := s.groups[gid]; g != nil && g.members[u.props["id"].(string)] {
			items = append(items, renderGroup(g, sel, true))
		}
	}
	s.mu.Unlock()
	s.page(w, r, "directoryObjects", items)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, key string) {
	if !s.hasRole(RoleRevokeSessions, RoleUserReadWrite) {
		denied().write(w)
		return
	}
	s.mu.Lock()
	u := s.lookupUser(key)
	if u != nil {
		u.revocations++
		u.signInsValid = time.Now()
		u.props["signInSessionsValidFromDateTime"] = u.signInsValid.UTC().Format(time.RFC3339)
	}
	s.mu.Unlock()
	if u == nil {
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
		return
	}
	writeJSON(w, 200, map[string]any{"@odata.context": s.GraphURL() + "/$metadata#Edm.Boolean", "value": true})
}

// --- groups ---

func renderGroup(g *group, sel []string, withType bool) map[string]any {
	out := map[string]any{}
	if withType {
		out["@odata.type"] = "#microsoft.graph.group"
	}
	for _, p := range sel {
		out[p] = g.props[p]
	}
	return out
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	sel, bad := parseSelect(r, func(p string) bool { return slices.Contains(groupProps, p) }, defaultGroupSelect)
	if bad != "" {
		writeError(w, 400, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.group'.", nil)
		return
	}
	conds, ok := s.filter(w, r, groupFilterable, "Group")
	if !ok {
		return
	}
	s.mu.Lock()
	var items []map[string]any
	for _, id := range s.gorder {
		if g := s.groups[id]; g != nil && visible(g.visibleAt) && matches(g.props, conds) {
			items = append(items, renderGroup(g, sel, false))
		}
	}
	s.mu.Unlock()
	s.page(w, r, "groups", items)
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if _, set := body["uniqueName"]; set {
		// Set only through an upsert (PATCH /groups(uniqueName='…')).
		writeError(w, 400, "Request_BadRequest", "Property 'uniqueName' is read-only and cannot be set.", nil)
		return
	}
	s.mu.Lock()
	g, e := s.newGroup(body, "")
	s.mu.Unlock()
	if e != nil {
		e.write(w)
		return
	}
	out := renderGroup(g, groupProps, false)
	out["@odata.context"] = s.GraphURL() + "/$metadata#groups/$entity"
	writeJSON(w, 201, out)
}

// newGroup validates a create body and stores the group (mu held).
func (s *Server) newGroup(body map[string]any, uniqueName string) (*group, *apiErr) {
	if !s.hasRole(RoleGroupReadWrite, "Group.Create") {
		return nil, denied()
	}
	bad := func(p string) *apiErr {
		return &apiErr{400, "Request_BadRequest", "Invalid value specified for property '" + p + "' of resource 'Group'.", nil}
	}
	name, _ := body["displayName"].(string)
	nick, _ := body["mailNickname"].(string)
	mail, okMail := body["mailEnabled"].(bool)
	sec, okSec := body["securityEnabled"].(bool)
	types, _ := body["groupTypes"].([]any)
	unified := slices.Contains(types, any("Unified"))
	switch {
	case name == "":
		return nil, bad("displayName")
	case nick == "" || nickname(nick) != nick || len(nick) > 64:
		return nil, bad("mailNickname")
	case !okMail:
		return nil, bad("mailEnabled")
	case !okSec:
		return nil, bad("securityEnabled")
	case mail && !unified:
		return nil, &apiErr{400, "Request_BadRequest", "Creating mail-enabled security groups or distribution lists is not supported.", nil}
	}
	for k := range body {
		if !slices.Contains(groupProps, k) || k == "id" {
			return nil, &apiErr{400, "Request_BadRequest", "Property '" + k + "' does not exist as a declared property or extension property.", nil}
		}
	}
	if types == nil {
		types = []any{}
	}
	id := s.newID()
	g := &group{visibleAt: time.Now().Add(s.opts.ReplicationLag), props: map[string]any{
		"id": id, "displayName": name, "description": body["description"], "mailEnabled": mail,
		"mailNickname": nick, "securityEnabled": sec, "groupTypes": types, "onPremisesSyncEnabled": nil,
		"createdDateTime": time.Now().UTC().Format(time.RFC3339Nano), "uniqueName": nullIfEmpty(uniqueName),
	}, members: map[string]bool{}}
	s.groups[id] = g
	s.gorder = append(s.gorder, id)
	return g, nil
}

// groupByUniqueName is the alternate key of groups: GET reads the group,
// PATCH with "Prefer: create-if-missing" is an upsert that creates the
// group once whatever the replicas show; its uniqueness is checked on the
// write, so a retried upsert never makes a second group
// (https://learn.microsoft.com/en-us/graph/api/group-upsert).
func (s *Server) groupByUniqueName(w http.ResponseWriter, r *http.Request, seg string) {
	key, ok := strings.CutPrefix(seg, "groups(uniqueName='")
	key, ok2 := strings.CutSuffix(key, "')")
	if !ok || !ok2 || key == "" {
		writeError(w, 400, "BadRequest", "Invalid alternate key '"+seg+"'.", nil)
		return
	}
	key = strings.ReplaceAll(key, "''", "'")
	s.mu.Lock()
	var g *group
	for _, id := range s.gorder {
		if c := s.groups[id]; c != nil && strings.EqualFold(str(c.props["uniqueName"]), key) {
			g = c
		}
	}
	switch r.Method {
	case "GET":
		if g == nil || !visible(g.visibleAt) {
			s.mu.Unlock()
			writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
			return
		}
		out := renderGroup(g, groupProps, false)
		s.mu.Unlock()
		writeJSON(w, 200, out)
	case "PATCH":
		body, ok := decodeBody(w, r)
		if !ok {
			s.mu.Unlock()
			return
		}
		if g != nil { // an update of the existing group
			s.mu.Unlock()
			w.WriteHeader(204)
			return
		}
		if !strings.Contains(r.Header.Get("Prefer"), "create-if-missing") {
			s.mu.Unlock()
			writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", key, 1), nil)
			return
		}
		g, e := s.newGroup(body, key)
		s.mu.Unlock()
		if e != nil {
			e.write(w)
			return
		}
		out := renderGroup(g, groupProps, false)
		out["@odata.context"] = s.GraphURL() + "/$metadata#groups/$entity"
		writeJSON(w, 201, out)
	default:
		s.mu.Unlock()
		writeError(w, 405, "Request_BadRequest", "The requested method is not allowed.", nil)
	}
}

// delta is GET /users/delta: the first round lists every user, later
// rounds through the @odata.deltaLink only the users changed or removed
// since (https://learn.microsoft.com/en-us/graph/delta-query-users).
// Pages end in an @odata.nextLink, the last in the @odata.deltaLink. A
// change still replicating (ReplicationLag) is held back for the next
// round, never skipped.
func (s *Server) delta(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// The manager is selected, not expanded, on delta and comes back as
	// manager@delta, the manager's ID only
	// (https://learn.microsoft.com/en-us/graph/delta-query-users#example-3-get-changes-to-the-manager-of-users).
	withManager := false
	sel, bad := parseSelect(r, func(p string) bool {
		withManager = withManager || p == "manager"
		return isUserProp(p) || p == "manager"
	}, defaultUserSelect)
	sel = slices.DeleteFunc(sel, func(p string) bool { return p == "manager" })
	if bad != "" {
		writeError(w, 400, "BadRequest", "Could not find a property named '"+bad+"' on type 'microsoft.graph.user'.", nil)
		return
	}
	since := 0
	if t := q.Get("$deltatoken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil {
			writeError(w, 400, "BadRequest", "Invalid delta token.", nil)
			return
		}
		since = n
	}
	s.mu.Lock()
	if since != 0 && since < s.deltaFloor {
		s.mu.Unlock()
		// Graph answers an expired delta token with 410 Gone and asks for
		// a full resync
		// (https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset).
		writeError(w, 410, "syncStateNotFound", "The requested sync state is no longer available; a full resync is required.", nil)
		return
	}
	upTo := s.change
	var items []map[string]any
	for _, id := range s.order {
		u := s.users[id]
		removed := false
		if u == nil {
			u, removed = s.deleted[id], true
		}
		if u == nil || u.changed <= since {
			continue
		}
		if !visible(u.visibleAt) {
			upTo = min(upTo, u.changed-1)
			continue
		}
		if removed {
			items = append(items, map[string]any{"id": id, "@removed": map[string]any{"reason": "changed"}})
			continue
		}
		item := s.renderUser(u, sel, nil, false)
		if since != 0 && s.opts.DeltaSparse {
			sparse := map[string]any{"id": item["id"]}
			for _, k := range u.changedProps {
				if v, ok := item[k]; ok {
					sparse[k] = v
				}
			}
			item = sparse
		}
		if withManager && u.manager != "" {
			item["manager@delta"] = []any{map[string]any{"@odata.type": "#microsoft.graph.user", "id": u.manager}}
		}
		items = append(items, item)
	}
	s.mu.Unlock()
	skip := atoi(q.Get("$skiptoken"), 0)
	const pageSize = 100 // Graph's own page size for users/delta
	end := min(skip+pageSize, len(items))
	out := map[string]any{"@odata.context": s.GraphURL() + "/$metadata#users(" + strings.Join(sel, ",") + ")",
		"value": append([]map[string]any{}, items[min(skip, len(items)):end]...)}
	next := url.Values{}
	if v := q.Get("$select"); v != "" {
		next.Set("$select", v)
	}
	if end < len(items) {
		next.Set("$deltatoken", strconv.Itoa(since))
		next.Set("$skiptoken", strconv.Itoa(end))
		out["@odata.nextLink"] = s.GraphURL() + "/users/delta?" + next.Encode()
	} else {
		next.Set("$deltatoken", strconv.Itoa(upTo))
		out["@odata.deltaLink"] = s.GraphURL() + "/users/delta?" + next.Encode()
	}
	writeJSON(w, 200, out)
}

func (s *Server) groupItem(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	g := s.groups[id]
	if g == nil || !visible(g.visibleAt) {
		s.mu.Unlock()
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", id, 1), nil)
		return
	}
	if r.Method == "DELETE" {
		delete(s.groups, id)
		s.mu.Unlock()
		w.WriteHeader(204)
		return
	}
	out := renderGroup(g, groupProps, false)
	s.mu.Unlock()
	writeJSON(w, 200, out)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	g := s.groups[id]
	if g == nil {
		s.mu.Unlock()
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", id, 1), nil)
		return
	}
	var items []map[string]any
	for _, uid := range s.order {
		if u := s.users[uid]; u != nil && g.members[uid] {
			items = append(items, s.renderUser(u, defaultUserSelect, nil, true))
		}
	}
	s.mu.Unlock()
	s.page(w, r, "directoryObjects", items)
}

// writable reports why a group's members cannot be changed through Graph.
func writable(g *group) *apiErr {
	types, _ := g.props["groupTypes"].([]any)
	switch {
	case slices.Contains(types, any("DynamicMembership")):
		return &apiErr{400, "Request_BadRequest", "Insufficient privileges to complete the operation. Members of a group with dynamic membership cannot be changed.", nil}
	case g.props["onPremisesSyncEnabled"] == true:
		return &apiErr{400, "Request_BadRequest", "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.", nil}
	case g.props["mailEnabled"] == true && !slices.Contains(types, any("Unified")):
		return &apiErr{400, "Request_BadRequest", "Cannot Update a mail-enabled security groups and or distribution list.", nil}
	}
	return nil
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, gid string) {
	uid, ok := refID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[gid]
	switch {
	case !s.hasRole(RoleGroupMember, RoleGroupReadWrite):
		denied().write(w)
	case g == nil || !visible(g.visibleAt):
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", gid, 1), nil)
	case s.lookupUser(uid) == nil && (s.groups[uid] == nil || !visible(s.groups[uid].visibleAt)):
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", uid, 1), nil)
	case writable(g) != nil:
		writable(g).write(w)
	case g.members[uid]:
		writeError(w, 400, "Request_BadRequest", alreadyMsg, nil)
	default:
		g.members[uid] = true
		w.WriteHeader(204)
	}
}

func (s *Server) removeMember(w http.ResponseWriter, gid, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[gid]
	switch {
	case !s.hasRole(RoleGroupMember, RoleGroupReadWrite):
		denied().write(w)
	case g == nil || !visible(g.visibleAt):
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", gid, 1), nil)
	case !g.members[uid]:
		writeError(w, 404, "Request_ResourceNotFound", strings.Replace(notFoundMsg, "%s", uid, 1), nil)
	case writable(g) != nil:
		writable(g).write(w)
	default:
		delete(g.members, uid)
		w.WriteHeader(204)
	}
}

// --- $batch ---

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// batch runs JSON batch requests (at most 20) and answers 200 with one
// response per request, in an order of its own (Graph does not promise
// request order), so clients must match responses by id. Requests without
// dependsOn run independently; a request with dependsOn runs after the
// requests it names, and is answered 424 Failed Dependency without running
// when one of them failed. A dependsOn naming a request that is not
// earlier in the batch refuses the whole batch
// (https://learn.microsoft.com/en-us/graph/json-batching#sequencing-requests-with-the-dependson-property).
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Requests) == 0 {
		writeError(w, 400, "BadRequest", "Invalid batch payload format.", nil)
		return
	}
	if len(req.Requests) > 20 {
		writeError(w, 400, "BadRequest", "Limit of 20 requests per batch exceeded.", nil)
		return
	}
	seen := map[string]bool{}
	sequenced := false
	for _, br := range req.Requests {
		if br.ID == "" || seen[strings.ToLower(br.ID)] {
			writeError(w, 400, "BadRequest", "Batch request ids must be unique and not empty.", nil)
			return
		}
		for _, d := range br.DependsOn {
			if !seen[strings.ToLower(d)] {
				writeError(w, 400, "BadRequest", "Request "+br.ID+" depends on '"+d+"', which is not an earlier request of the batch.", nil)
				return
			}
		}
		sequenced = sequenced || len(br.DependsOn) > 0
		seen[strings.ToLower(br.ID)] = true
	}
	order := slices.Clone(req.Requests)
	if !sequenced {
		slices.Reverse(order)
	}
	status := map[string]int{}
	responses := make([]map[string]any, 0, len(req.Requests))
	for _, br := range order {
		var resp map[string]any
		if slices.ContainsFunc(br.DependsOn, func(d string) bool { return status[strings.ToLower(d)] >= 400 }) {
			resp = map[string]any{"id": br.ID, "status": 424, "headers": map[string]string{},
				"body": map[string]any{"error": map[string]any{"code": "FailedDependency", "message": "Failed dependency."}}}
		} else {
			resp = s.batchOne(r, br)
		}
		status[strings.ToLower(br.ID)] = resp["status"].(int)
		responses = append(responses, resp)
	}
	if sequenced {
		slices.Reverse(responses)
	}
	writeJSON(w, 200, map[string]any{"responses": responses})
}

func (s *Server) batchOne(outer *http.Request, br batchRequest) map[string]any {
	s.mu.Lock()
	s.inner++
	s.log = append(s.log, "batch "+br.Method+" /v1.0/"+strings.TrimPrefix(br.URL, "/"))
	s.mu.Unlock()
	rec := httptest.NewRecorder()
	hasBody := len(br.Body) > 0 && string(br.Body) != "null"
	ct := ""
	for k, v := range br.Headers {
		if strings.EqualFold(k, "Content-Type") {
			ct = v
		}
	}
	if hasBody && ct == "" {
		writeError(rec, 400, "BadRequest", "Write request id : "+br.ID+" does not contain Content-Type header or body.", nil)
	} else {
		in := httptest.NewRequest(br.Method, "/v1.0/"+strings.TrimPrefix(br.URL, "/"), bytes.NewReader(br.Body))
		in.RemoteAddr = outer.RemoteAddr
		in.Header.Set("Authorization", outer.Header.Get("Authorization"))
		for k, v := range br.Headers {
			in.Header.Set(k, v)
		}
		s.graph(rec, in)
	}
	resp := map[string]any{"id": br.ID, "status": rec.Code}
	hdr := map[string]string{}
	for _, k := range []string{"Content-Type", "Retry-After", "Location"} {
		if v := rec.Header().Get(k); v != "" {
			hdr[k] = v
		}
	}
	resp["headers"] = hdr
	if b := bytes.TrimSpace(rec.Body.Bytes()); len(b) > 0 {
		resp["body"] = json.RawMessage(b)
	}
	return resp
}
