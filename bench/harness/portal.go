package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// Portal is the HR portal of the joiner's password hand-off: it accepts an
// account only when the password sent equals the one the target holds, so
// an accepted hand-off proves the step resolved the password on the worker
// that generated it (or on the worker that re-issued it).
//
// It serves HTTPS only: jml refuses to send a password over plain HTTP.
// Workers trust its self-signed certificate the way a production worker
// trusts a corporate CA (Cluster.Trust).
type Portal struct {
	URL string
	// CertFile is the PEM certificate of the portal, for SSL_CERT_FILE.
	CertFile string
	// Client trusts the portal (for in-process workers).
	Client *http.Client

	check    func(accountID string) string // hex SHA-256 the target holds
	mu       sync.Mutex
	accepted map[string]int // by account ID
	rejected int
	secrets  []string
	// arrived receives the remote address of each hand-off as it arrives.
	arrived chan string
	hold    chan struct{}
	// held is the client address of each hand-off waiting on hold, by
	// request number; heldChanged is closed (and replaced) when it changes.
	held        map[int]string
	heldSeq     int
	heldChanged chan struct{}
}

// StartPortal serves POST /accounts {"id","login","password"}; check returns
// the hex SHA-256 of the password the target holds for an account.
func StartPortal(tb testing.TB, check func(accountID string) string) *Portal {
	tb.Helper()
	p := &Portal{check: check, accepted: map[string]int{}, arrived: make(chan string, 10000),
		held: map[int]string{}, heldChanged: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	// A worker that does not trust the portal fails its step with the
	// reason; the portal's own handshake log would only repeat it.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	p.URL, p.Client = srv.URL, srv.Client()
	p.CertFile = filepath.Join(tb.TempDir(), "portal.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p.CertFile, cert, 0o600); err != nil {
		tb.Fatalf("harness: portal certificate: %v", err)
	}
	return p
}

// Hold makes hand-offs wait until Release (or until their client gives up).
func (p *Portal) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = make(chan struct{})
}

// Release lets held and later hand-offs through.
func (p *Portal) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
}

// notifyHeld wakes WaitHeld callers; p.mu is held.
func (p *Portal) notifyHeld() {
	close(p.heldChanged)
	p.heldChanged = make(chan struct{})
}

// Held is the client address of each hand-off waiting on hold now (one
// per request; a client gone away is no longer held).
func (p *Portal) Held() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Values(p.held))
}

// WaitHeld waits until cond holds for the client addresses of the
// hand-offs held now (re-checked whenever they change), or ctx ends.
func (p *Portal) WaitHeld(ctx context.Context, cond func(held []string) bool) error {
	for {
		p.mu.Lock()
		held := slices.Collect(maps.Values(p.held))
		changed := p.heldChanged
		p.mu.Unlock()
		if cond(held) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("portal: %d hand-off(s) held when the wait ended: %w", len(held), ctx.Err())
		}
	}
}

// Arrived delivers the client address of every hand-off as it arrives.
func (p *Portal) Arrived() <-chan string { return p.arrived }

func (p *Portal) serve(w http.ResponseWriter, r *http.Request) {
	var body struct{ ID, Login, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	select {
	case p.arrived <- r.RemoteAddr:
	default:
	}
	p.mu.Lock()
	hold := p.hold
	var n int
	if hold != nil {
		p.heldSeq++
		n = p.heldSeq
		p.held[n] = r.RemoteAddr
		p.notifyHeld()
	}
	p.mu.Unlock()
	if hold != nil {
		var gone bool
		select {
		case <-hold:
		case <-r.Context().Done():
			gone = true
		}
		p.mu.Lock()
		delete(p.held, n)
		p.notifyHeld()
		p.mu.Unlock()
		if gone {
			return
		}
	}
	sum := sha256.Sum256([]byte(body.Password))
	ok := body.Password != "" && p.check(body.ID) == hex.EncodeToString(sum[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok {
		p.rejected++
		http.Error(w, "login failed", http.StatusUnauthorized)
		return
	}
	p.accepted[body.ID]++
	p.secrets = append(p.secrets, body.Password)
	w.WriteHeader(http.StatusCreated)
}

// Result is the hand-offs so far: accounts accepted (each at least once),
// rejections, and every password received (for history scans).
func (p *Portal) Result() (accounts, rejected int, passwords []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.accepted), p.rejected, append([]string(nil), p.secrets...)
}
