package transform

import (
	"errors"
	"strings"
	"unicode"
)

// CheckIdentifier reports why v cannot be a unique identifier (a login,
// a user name, an e-mail): nil when it can. Names that ASCII or LOWER
// empty ("王小明" → "") would otherwise give accounts such as
// ".@example.com"; quotes, backslashes and control characters break the
// targets' filters (SCIM, Okta search) and are rejected by most of them.
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
	if email && (strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..")) {
		return errors.New("the part before @ starts or ends with a dot, or has two in a row")
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
