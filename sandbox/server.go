package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jml-dev/jml/secret"
)

// Files in the sandbox data directory.
const (
	DirectoryFile = "directory.json" // users, groups, password hashes
	HRPortalFile  = "hr-portal.json" // handoff and notification records
	TokenFile     = "token"          // the bearer token of both servers
	CertFile      = "hr-portal.pem"  // the HR portal's certificate, for curl --cacert
)

// Config starts a sandbox.
type Config struct {
	// Dir holds the data files; "" keeps everything in memory.
	Dir string
	// SCIMAddr and HRPortalAddr are host:port to listen on (port 0: any).
	SCIMAddr     string
	HRPortalAddr string
	// Token is the bearer token; empty: the one in Dir/token, made there
	// on first start (random otherwise).
	Token string
	// Observe is passed to the HR portal (tests only).
	Observe func(secret.Secret)
}

// Sandbox is a running directory and HR portal sink.
type Sandbox struct {
	Directory *Directory
	Portal    *HRPortal
	// SCIMURL is the SCIM base URL, e.g. http://127.0.0.1:8090/scim/v2.
	SCIMURL string
	// HRPortalURL is the portal's API root, e.g. https://127.0.0.1:8443/api.
	HRPortalURL string
	token       string
	servers     []*http.Server
}

// Token is the bearer token both servers require.
func (s *Sandbox) Token() string { return s.token }

// Start opens the data, listens on both addresses and serves until Close.
func Start(cfg Config) (*Sandbox, error) {
	tok, err := loadToken(cfg)
	if err != nil {
		return nil, err
	}
	file := func(name string) string {
		if cfg.Dir == "" {
			return ""
		}
		return filepath.Join(cfg.Dir, name)
	}
	dir, err := Open(file(DirectoryFile))
	if err != nil {
		return nil, err
	}
	portal, err := NewHRPortal(dir, HRPortalConfig{DataFile: file(HRPortalFile), Token: tok, Observe: cfg.Observe})
	if err != nil {
		return nil, err
	}
	if cfg.Dir != "" {
		if err := os.WriteFile(file(CertFile), portal.CertPEM(), 0o644); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	scimLn, err := listen("sandbox SCIM", cfg.SCIMAddr)
	if err != nil {
		return nil, err
	}
	hrLn, err := listen("HR portal", cfg.HRPortalAddr)
	if err != nil {
		scimLn.Close()
		return nil, err
	}
	s := &Sandbox{Directory: dir, Portal: portal, token: tok,
		SCIMURL:     "http://" + scimLn.Addr().String() + BasePath,
		HRPortalURL: "https://" + hrLn.Addr().String() + "/api"}
	scimSrv := &http.Server{Handler: dir.Handler(tok), ReadHeaderTimeout: 10 * time.Second}
	hrSrv := &http.Server{Handler: portal.Handler(), TLSConfig: portal.TLSConfig(), ReadHeaderTimeout: 10 * time.Second}
	s.servers = []*http.Server{scimSrv, hrSrv}
	go func() { _ = scimSrv.Serve(scimLn) }()
	go func() { _ = hrSrv.ServeTLS(hrLn, "", "") }()
	return s, nil
}

// ErrAddrInUse wraps a listen failure on a taken address.
var ErrAddrInUse = errors.New("address in use")

func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("%s: %s: %w", what, addr, ErrAddrInUse)
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	return ln, nil
}

// Close stops both servers.
func (s *Sandbox) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// loadToken is cfg.Token, else the token file's, else a new random one (saved
// to the token file when there is a data dir).
func loadToken(cfg Config) (string, error) {
	if cfg.Token != "" {
		return cfg.Token, nil
	}
	path := ""
	if cfg.Dir != "" {
		path = filepath.Join(cfg.Dir, TokenFile)
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b)), nil
		}
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sandbox: token: %w", err)
	}
	tok := hex.EncodeToString(b)
	if path != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return "", fmt.Errorf("sandbox: data dir: %w", err)
		}
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("sandbox: token: %w", err)
		}
	}
	return tok, nil
}
