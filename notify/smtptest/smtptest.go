// Package smtptest is a real SMTP server on loopback for tests
// (github.com/emersion/go-smtp): STARTTLS or implicit TLS with a fresh
// self-signed certificate, AUTH PLAIN, and every accepted message kept.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Modes of the server.
const (
	StartTLS = "starttls" // plain port, STARTTLS offered, AUTH only after it
	Implicit = "implicit" // TLS from the first byte
	None     = "none"     // no TLS at all (AUTH allowed in clear, loopback)
)

// Options configure a server.
type Options struct {
	Mode string // StartTLS (default), Implicit or None
	// Username/Password: AUTH PLAIN is required when set.
	Username, Password string
}

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	Data []byte // the raw RFC 5322 message
	TLS  bool   // the session was encrypted when DATA arrived
	Auth string // the authenticated user, if any
}

// Server is a running test SMTP server.
type Server struct {
	Host string
	Port int
	// RootCAs trusts the server's certificate (nil in mode None).
	RootCAs *x509.CertPool
	// CAPEM is that certificate in PEM (for a policy's ca_file).
	CAPEM []byte

	opts Options
	srv  *smtp.Server
	mu   sync.Mutex
	msgs []Message
	// Sessions counts connections, MailFrom MAIL FROM commands.
	sessions, mailFrom int
}

// Start starts a server on 127.0.0.1; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Mode == "" {
		opts.Mode = StartTLS
	}
	s := &Server{opts: opts, Host: "127.0.0.1"}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 50
	var l net.Listener
	var err error
	if opts.Mode != None {
		cert, pool := selfSigned(t)
		s.RootCAs = pool
		s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		srv.AllowInsecureAuth = true
	}
	if opts.Mode == Implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	s.srv = srv
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSConfig trusts the server (nil in mode None).
func (s *Server) TLSConfig() *tls.Config {
	if s.RootCAs == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
}

// Messages returns the accepted messages so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Counts returns the number of connections and of MAIL FROM commands.
func (s *Server) Counts() (sessions, mailFrom int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.mailFrom
}

// Close stops the server (a mail server that is down).
func (s *Server) Close() { _ = s.srv.Close() }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &session{s: s, c: c}, nil
}

type session struct {
	s    *Server
	c    *smtp.Conn
	user string
	from string
	to   []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != x.s.opts.Username || password != x.s.opts.Password || x.s.opts.Username == "" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication credentials invalid"}
		}
		x.user = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.Username != "" && x.user == "" {
		return errAuthRequired
	}
	x.s.mu.Lock()
	x.s.mailFrom++
	x.s.mu.Unlock()
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := x.c.TLSConnectionState()
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Message{From: x.from, To: x.to, Data: b, TLS: isTLS, Auth: x.user})
	x.s.mu.Unlock()
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "smtptest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Parsed is a received message read as MIME.
type Parsed struct {
	Header     mail.Header
	Text, HTML string
	// ContentType of the top-level entity (multipart/alternative when
	// both parts are there).
	ContentType string
}

// Parse reads a raw message: headers and the decoded text/plain and
// text/html parts (multipart or single part; quoted-printable and base64).
func Parse(raw []byte) (Parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Header: m.Header}
	ct, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return p, err
	}
	p.ContentType = ct
	if !strings.HasPrefix(ct, "multipart/") {
		b, err := decode(m.Body, m.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return p, err
		}
		p.set(ct, b)
		return p, nil
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return p, nil
		}
		if err != nil {
			return p, err
		}
		pct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		// multipart.Reader decodes quoted-printable itself and drops the header.
		b, err := decode(part, part.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return p, err
		}
		p.set(pct, b)
	}
}

func (p *Parsed) set(ct string, b []byte) {
	switch ct {
	case "text/plain":
		p.Text = string(b)
	case "text/html":
		p.HTML = string(b)
	}
}

func decode(r io.Reader, cte string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	return io.ReadAll(r)
}
