package oktatest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
)

// profiles keeps employeeNumber, which emulate drops, per user ID and puts
// it back into every user it answers: Okta stores it, and it is what ties
// an account to its person (an account without it may be adopted). Other
// dropped properties stay dropped: tests use one (title) as a value that
// never sticks.
type profiles struct {
	mu    sync.Mutex
	extra map[string]map[string]any
}

// keptProperty is the profile property profiles keeps.
const keptProperty = "employeeNumber"

var userWrite = regexp.MustCompile(`^/api/v1/users(/[^/]+)?$`)

type sentProfile struct{}

// capture stashes the profile a create or update of a user sends, for the
// answer.
func (ps *profiles) capture(r *http.Request) *http.Request {
	if (r.Method != http.MethodPost && r.Method != http.MethodPut) || !userWrite.MatchString(r.URL.Path) || r.Body == nil {
		return r
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	var body struct {
		Profile map[string]any `json:"profile"`
	}
	if err != nil || json.Unmarshal(b, &body) != nil || body.Profile == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), sentProfile{}, body.Profile))
}

// restore records what emulate dropped of a sent profile and puts the kept
// properties into the user (or users) resp carries.
func (ps *profiles) restore(resp *http.Response) error {
	if resp.StatusCode >= 300 || !bytes.HasPrefix([]byte(resp.Request.URL.Path), []byte("/api/v1/users")) {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var one map[string]any
	var many []map[string]any
	switch {
	case json.Unmarshal(b, &one) == nil && one["profile"] != nil:
		if sent, ok := resp.Request.Context().Value(sentProfile{}).(map[string]any); ok {
			ps.keep(one, sent, resp.Request.Method == http.MethodPut)
		}
		ps.fill(one)
		b, err = json.Marshal(one)
	case json.Unmarshal(b, &many) == nil:
		for _, u := range many {
			ps.fill(u)
		}
		b, err = json.Marshal(many)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return nil
}

// keep records the sent properties emulate's answer u lacks (a null clears
// one; a PUT replaces them all).
func (ps *profiles) keep(u, sent map[string]any, replace bool) {
	id, _ := u["id"].(string)
	prof, _ := u["profile"].(map[string]any)
	if id == "" || prof == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.extra == nil {
		ps.extra = map[string]map[string]any{}
	}
	if replace || ps.extra[id] == nil {
		ps.extra[id] = map[string]any{}
	}
	for k, v := range sent {
		if k != keptProperty {
			continue
		}
		if _, kept := prof[k]; kept || v == nil {
			delete(ps.extra[id], k)
			continue
		}
		ps.extra[id][k] = v
	}
}

// fill puts the kept properties back into u's profile.
func (ps *profiles) fill(u map[string]any) {
	id, _ := u["id"].(string)
	prof, _ := u["profile"].(map[string]any)
	if prof == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, v := range ps.extra[id] {
		if _, ok := prof[k]; !ok {
			prof[k] = v
		}
	}
}
