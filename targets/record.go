package targets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/jml-dev/jml/connectors"
)

// PreviewAccountPrefix starts the placeholder ID of an account a preview
// acts on (preview.OktaUser): reads of it are answered as an active account.
const PreviewAccountPrefix = "preview."

// Call is one request a connector sent, as it went on the wire.
type Call struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	Body   string `json:"body,omitempty"`
	// Answer is how the request was answered: "sent" (the live target),
	// "not found" (a read without --live), "blocked" (a write: never sent).
	Answer string `json:"answer,omitempty"`
}

// Recorder is the http.RoundTripper under a connector in a preview: the
// connector's own code builds every request, so a preview cannot drift from
// the wire. Writes never leave the process: they are recorded and answered
// with a synthetic success that echoes the body with an ID. Reads go to
// Live when it is set (starter preview --live); otherwise they are answered
// "not found". Credential exchanges (OAuth2 token requests) go to Live, or
// are answered with a placeholder token; they are not recorded.
type Recorder struct {
	Live http.RoundTripper
	// Wire records and forwards everything to Live (tests: what a connector
	// really sends to a peer).
	Wire bool
	// TokenFields are extra JSON fields holding a token in a synthetic
	// login answer (a rest target's login_bearer token_field).
	TokenFields []string

	mu    sync.Mutex
	calls []Call
	ids   int
	// written are the unsent changes to a live resource, by URL path, in
	// order: a later read of it is answered as the target would answer
	// once they were made.
	written map[string][][]byte
}

// Calls are the recorded requests, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the recorded requests.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

func isToken(req *http.Request) bool {
	p := req.URL.Path
	return req.Method == http.MethodPost && (strings.HasSuffix(p, "/oauth2/v2.0/token") || strings.HasSuffix(p, "/oauth2/token") || strings.HasSuffix(p, "/token"))
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.roundTrip(req, r.record)
}

// roundTrip answers req, telling record what it did: the recorder's log,
// or nothing for a request inside a Graph $batch (the batch is the call).
func (r *Recorder) roundTrip(req *http.Request, record func(Call)) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	if isToken(req) {
		if r.Live != nil {
			return r.Live.RoundTrip(req)
		}
		return answer(req, http.StatusOK, map[string]any{"access_token": "preview", "token_type": "Bearer", "expires_in": 3600}), nil
	}
	read := req.Method == http.MethodGet || req.Method == http.MethodHead
	c := Call{Method: req.Method, URL: req.URL.String(), Body: string(body)}
	switch {
	case r.Wire:
		c.Answer = "sent"
		record(c)
		return r.Live.RoundTrip(req)
	case read && r.Live != nil:
		c.Answer = "sent"
		record(c)
		resp, err := r.Live.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		return r.applied(resp), nil
	case read && strings.Contains(req.URL.Path, PreviewAccountPrefix):
		c.Answer = "the account of an earlier step"
		record(c)
		return placeholderAccount(req), nil
	case read && groupName(req) != "":
		// A group the policy names is taken to exist: the run's calls
		// after it are the useful part of an offline preview.
		c.Answer = "group assumed to exist: preview without --live"
		record(c)
		return assumedGroup(req, groupName(req)), nil
	case read:
		c.Answer = "not found"
		record(c)
		if req.URL.RawQuery != "" && !strings.Contains(req.URL.Path, "/api/v1/users/") {
			return emptyList(req), nil
		}
		return notFound(req), nil
	}
	c.Answer = "blocked"
	record(c)
	if (req.Method == http.MethodPatch || req.Method == http.MethodPut) && r.Live != nil {
		// A change to a resource the target has: answered with the
		// resource as the target holds it (before the unsent write), so
		// what the connector reads from the answer (a SCIM user's groups)
		// is the target's, not an echo. The change is applied, as the
		// target's answer would show it, and to every later read.
		r.write(req.URL.Path, body)
		if resp := r.current(req); resp != nil {
			return r.applied(resp), nil
		}
	}
	if req.Method == http.MethodDelete {
		return answer(req, http.StatusNoContent, nil), nil
	}
	if m := oktaLifecycle.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodPost {
		// The status the operation leaves the user in, as Okta documents
		// it, for later reads of the user.
		r.write(m[1], []byte(`{"status":"`+oktaStatus[m[2]]+`"}`))
	}
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/$batch") {
		return r.batch(req, body), nil
	}
	obj := map[string]any{}
	_ = json.Unmarshal(body, &obj) // a body that is not an object echoes as {}
	r.mu.Lock()
	r.ids++
	obj["id"] = fmt.Sprintf("preview-%d", r.ids)
	r.mu.Unlock()
	for _, f := range append([]string{"token", "access_token"}, r.TokenFields...) {
		obj[f] = "preview"
	}
	obj["status"] = "ACTIVE"
	obj["tempPassword"] = "preview-temporary-password" // Okta's expire_password?tempPassword=true
	return answer(req, http.StatusOK, obj), nil
}

// batch answers a Graph JSON $batch as Graph would: each request in it
// answered as the recorder answers it alone (a read sent to Live, a write
// not sent), none recorded on its own.
func (r *Recorder) batch(req *http.Request, body []byte) *http.Response {
	var in struct {
		Requests []struct {
			ID      string            `json:"id"`
			Method  string            `json:"method"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"requests"`
	}
	if json.Unmarshal(body, &in) != nil {
		return answer(req, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "BadRequest", "message": "invalid $batch"}})
	}
	base := *req.URL
	base.Path = strings.TrimSuffix(req.URL.Path, "/$batch")
	base.RawPath, base.RawQuery = "", ""
	type sub struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers,omitempty"`
		Body    json.RawMessage   `json:"body,omitempty"`
	}
	out := []sub{}
	for _, q := range in.Requests {
		var rd io.Reader
		if len(q.Body) > 0 {
			rd = bytes.NewReader(q.Body)
		}
		sr, err := http.NewRequestWithContext(req.Context(), q.Method, base.String()+q.URL, rd)
		if err != nil {
			out = append(out, sub{ID: q.ID, Status: http.StatusBadRequest})
			continue
		}
		sr.Header = req.Header.Clone()
		sr.Header.Del("Content-Length")
		for k, v := range q.Headers {
			sr.Header.Set(k, v)
		}
		resp, err := r.roundTrip(sr, func(Call) {})
		if err != nil {
			out = append(out, sub{ID: q.ID, Status: http.StatusServiceUnavailable})
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := sub{ID: q.ID, Status: resp.StatusCode, Headers: map[string]string{}}
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			s.Headers["Content-Type"] = ct
		}
		if json.Valid(b) {
			s.Body = b
		}
		out = append(out, s)
	}
	return answer(req, http.StatusOK, map[string]any{"responses": out})
}

// current reads req's resource from Live (not recorded: the recorder's own
// read); nil when the target does not answer 200.
func (r *Recorder) current(req *http.Request) *http.Response {
	get := req.Clone(req.Context())
	get.Method, get.Body, get.ContentLength = http.MethodGet, nil, 0
	get.Header.Del("Content-Type")
	resp, err := r.Live.RoundTrip(get)
	if err != nil {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil
	}
	return resp
}

// write remembers an unsent change to the resource at path.
func (r *Recorder) write(path string, change []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.written == nil {
		r.written = map[string][][]byte{}
	}
	r.written[path] = append(r.written[path], change)
}

var oktaLifecycle = regexp.MustCompile(`^(.*/api/v1/users/[^/]+)/lifecycle/(suspend|unsuspend|deactivate|unlock)$`)

// oktaStatus is the status an Okta lifecycle operation leaves a user in.
var oktaStatus = map[string]string{"suspend": "SUSPENDED", "unsuspend": "ACTIVE", "deactivate": "DEPROVISIONED", "unlock": "ACTIVE"}

// applied is resp with the unsent changes to its resource made: a SCIM
// PatchOp's operations on plain attributes (a path naming a filter or a
// sub-attribute is not applied), or a JSON object merged (Graph's PATCH).
// Anything but a 200 JSON object is resp as it came.
func (r *Recorder) applied(resp *http.Response) *http.Response {
	req := resp.Request
	r.mu.Lock()
	changes := r.written[req.URL.Path]
	r.mu.Unlock()
	if len(changes) == 0 || resp.StatusCode != http.StatusOK {
		return resp
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	obj := map[string]any{}
	if err != nil || json.Unmarshal(b, &obj) != nil {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp
	}
	for _, c := range changes {
		applyChange(obj, c)
	}
	out := answer(req, http.StatusOK, obj)
	out.Header = resp.Header.Clone()
	out.Header.Del("Content-Length")
	return out
}

// applyChange makes one written change on obj.
func applyChange(obj map[string]any, body []byte) {
	var patch struct {
		Operations []struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value"`
		}
	}
	if json.Unmarshal(body, &patch) != nil {
		return
	}
	if patch.Operations == nil {
		_ = json.Unmarshal(body, &obj) // a merge: the body's fields set
		return
	}
	for _, op := range patch.Operations {
		switch {
		case op.Path == "":
			if v, ok := op.Value.(map[string]any); ok && !strings.EqualFold(op.Op, "remove") {
				for k, x := range v {
					obj[k] = x
				}
			}
		case strings.ContainsAny(op.Path, "[.:"):
			// a filter or a sub-attribute: not applied
		case strings.EqualFold(op.Op, "remove"):
			delete(obj, op.Path)
		case strings.EqualFold(op.Op, "replace"):
			obj[op.Path] = op.Value
		}
	}
}

func (r *Recorder) record(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// notFound is a 404 every connector reads as "absent": Okta's E0000007,
// a SCIM error and a Graph error in one body.
func notFound(req *http.Request) *http.Response {
	return answer(req, http.StatusNotFound, map[string]any{
		"errorCode": "E0000007", "errorSummary": "Not found: preview without --live",
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"}, "status": "404", "detail": "preview without --live",
		"error": map[string]string{"code": "Request_ResourceNotFound", "message": "preview without --live"},
	})
}

// emptyList answers a search: Okta's [] for /api/v1 collections, else a
// SCIM ListResponse that is also Graph's {"value": []}.
func emptyList(req *http.Request) *http.Response {
	if strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return answer(req, http.StatusOK, []any{})
	}
	return answer(req, http.StatusOK, map[string]any{
		"schemas":      []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []any{}, "value": []any{},
	})
}

func answer(req *http.Request, code int, v any) *http.Response {
	h := http.Header{}
	var b []byte
	if v != nil {
		b, _ = json.Marshal(v)
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Header: h,
		Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// placeholderAccount answers a read of a preview account: active, in no
// group (Okta lists groups as an array, Graph as {"value": []}).
func placeholderAccount(req *http.Request) *http.Response {
	p := req.URL.Path
	switch {
	case strings.HasSuffix(p, "/groups"):
		return answer(req, http.StatusOK, []any{})
	case strings.HasSuffix(p, "/memberOf") || strings.Contains(p, "/memberOf/"):
		return answer(req, http.StatusOK, map[string]any{"value": []any{}})
	}
	id := p[strings.LastIndex(p, "/")+1:]
	return answer(req, http.StatusOK, map[string]any{
		"id": id, "status": "ACTIVE", "active": true, "accountEnabled": true, "groups": []any{},
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "profile": map[string]any{},
	})
}

var groupFilter = regexp.MustCompile(`^displayName eq ["'](.*)["']$`)

// groupName is the name a group search looks for: Okta's ?q=, a SCIM or
// Graph displayName filter; "" for any other read.
func groupName(req *http.Request) string {
	p, q := req.URL.Path, req.URL.Query()
	if !strings.HasSuffix(p, "/groups") && !strings.HasSuffix(p, "/Groups") {
		return ""
	}
	if strings.HasPrefix(p, "/api/v1/") {
		return q.Get("q")
	}
	f := q.Get("filter")
	if f == "" {
		f = q.Get("$filter")
	}
	if m := groupFilter.FindStringSubmatch(f); m != nil {
		return strings.NewReplacer(`\"`, `"`, "''", "'").Replace(m[1])
	}
	return ""
}

// assumedGroup answers a group search with one group of that name, in
// Okta's, SCIM's and Graph's shapes; its ID names it.
func assumedGroup(req *http.Request, name string) *http.Response {
	id := "<group id of " + name + ">"
	if strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return answer(req, http.StatusOK, []any{map[string]any{"id": id, "type": "OKTA_GROUP", "profile": map[string]any{"name": name}}})
	}
	g := map[string]any{"id": id, "displayName": name, "schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}}
	return answer(req, http.StatusOK, map[string]any{
		"schemas":      []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": 1, "startIndex": 1, "itemsPerPage": 1, "Resources": []any{g}, "value": []any{g},
	})
}

// RecordOperation records an operation a connector sent over another
// protocol than HTTP (LDAP), in the same log as the HTTP calls: the
// connector answers it itself as Sends says (connectors.OperationRecorder).
func (r *Recorder) RecordOperation(op connectors.Operation, answer string) {
	r.record(Call{Method: op.Method, URL: op.Target, Body: op.Body, Answer: answer})
}

// Sends reports whether reads go to the live target (Live is set) and
// whether writes do (Wire).
func (r *Recorder) Sends() (reads, writes bool) { return r.Live != nil, r.Wire && r.Live != nil }
