package intake

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signature headers of jml's own scheme:
//
//	X-Jml-Timestamp: 1795339200            (Unix seconds when the request was signed)
//	X-Jml-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>
//
// BambooHR's native headers are accepted on /v1/events/bamboohr:
//
//	X-BambooHR-Timestamp: <timestamp>
//	X-BambooHR-Signature: <hex HMAC-SHA256(secret, raw body + timestamp)>
const (
	HeaderTimestamp       = "X-Jml-Timestamp"
	HeaderSignature       = "X-Jml-Signature"
	HeaderBambooTimestamp = "X-BambooHR-Timestamp"
	HeaderBambooSignature = "X-BambooHR-Signature"
)

// MaxSkew is how old (or how far in the future) a signed request may be.
const MaxSkew = 5 * time.Minute

// Sign returns the X-Jml-Timestamp and X-Jml-Signature values for body
// signed at t: what an HR system (or a test) sends.
func Sign(secret []byte, t time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	return timestamp, "v1=" + mac(secret, []byte(timestamp), []byte("."), body)
}

func mac(secret []byte, parts ...[]byte) string {
	m := hmac.New(sha256.New, secret)
	for _, p := range parts {
		m.Write(p)
	}
	return hex.EncodeToString(m.Sum(nil))
}

var (
	errNoCredentials = errors.New("missing signature: send X-Jml-Timestamp and X-Jml-Signature (or Authorization: Bearer)")
	errBadSignature  = errors.New("signature does not match the body")
	errBadToken      = errors.New("bearer token not accepted")
	errNotConfigured = errors.New("intake has no credentials configured (JML_INTAKE_HMAC_SECRET or JML_INTAKE_TOKEN)")
)

// authenticate checks the bearer token or the body signature. The error
// message goes to the caller: it never includes a secret or expected value.
func (s *server) authenticate(r *http.Request, body []byte, bamboo bool) error {
	if s.cfg.AllowUnauthenticated {
		return nil
	}
	if s.cfg.HMACSecret == "" && s.cfg.BearerToken == "" {
		return errNotConfigured
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.cfg.BearerToken != "" {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.BearerToken)) != 1 {
			return errBadToken
		}
		return nil
	}
	if s.cfg.HMACSecret == "" {
		return errNoCredentials
	}
	secret := []byte(s.cfg.HMACSecret)
	ts, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	var want string
	switch {
	case ts != "" || sig != "":
		want = "v1=" + mac(secret, []byte(ts), []byte("."), body)
	case bamboo && (r.Header.Get(HeaderBambooSignature) != ""):
		ts, sig = r.Header.Get(HeaderBambooTimestamp), r.Header.Get(HeaderBambooSignature)
		want = mac(secret, body, []byte(ts))
	default:
		return errNoCredentials
	}
	signed, err := parseTimestamp(ts)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return errBadSignature
	}
	// Checked after the signature so an attacker cannot probe the clock.
	if age := s.cfg.Now().Sub(signed); age > MaxSkew || age < -MaxSkew {
		return errStale{age}
	}
	return nil
}

type errStale struct{ age time.Duration }

func (e errStale) Error() string {
	return "stale timestamp: " + e.age.Abs().Round(time.Second).String() +
		" away from the server clock; more than 5m is refused (replay protection)"
}

// parseTimestamp reads Unix seconds or an RFC 3339 time.
func parseTimestamp(ts string) (time.Time, error) {
	if ts == "" {
		return time.Time{}, errors.New("missing timestamp header " + HeaderTimestamp)
	}
	if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700"} {
		if t, err := time.Parse(layout, ts); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("timestamp header is not Unix seconds or RFC 3339")
}
