// Package notify delivers the notifications of notify steps to people: e-mail
// over SMTP (github.com/wneessen/go-mail, STARTTLS or implicit TLS) and chat
// messages through Slack and Microsoft Teams incoming webhooks. It renders
// nothing: the activity renders templates (with secrets resolved from the
// worker's vault) and hands finished messages here.
//
// Errors are connectors errors, so activities classify them once:
// connectors.PermanentError (bad address, refused TLS, 5xx reply, 4xx from a
// webhook) is not retried; anything else (connection refused, 4xx reply, 5xx
// from a webhook) is retried with the step's backoff.
package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/jml-dev/jml/connectors"
)

// TLS modes of an SMTP server.
const (
	TLSStartTLS = "starttls" // port 587 by default; the server must offer STARTTLS
	TLSImplicit = "implicit" // port 465 by default; TLS from the first byte
	TLSNone     = "none"     // port 25 by default; only for mail that carries no secret
)

// Error types (Temporal ApplicationError types of permanent failures).
const (
	ErrTypeInsecure = "NotifyInsecure" // a secret would travel without TLS, or the server offers none
	ErrTypeRejected = "NotifyRejected" // the server or webhook refused the message for good
	ErrTypeInvalid  = "NotifyInvalid"  // a bad address or configuration
)

// SMTP is one mail server.
type SMTP struct {
	Host string
	Port int    // 0: 587 (starttls), 465 (implicit), 25 (none)
	TLS  string // TLSStartTLS (default), TLSImplicit or TLSNone
	// Username and Password authenticate (AUTH PLAIN/LOGIN as offered);
	// empty: no authentication.
	Username, Password string
	// TLSConfig verifies the server (nil: system roots, ServerName Host).
	TLSConfig *tls.Config
	// AllowInsecureLoopback lets a message that carries a secret go to a
	// loopback server without TLS (tests only).
	AllowInsecureLoopback bool
	// Timeout of the connection and each command (default 30s).
	Timeout time.Duration
	// HELO name (default: the local host name).
	HELO string
}

// Email is one rendered message.
type Email struct {
	From        string
	To, Cc, Bcc []string
	Subject     string
	Text, HTML  string // at least one
	// MessageID (without angle brackets) is stable per run and step, so a
	// retried send carries the same ID and receiving systems can drop the
	// duplicate.
	MessageID string
	// Secret: the message carries a secret (a password): TLS is required.
	Secret bool
}

func (s SMTP) port() int {
	switch {
	case s.Port != 0:
		return s.Port
	case s.TLS == TLSImplicit:
		return 465
	case s.TLS == TLSNone:
		return 25
	}
	return 587
}

// Addr is host:port.
func (s SMTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.port())) }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check reports why m must not be sent through s (nil: it may).
func (s SMTP) Check(m Email) error {
	switch s.TLS {
	case "", TLSStartTLS, TLSImplicit:
	case TLSNone:
		if m.Secret && !(s.AllowInsecureLoopback && isLoopback(s.Host)) {
			return connectors.Permanentf(ErrTypeInsecure, "smtp %s: this message carries a password and the server is configured with tls: none: refused (use starttls or implicit)", s.Addr())
		}
		if (s.Username != "" || s.Password != "") && !isLoopback(s.Host) {
			return connectors.Permanentf(ErrTypeInsecure, "smtp %s: refusing to authenticate without TLS (tls: none)", s.Addr())
		}
	default:
		return connectors.Permanentf(ErrTypeInvalid, "smtp %s: tls %q: want starttls, implicit or none", s.Addr(), s.TLS)
	}
	if s.Host == "" {
		return connectors.Permanentf(ErrTypeInvalid, "smtp: no host")
	}
	if m.From == "" {
		return connectors.Permanentf(ErrTypeInvalid, "smtp %s: no sender (from)", s.Addr())
	}
	if len(m.To)+len(m.Cc)+len(m.Bcc) == 0 {
		return connectors.Permanentf(ErrTypeInvalid, "smtp %s: no recipients", s.Addr())
	}
	if m.Text == "" && m.HTML == "" {
		return connectors.Permanentf(ErrTypeInvalid, "smtp %s: empty message", s.Addr())
	}
	return nil
}

// Message builds the MIME message: text, HTML or both as
// multipart/alternative.
func (m Email) Message() (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return nil, connectors.Permanentf(ErrTypeInvalid, "from: %v", err)
	}
	for _, set := range []struct {
		name  string
		addrs []string
		fn    func(...string) error
	}{{"to", m.To, msg.To}, {"cc", m.Cc, msg.Cc}, {"bcc", m.Bcc, msg.Bcc}} {
		if len(set.addrs) == 0 {
			continue
		}
		if err := set.fn(set.addrs...); err != nil {
			// The address itself is PII: name the field only.
			return nil, connectors.Permanentf(ErrTypeInvalid, "%s: not a valid e-mail address list", set.name)
		}
	}
	msg.Subject(m.Subject)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	} else {
		msg.SetMessageID()
	}
	msg.SetDate()
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// Send delivers m through s. A message that carries a secret never leaves
// without TLS: with starttls a server that does not offer STARTTLS is
// refused before MAIL FROM, so nothing is sent.
func (s SMTP) Send(ctx context.Context, m Email) error {
	if err := s.Check(m); err != nil {
		return err
	}
	msg, err := m.Message()
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tlsCfg := s.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		tlsCfg = tlsCfg.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = s.Host
	}
	opts := []mail.Option{mail.WithTimeout(timeout), mail.WithTLSConfig(tlsCfg)}
	switch s.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	opts = append(opts, mail.WithPort(s.port()))
	if s.HELO != "" {
		opts = append(opts, mail.WithHELO(s.HELO))
	}
	if s.Username != "" || s.Password != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(s.Username), mail.WithPassword(s.Password))
	}
	c, err := mail.NewClient(s.Host, opts...)
	if err != nil {
		return connectors.Permanentf(ErrTypeInvalid, "smtp %s: %v", s.Addr(), err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(s.Addr(), s.TLS, err)
	}
	return nil
}

// classify turns a go-mail error into a connectors error with a message
// an operator can act on.
func classify(addr, mode string, err error) error {
	msg := err.Error()
	var tp *textproto.Error
	var se *mail.SendError
	var cv *tls.CertificateVerificationError
	switch {
	case strings.Contains(msg, "does not support STARTTLS"):
		return connectors.Permanentf(ErrTypeInsecure, "smtp %s: the server does not offer STARTTLS; refusing to send without TLS (tls: %s): nothing was sent", addr, orDefault(mode))
	case errors.As(err, &cv) || strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: "):
		return connectors.Permanentf(ErrTypeInsecure, "smtp %s: TLS failed: %v", addr, err)
	case errors.As(err, &se) && se.IsTemp():
		return connectors.Transient(fmt.Errorf("smtp %s: temporary failure: %w", addr, err))
	case errors.As(err, &tp) && tp.Code >= 500:
		return connectors.Permanentf(ErrTypeRejected, "smtp %s: %d %s", addr, tp.Code, tp.Msg)
	case errors.As(err, &se) && se.ErrorCode() >= 500:
		return connectors.Permanentf(ErrTypeRejected, "smtp %s: %v", addr, err)
	case errors.Is(err, context.Canceled):
		return err
	}
	return connectors.Transient(fmt.Errorf("smtp %s: %w", addr, err))
}

func orDefault(mode string) string {
	if mode == "" {
		return TLSStartTLS
	}
	return mode
}
