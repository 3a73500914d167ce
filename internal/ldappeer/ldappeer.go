// Package ldappeer starts real directory servers for tests: a Samba AD DC
// (Active Directory) and an OpenLDAP slapd, both from Debian, each as a child
// process on loopback with its own data in a temporary directory, its own TLS
// certificate and CA, and stopped when the test ends.
//
// Without the Debian packages (samba-ad-dc, slapd, ldap-utils) a test skips
// and says what to install; with CI set (as .ci/run does) it fails instead,
// since ./test.sh installs them.
package ldappeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Directory is what both peers share: where they listen, how to trust them,
// how to bind as their administrator and the containers tests provision into.
type Directory struct {
	// URL is the LDAPS address (ldaps://host:port).
	URL string
	// PlainURL is the plain LDAP address (ldap://host:port), for StartTLS
	// and for proving that plain LDAP is refused.
	PlainURL string
	// CAFile is the PEM file of the CA that signed the server's certificate
	// (which names the host of URL as an IP address).
	CAFile string
	// BaseDN is the naming context: DC=jml,DC=test.
	BaseDN string
	// AdminDN and AdminPassword bind with full rights.
	AdminDN, AdminPassword string
	// StaffDN, DisabledDN and GroupsDN are the containers jml's tests
	// provision users, leavers and groups into (created at start unless
	// Bare was given).
	StaffDN, DisabledDN, GroupsDN string

	// bindName is what Dial binds with (the UPN on AD, the DN elsewhere).
	bindName string
	host     string // what the certificate names: the IP address of URL
	caPool   *x509.CertPool
}

// TLSConfig trusts exactly the peer's CA and expects its address as the
// server name (StartTLS needs it set).
func (d *Directory) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: d.caPool, ServerName: d.host, MinVersion: tls.VersionTLS12}
}

// DialURL connects to url (ldaps:// or ldap://) trusting the peer's CA,
// without binding. The caller closes the connection.
func (d *Directory) DialURL(url string) (*ldap.Conn, error) {
	return ldap.DialURL(url, ldap.DialWithTLSConfig(d.TLSConfig()),
		ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
}

// Dial returns a connection over LDAPS bound as the administrator, closed
// when the test ends.
func (d *Directory) Dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := d.DialURL(d.URL)
	if err != nil {
		t.Fatalf("ldappeer: dial %s: %v", d.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(d.bindName, d.AdminPassword); err != nil {
		t.Fatalf("ldappeer: bind as %s: %v", d.bindName, err)
	}
	return c
}

// Bind opens a fresh LDAPS connection and binds as name with password; nil
// means the directory accepted the credentials. Use it to prove a password
// works, or (for a leaver) that it no longer does.
func (d *Directory) Bind(name, password string) error {
	c, err := d.DialURL(d.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(name, password)
}

// CreateOU adds an organizationalUnit at dn (e.g. OU=Sales,OU=Staff,DC=jml,DC=test);
// one that exists already is fine.
func (d *Directory) CreateOU(t testing.TB, dn string) {
	t.Helper()
	c := d.Dial(t)
	ou, err := ldap.ParseDN(dn)
	if err != nil || len(ou.RDNs) == 0 || len(ou.RDNs[0].Attributes) != 1 {
		t.Fatalf("ldappeer: CreateOU %q: not an OU DN (%v)", dn, err)
	}
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "organizationalUnit"})
	req.Attribute("ou", []string{ou.RDNs[0].Attributes[0].Value})
	if err := c.Add(req); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		t.Fatalf("ldappeer: add OU %s: %v", dn, err)
	}
}

// createContainers adds the Staff, Disabled and Groups OUs.
func (d *Directory) createContainers(t testing.TB) {
	t.Helper()
	for _, dn := range []string{d.StaffDN, d.DisabledDN, d.GroupsDN} {
		d.CreateOU(t, dn)
	}
}

// config holds the options both peers take.
type config struct {
	bare           bool
	allowPlainBind bool
}

// Option tunes a peer.
type Option func(*config)

// Bare starts the directory without the Staff, Disabled and Groups OUs
// (e.g. to prove that a check reports missing containers).
func Bare() Option { return func(c *config) { c.bare = true } }

// AllowPlainBind lets a Samba DC accept simple binds over plain LDAP
// (`ldap server require strong auth = no`; by default Samba answers them
// with strongerAuthRequired, "Transport encryption required"). Beware:
// Samba 4.17 then also takes unicodePwd in clear, where Windows AD answers
// unwillingToPerform, so only the client can be proven to refuse it.
// slapd accepts plain binds anyway.
func AllowPlainBind() Option { return func(c *config) { c.allowPlainBind = true } }

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// need finds a Debian binary; without it the test skips (or fails in CI,
// where ./test.sh installs the packages).
func need(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err == nil {
			return filepath.Join(dir, bin)
		}
	}
	unavailable(t, fmt.Sprintf("%s is not installed: install it with `apt-get install -y %s` (./test.sh and .ci/run do)", bin, pkg))
	return ""
}

// unavailable skips, or fails when CI is set.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal("ldappeer: " + msg)
	}
	t.Skip("ldappeer: " + msg)
}

// tempDir is a short-lived directory with a short path: Samba creates Unix
// sockets under it, whose paths may not exceed 107 bytes (t.TempDir's carry
// the test's name).
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// writeTLS generates a CA and a server certificate for ip signed by it, and
// writes ca.pem, cert.pem and key.pem (0600) into dir.
func writeTLS(dir, ip string) (*x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"jml tests"}, CommonName: "jml test directory CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{Organization: []string{"jml tests"}, CommonName: "dc.jml.test"},
		DNSNames:     []string{"dc.jml.test", "localhost"},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{"ca.pem", "CERTIFICATE", caDER, 0o644},
		{"cert.pem", "CERTIFICATE", der, 0o644},
		{"key.pem", "PRIVATE KEY", keyDER, 0o600},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), data, f.mode); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}

// process is a directory server running as a child of the test.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProcess runs bin with args, its output going to logFile; at cleanup
// it kills the process group and waits. Pdeathsig takes it down with a test
// binary that dies without cleanup.
func startProcess(t testing.TB, logFile, bin string, args ...string) *process {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, log: logFile, done: make(chan struct{})}
	started := make(chan error)
	go func() {
		// Pdeathsig fires when the OS thread that started the child ends,
		// not the process: hold this thread until the child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		out.Close()
		t.Fatalf("ldappeer: start %s: %v", bin, err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *process) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// output is what the process logged so far (the tail, for failure messages).
func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// waitBind polls an admin bind over LDAPS until it succeeds, the process
// exits or the timeout passes.
func (p *process) waitBind(t testing.TB, d *Directory, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = d.Bind(d.bindName, d.AdminPassword); err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("ldappeer: %s exited before answering a bind on %s (%v):\n%s", p.cmd.Path, d.URL, p.err, p.output())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ldappeer: %s: no bind on %s after %s: %v\n%s", p.cmd.Path, d.URL, timeout, err, p.output())
		}
	}
}

// run runs a command to completion, failing the test with its output.
func run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ldappeer: %s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tryLock takes an exclusive lock on path without waiting; the returned
// file holds it until closed, and (nil, nil) means another holder has it.
// flock locks belong to the open file, so goroutines of one process
// exclude each other as separate processes do.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}
