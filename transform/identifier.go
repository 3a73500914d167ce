package transform

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Limits of an e-mail-shaped identifier (RFC 5321 §4.5.3.1, RFC 1035 §2.3.4).
const (
	MaxLocalPart   = 64  // octets before the @
	MaxDomain      = 253 // octets after it
	MaxDomainLabel = 63  // octets between dots
)

// CheckIdentifier reports why v cannot be a unique identifier (a login,
// a user name, an e-mail): nil when it can. It is the rule every target
// shares; a connector's description adds its own limits
// (connectors.IdentifierRules), and policy.Policy.CheckIdentifier applies
// both. Names that ASCII or LOWER empty ("王小明" → "") would otherwise
// give accounts such as ".@example.com"; quotes, backslashes and control
// characters break the targets' filters (SCIM, Okta search).
//
// A value with an @ is an address: its local part is 1–64 octets with no
// white space, no character RFC 5322 allows only inside quotes and no
// leading, trailing or double dot; its domain is dot-separated labels of
// 1–63 letters, digits or hyphens (ASCII: an internationalized domain is
// written in its xn-- form), none starting or ending with a hyphen, 253
// octets in all.
func CheckIdentifier(v string) error {
	if v == "" {
		return errors.New("it is empty")
	}
	if strings.TrimSpace(v) != v {
		return errors.New("it starts or ends with white space")
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) }); i >= 0 {
		return errors.New("it contains a control character")
	}
	// A double quote ends the value in SCIM filters and Okta searches. An
	// apostrophe stays: mary.o'brien@acme.com is a valid address and a
	// common name.
	if strings.ContainsRune(v, '"') {
		return errors.New("it contains a quote")
	}
	if strings.ContainsRune(v, '\\') {
		return errors.New("it contains a backslash")
	}
	local, domain, email := cut(v)
	if email && domain == "" {
		return errors.New("it has nothing after @")
	}
	if !strings.ContainsFunc(local, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
		if email {
			return errors.New("it has no letter or digit before @")
		}
		return errors.New("it has no letter or digit")
	}
	if !email {
		return nil
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return errors.New("the part before @ starts or ends with a dot, or has two in a row")
	}
	if len(local) > MaxLocalPart {
		return fmt.Errorf("the part before @ is %d octets long (at most %d)", len(local), MaxLocalPart)
	}
	if i := strings.IndexFunc(local, unicode.IsSpace); i >= 0 {
		return errors.New("the part before @ contains white space")
	}
	// RFC 5322 specials: allowed only in a quoted local part, which no
	// target accepts as a login.
	if i := strings.IndexAny(local, "()<>[]:;@,"); i >= 0 {
		return fmt.Errorf("the part before @ contains %q", local[i])
	}
	return checkDomain(domain)
}

// checkDomain is the host name rule of RFC 1035 §2.3.1 as RFC 1123 relaxed
// it (a label may start with a digit).
func checkDomain(d string) error {
	if len(d) > MaxDomain {
		return fmt.Errorf("the domain is %d octets long (at most %d)", len(d), MaxDomain)
	}
	for _, label := range strings.Split(d, ".") {
		switch {
		case label == "":
			return fmt.Errorf("the domain %q has an empty label", d)
		case len(label) > MaxDomainLabel:
			return fmt.Errorf("the domain %q has a label of %d octets (at most %d)", d, len(label), MaxDomainLabel)
		case strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-"):
			return fmt.Errorf("the domain %q has a label that starts or ends with a hyphen", d)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("the domain %q contains %q (letters, digits and hyphens only; an internationalized domain in its xn-- form)", d, r)
			}
		}
	}
	return nil
}

// cut splits an e-mail-shaped identifier at its last @.
func cut(v string) (local, domain string, email bool) {
	i := strings.LastIndexByte(v, '@')
	if i < 0 {
		return v, "", false
	}
	return v[:i], v[i+1:], true
}
