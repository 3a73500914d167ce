// Package scimtest runs the SCIMMY-based SCIM 2.0 peer
// (testdata/peers/scimmy) for tests of any package: it installs the pinned
// npm packages on first use, starts the server on 127.0.0.1 and stops it at
// cleanup. Requests are counted by the peer itself.
package scimtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jml-dev/jml/internal/peertest"
)

// Peer is a running SCIM server.
type Peer struct {
	// BaseURL is the SCIM root, e.g. http://127.0.0.1:41234/scim/v2.
	BaseURL string
	// Token is the bearer token the peer accepts.
	Token string

	t    testing.TB
	root string // http://127.0.0.1:PORT
}

// Option changes what the peer advertises.
type Option func(*[]string)

// WithoutPatch makes /ServiceProviderConfig say PATCH is unsupported.
func WithoutPatch() Option { return func(a *[]string) { *a = append(*a, "--patch=false") } }

// WithoutBulk makes /ServiceProviderConfig say /Bulk is unsupported.
func WithoutBulk() Option { return func(a *[]string) { *a = append(*a, "--bulk=false") } }

// WithUsers preloads n users named seed00001, seed00002, … (for benchmarks).
func WithUsers(n int) Option {
	return func(a *[]string) { *a = append(*a, "--seed-users", strconv.Itoa(n)) }
}

var ready = regexp.MustCompile(`scim peer ready on (http://127\.0\.0\.1:\d+)/scim/v2`)

// Start installs (npm ci, once) and starts a fresh, empty peer.
func Start(t testing.TB, opts ...Option) *Peer {
	t.Helper()
	dir := peertest.PeerDir(t, "scimmy")
	peertest.EnsureNPM(t, dir)
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	args := []string{"server.js", "--port", "0", "--token", token}
	for _, o := range opts {
		o(&args)
	}
	proc := peertest.Start(t, dir, ready, 30*time.Second, "node", args...)
	m := ready.FindStringSubmatch(proc.Output())
	if m == nil {
		t.Fatalf("scimtest: no ready line in peer output:\n%s", proc.Output())
	}
	return &Peer{BaseURL: m[1] + "/scim/v2", Token: token, t: t, root: m[1]}
}

// Root is the peer's scheme://host:port, without the SCIM base path (what
// a proxy in front of the peer forwards to).
func (p *Peer) Root() string { return p.root }

// Stats are the peer's request counters since start or the last Reset.
type Stats struct {
	Total    int            `json:"total"`
	ByMethod map[string]int `json:"byMethod"`
}

// Stats reads the counters.
func (p *Peer) Stats() Stats {
	p.t.Helper()
	var s Stats
	p.call("GET", "/_peer/stats", http.StatusOK, &s)
	if s.ByMethod == nil {
		s.ByMethod = map[string]int{}
	}
	return s
}

// Requests is the number of SCIM requests the peer received.
func (p *Peer) Requests() int { p.t.Helper(); return p.Stats().Total }

// Writes counts the peer's write requests by method (POST, PUT, PATCH,
// DELETE); methods with no request are absent.
func (p *Peer) Writes() map[string]int {
	p.t.Helper()
	w := map[string]int{}
	for m, n := range p.Stats().ByMethod {
		if m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions {
			w[m] = n
		}
	}
	return w
}

// Reset zeroes the counters.
func (p *Peer) Reset() { p.t.Helper(); p.call("POST", "/_peer/reset", http.StatusNoContent, nil) }

// PasswordSHA256 is the hex SHA-256 of the password the peer holds for a
// user, "" when none was set.
func (p *Peer) PasswordSHA256(userID string) string {
	p.t.Helper()
	var out struct{ SHA256 string }
	if p.call("GET", "/_peer/password/"+userID, 0, &out) == http.StatusNotFound {
		return ""
	}
	return out.SHA256
}

// RenameGroup sets a group's displayName at the peer, as the target's own
// admin would (the request counts among the peer's writes).
func (p *Peer) RenameGroup(id, name string) {
	p.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]string{{"op": "replace", "path": "displayName", "value": name}},
	})
	p.admin(http.MethodPatch, "/Groups/"+url.PathEscape(id), body)
}

// DeleteGroup deletes a group at the peer, as the target's own admin would.
func (p *Peer) DeleteGroup(id string) {
	p.t.Helper()
	p.admin(http.MethodDelete, "/Groups/"+url.PathEscape(id), nil)
}

// admin sends one SCIM request to the peer; anything but a 2xx fails the
// test.
func (p *Peer) admin(method, path string, body []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatalf("scimtest: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("scimtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		p.t.Fatalf("scimtest: %s %s: HTTP %d", method, path, resp.StatusCode)
	}
}

func (p *Peer) call(method, path string, want int, out any) int {
	p.t.Helper()
	req, err := http.NewRequest(method, p.root+path, nil)
	if err != nil {
		p.t.Fatalf("scimtest: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("scimtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		p.t.Fatalf("scimtest: %s %s: HTTP %d, want %d", method, path, resp.StatusCode, want)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			p.t.Fatalf("scimtest: %s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// String is the base URL (never the token).
func (p *Peer) String() string { return fmt.Sprintf("scim peer %s", p.BaseURL) }
