package rest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/jml-dev/jml/secret"
)

// redactor knows the secrets of one request (vault values, credential
// values, tokens) in the forms they may take on the wire, and blanks them.
type redactor struct{ vals []string }

func newRedactor(ss []secret.Secret) *redactor {
	r := &redactor{}
	for _, s := range ss {
		r.add(s.Reveal())
	}
	return r
}

func (r *redactor) add(vals ...string) {
	for _, v := range vals {
		if v == "" {
			continue
		}
		j, _ := json.Marshal(v)
		for _, form := range []string{v, string(j[1 : len(j)-1]), escapeURLValue(v), url.QueryEscape(v)} {
			if !slices.Contains(r.vals, form) {
				r.vals = append(r.vals, form)
			}
		}
	}
	// Longest first, so a secret containing another is blanked whole.
	slices.SortFunc(r.vals, func(a, b string) int { return len(b) - len(a) })
}

func (r *redactor) in(s string) bool {
	return slices.ContainsFunc(r.vals, func(v string) bool { return strings.Contains(s, v) })
}

func (r *redactor) s(s string) string {
	for _, v := range r.vals {
		s = strings.ReplaceAll(s, v, secret.Redacted)
	}
	return s
}

// url is u for messages: no userinfo, secrets blanked.
func (r *redactor) url(u *url.URL) string {
	return r.s(u.Redacted())
}

func isTLSError(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &record)
}
