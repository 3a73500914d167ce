// Package ldap provisions accounts in Active Directory and in OpenLDAP
// over LDAP v3 (github.com/go-ldap/ldap/v3): users created in the
// container a template renders, passwords set over TLS only (AD's
// unicodePwd, OpenLDAP's Password Modify extended operation), accounts
// disabled through userAccountControl (AD) or a ppolicy lock (OpenLDAP),
// groups in a groups container, listing in pages (RFC 2696).
//
// An account's ID is its objectGUID (AD) or entryUUID (OpenLDAP), never
// its DN: a move or a rename keeps the link. Every operation goes through
// one ldap.Client; a preview wraps it with a recorder (record.go), so what
// a preview shows is what a run sends.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Flavour is the kind of directory.
type Flavour int

// Flavours.
const (
	ActiveDirectory Flavour = iota // Active Directory or Samba AD DC
	OpenLDAP                       // inetOrgPerson, groupOfNames, ppolicy
)

// Target types of the flavours, as a policy writes them.
const (
	TypeAD       = "active_directory"
	TypeOpenLDAP = "ldap"
)

// Error types (Temporal error types; never carry personal data).
const (
	TypeConfig         = "LdapConfig"
	TypeAuth           = "LdapAuth"
	TypeInsecure       = "LdapInsecure"
	TypePasswordPolicy = "LdapPasswordPolicy"
	TypeRefused        = "LdapRefused"
	TypeSchema         = "LdapSchema"
	TypeValidation     = "LdapValidation"
)

// TLS modes.
const (
	TLSImplicit = "implicit" // ldaps://
	TLSStart    = "starttls" // ldap:// then StartTLS
	TLSNone     = "none"     // plain LDAP: --dev only, and never a password
)

// Defaults.
const (
	DefaultPageSize = 500
	DefaultTimeout  = 30 * time.Second
)

// Config configures a Connector.
type Config struct {
	Flavour      Flavour
	URL          string // ldaps://dc1.corp.example or ldap://…
	TLS          string // "" (from the scheme), TLSStart or TLSNone
	BindDN       string
	BindPassword secret.Secret
	BaseDN       string
	// RootCAs verify the directory's certificate (nil: the system's).
	RootCAs *x509.CertPool
	// ServerName overrides the name the certificate must carry.
	ServerName string
	// UserContainer is the template of a new user's parent DN: {name}
	// is the account's attribute name, its value escaped (RFC 4514).
	UserContainer     string
	GroupsContainer   string // default BaseDN
	DisabledContainer string // "": a leaver stays where it is
	PageSize          int
	Timeout           time.Duration
	// MustChangePassword makes a joiner change the generated password at
	// first logon (AD pwdLastSet=0, OpenLDAP pwdReset=TRUE).
	MustChangePassword bool
	// AllowInsecure permits TLSNone (--dev).
	AllowInsecure bool
	// Dial opens a connection (tests); nil dials URL.
	Dial func(ctx context.Context) (ldapv3.Client, error)
	// Recorder, when set, records every operation (a preview).
	Recorder connectors.OperationRecorder
}

// String names the directory and the bind DN, never the password.
func (c Config) String() string {
	return fmt.Sprintf("ldap.Config{URL: %q, BindDN: %q, BaseDN: %q}", c.URL, c.BindDN, c.BaseDN)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Connector talks to one directory. It is safe for concurrent use: one
// connection, opened at first use and again after it breaks.
type Connector struct {
	cfg    Config
	schema *schema
	desc   *connectors.Description
	users  template // user container
	cache  dnCache
	mu     sync.Mutex
	conn   ldapv3.Client
}

// New checks cfg and returns a Connector. It sends nothing.
func New(cfg Config) (*Connector, error) {
	bad := func(format string, args ...any) error {
		return connectors.Permanentf(TypeConfig, "ldap: config: "+format, args...)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
		return nil, bad("url %q: want ldaps://host[:port] or ldap://host[:port]", cfg.URL)
	}
	switch {
	case u.Scheme == "ldaps" && cfg.TLS == "":
		cfg.TLS = TLSImplicit
	case u.Scheme == "ldaps" && cfg.TLS != TLSImplicit:
		return nil, bad("tls %q with an ldaps:// url: leave tls unset", cfg.TLS)
	case u.Scheme == "ldap" && cfg.TLS == "":
		cfg.TLS = TLSStart
	case u.Scheme == "ldap" && cfg.TLS != TLSStart && cfg.TLS != TLSNone:
		return nil, bad("tls %q: want starttls or none", cfg.TLS)
	}
	if cfg.TLS == TLSNone && !cfg.AllowInsecure {
		return nil, bad("plain LDAP without TLS (tls: none) sends the bind password in clear: refused outside --dev")
	}
	if cfg.BindDN == "" || cfg.BindPassword.Empty() {
		return nil, bad("bind_dn and its password are required")
	}
	if _, err := ldapv3.ParseDN(cfg.BaseDN); err != nil || cfg.BaseDN == "" {
		return nil, bad("base_dn %q is not a DN", cfg.BaseDN)
	}
	users, err := parseTemplate(cfg.UserContainer)
	if err != nil {
		return nil, bad("user_container: %v", err)
	}
	for _, f := range []struct{ name, dn string }{{"groups_container", cfg.GroupsContainer}, {"disabled_container", cfg.DisabledContainer}} {
		if _, err := ldapv3.ParseDN(f.dn); f.dn != "" && err != nil {
			return nil, bad("%s %q is not a DN", f.name, f.dn)
		}
	}
	if cfg.GroupsContainer == "" {
		cfg.GroupsContainer = cfg.BaseDN
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Connector{cfg: cfg, schema: schemaOf(cfg.Flavour), desc: describe(cfg.Flavour), users: users}, nil
}

// client is the connection, opened and bound when there is none or it
// broke; in a preview without a live directory, the recorder alone.
func (c *Connector) client(ctx context.Context) (ldapv3.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosing() {
		return c.conn, nil
	}
	var inner ldapv3.Client
	if reads, _ := c.sends(); reads {
		var err error
		if inner, err = c.open(ctx); err != nil {
			return nil, err
		}
	}
	c.conn = inner
	if c.cfg.Recorder != nil {
		c.conn = &recorder{inner: inner, rec: c.cfg.Recorder, flavour: c.cfg.Flavour}
	}
	return c.conn, nil
}

// sends is whether reads and writes go to the directory.
func (c *Connector) sends() (reads, writes bool) {
	if c.cfg.Recorder == nil {
		return true, true
	}
	return c.cfg.Recorder.Sends()
}

// open dials, secures and binds one connection.
func (c *Connector) open(ctx context.Context) (ldapv3.Client, error) {
	var conn ldapv3.Client
	var err error
	if c.cfg.Dial != nil {
		conn, err = c.cfg.Dial(ctx)
	} else {
		conn, err = c.dial(ctx)
	}
	if err != nil {
		return nil, classify("connect", err)
	}
	conn.SetTimeout(c.cfg.Timeout)
	if c.cfg.TLS == TLSStart {
		if err := conn.StartTLS(c.tlsConfig()); err != nil {
			conn.Close()
			return nil, classify("StartTLS", err)
		}
	}
	if err := conn.Bind(c.cfg.BindDN, c.cfg.BindPassword.Reveal()); err != nil {
		conn.Close()
		return nil, classify("bind as "+c.cfg.BindDN, err)
	}
	return conn, nil
}

func (c *Connector) dial(ctx context.Context) (ldapv3.Client, error) {
	d := &net.Dialer{Timeout: c.cfg.Timeout}
	opts := []ldapv3.DialOpt{ldapv3.DialWithDialer(d)}
	if c.cfg.TLS == TLSImplicit {
		opts = append(opts, ldapv3.DialWithTLSConfig(c.tlsConfig()))
	}
	type res struct {
		conn *ldapv3.Conn
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		conn, err := ldapv3.DialURL(c.cfg.URL, opts...)
		ch <- res{conn, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (c *Connector) tlsConfig() *tls.Config {
	u, _ := url.Parse(c.cfg.URL)
	name := c.cfg.ServerName
	if name == "" {
		name = u.Hostname()
	}
	return &tls.Config{RootCAs: c.cfg.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
}

// do runs op on the connection; a connection that broke is dropped so
// the next call opens another, and the error is classified.
func (c *Connector) do(ctx context.Context, what string, op func(ldapv3.Client) error) error {
	conn, err := c.client(ctx)
	if err != nil {
		return err
	}
	if err := op(conn); err != nil {
		if ldapv3.IsErrorWithCode(err, ldapv3.ErrorNetwork) || conn.IsClosing() {
			c.drop(conn)
		}
		return classify(what, err)
	}
	return nil
}

func (c *Connector) drop(conn ldapv3.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn.Close()
		c.conn = nil
	}
}

// Close closes the connection.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// secure reports whether the connection is encrypted: a password is sent
// only then.
func secure(conn ldapv3.Client) bool {
	if r, ok := conn.(*recorder); ok {
		if r.inner == nil {
			return true // nothing is sent
		}
		conn = r.inner
	}
	_, ok := conn.TLSConnectionState()
	return ok
}

// LoadCAFile reads a PEM bundle of CA certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// parentDN is dn without its first RDN.
func parentDN(dn string) string {
	d, err := ldapv3.ParseDN(dn)
	if err != nil || len(d.RDNs) < 2 {
		return ""
	}
	return (&ldapv3.DN{RDNs: d.RDNs[1:]}).String()
}

// firstRDN is dn's first RDN as written: up to the first comma that is
// not escaped.
func firstRDN(dn string) string {
	for i := 0; i < len(dn); i++ {
		switch dn[i] {
		case '\\':
			i++
		case ',':
			return dn[:i]
		}
	}
	return dn
}

// sameDN compares two DNs as the directory does (case-insensitively).
func sameDN(a, b string) bool {
	da, err1 := ldapv3.ParseDN(a)
	db, err2 := ldapv3.ParseDN(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return da.EqualFold(db)
}
