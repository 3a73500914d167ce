// Package approval signs and verifies the links in approval mails: an
// approver opens one to see what is asked and answers with one of two
// buttons. A link names one request, one approval round and one approver,
// expires, and is single-use: the request's workflow refuses a second
// answer with the same link (its ID is recorded with the decision).
//
// The HMAC key (JML_APPROVAL_KEY) lives only in the memory of the worker
// that signs (the mail activity) and of starter serve, which verifies;
// history holds the link's ID, never the link.
package approval

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KeyEnv names the environment variable holding the HMAC key.
const KeyEnv = "JML_APPROVAL_KEY"

// MinKeyLen is the shortest key accepted (bytes).
const MinKeyLen = 32

// Link is what a signed link says.
type Link struct {
	// Workflow is the request's workflow ID (request/<id>).
	Workflow string `json:"w"`
	// Round numbers the approval (1; an extension asks again).
	Round int `json:"r"`
	// Approver is who the link was sent to (an e-mail address).
	Approver string `json:"a"`
	// Expires is when the link stops working (Unix seconds).
	Expires int64 `json:"e"`
	// Nonce makes each link (a reminder's too) distinct.
	Nonce string `json:"n"`
}

// Errors of Verify. None says which part of a bad token was wrong beyond
// these, so a forger learns nothing.
var (
	ErrMalformed = errors.New("approval link: malformed")
	ErrForged    = errors.New("approval link: signature does not match")
	ErrExpired   = errors.New("approval link: expired")
	ErrNoKey     = errors.New("approval link: no signing key configured (" + KeyEnv + ")")
)

// Key checks a key read from the environment.
func Key(v string) ([]byte, error) {
	if v == "" {
		return nil, ErrNoKey
	}
	if len(v) < MinKeyLen {
		return nil, fmt.Errorf("%s: at least %d characters", KeyEnv, MinKeyLen)
	}
	return []byte(v), nil
}

var enc = base64.RawURLEncoding

// Sign returns the token for l: base64url(JSON) "." base64url(HMAC-SHA256).
func Sign(key []byte, l Link) (string, error) {
	if len(key) == 0 {
		return "", ErrNoKey
	}
	body, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	p := enc.EncodeToString(body)
	return p + "." + enc.EncodeToString(mac(key, p)), nil
}

func mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("jml-approval-v1."))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Verify checks token's signature and expiry at now and returns its link.
func Verify(key []byte, token string, now time.Time) (Link, error) {
	if len(key) == 0 {
		return Link{}, ErrNoKey
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok || p == "" || sig == "" || len(token) > 4096 {
		return Link{}, ErrMalformed
	}
	got, err := enc.DecodeString(sig)
	if err != nil {
		return Link{}, ErrMalformed
	}
	if !hmac.Equal(got, mac(key, p)) {
		return Link{}, ErrForged
	}
	body, err := enc.DecodeString(p)
	if err != nil {
		return Link{}, ErrMalformed
	}
	var l Link
	if err := json.Unmarshal(body, &l); err != nil || l.Workflow == "" || l.Approver == "" || l.Round < 1 {
		return Link{}, ErrMalformed
	}
	if now.Unix() >= l.Expires {
		return l, ErrExpired
	}
	return l, nil
}

// ID names a token without revealing it: what the workflow records to
// refuse a second use.
func ID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:12])
}
