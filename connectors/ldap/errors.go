package ldap

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
)

// classify turns an error of operation what into the connectors' classes:
// entryAlreadyExists is a conflict, noSuchObject not found, bad
// credentials and missing rights an auth error, busy and unavailable and a
// broken connection retried, a refused password a password-policy error
// naming the rule; any other answer of the directory is permanent (it
// will answer the same again).
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *connectors.PermanentError
	var te *connectors.TransientError
	if errors.As(err, &pe) || errors.As(err, &te) || errors.Is(err, connectors.ErrNotFound) || errors.Is(err, connectors.ErrConflict) {
		return err
	}
	var le *ldapv3.Error
	if !errors.As(err, &le) {
		// A broken connection, a timeout, a refused dial: retried.
		return connectors.Transient(fmt.Errorf("ldap: %s: %w", what, err))
	}
	msg := diagnostic(le)
	perm := func(typ, format string, args ...any) error {
		return &connectors.PermanentError{Type: typ, Err: fmt.Errorf("ldap: %s: "+format+": %w", append([]any{what}, append(args, le)...)...)}
	}
	switch le.ResultCode {
	case ldapv3.LDAPResultEntryAlreadyExists:
		return fmt.Errorf("ldap: %s: %w (%s)", what, connectors.ErrConflict, msg)
	case ldapv3.LDAPResultNoSuchObject:
		return fmt.Errorf("ldap: %s: %w (%s)", what, connectors.ErrNotFound, msg)
	case ldapv3.LDAPResultInvalidCredentials, ldapv3.LDAPResultInappropriateAuthentication:
		return perm(TypeAuth, "invalid credentials%s", adBindReason(msg))
	case ldapv3.LDAPResultInsufficientAccessRights:
		return perm(TypeAuth, "the service account lacks the right to do this")
	case ldapv3.LDAPResultStrongAuthRequired, ldapv3.LDAPResultConfidentialityRequired:
		return perm(TypeInsecure, "the directory requires TLS")
	case ldapv3.LDAPResultBusy, ldapv3.LDAPResultUnavailable, ldapv3.LDAPResultTimeLimitExceeded,
		ldapv3.LDAPResultAdminLimitExceeded, ldapv3.LDAPResultServerDown, ldapv3.LDAPResultTimeout,
		ldapv3.ErrorNetwork, ldapv3.LDAPResultLoopDetect, ldapv3.LDAPResultOther:
		return connectors.Transient(fmt.Errorf("ldap: %s: %w", what, err))
	case ldapv3.LDAPResultUndefinedAttributeType, ldapv3.LDAPResultObjectClassViolation,
		ldapv3.LDAPResultInvalidAttributeSyntax, ldapv3.LDAPResultNamingViolation, ldapv3.LDAPResultInvalidDNSyntax:
		return perm(TypeSchema, "the directory's schema refused it")
	}
	return perm(TypeRefused, "refused")
}

// classifyPassword is classify for an operation that sets a password: a
// constraint violation or AD's 0000052D is the password policy refusing
// the password, named by its rule; unwillingToPerform on an unencrypted
// connection is the missing TLS.
func classifyPassword(what string, err error, secured bool) error {
	var le *ldapv3.Error
	if !errors.As(err, &le) {
		return classify(what, err)
	}
	msg := diagnostic(le)
	switch {
	case le.ResultCode == ldapv3.LDAPResultConstraintViolation || strings.Contains(strings.ToUpper(msg), "0000052D"):
		return connectors.Permanentf(TypePasswordPolicy, "ldap: %s: the directory's password policy refused the password: %s", what, PasswordRule(msg))
	case le.ResultCode == ldapv3.LDAPResultUnwillingToPerform && !secured:
		return connectors.Permanentf(TypeInsecure, "ldap: %s: the directory will not take a password over an unencrypted connection: use ldaps:// or StartTLS (%s)", what, msg)
	}
	return classify(what, le)
}

// diagnostic is the directory's diagnostic message, without the result
// code go-ldap puts before it.
func diagnostic(le *ldapv3.Error) string {
	if le.Err == nil {
		return ldapv3.LDAPResultCodeMap[le.ResultCode]
	}
	return strings.TrimSpace(le.Err.Error())
}

var sambaRule = regexp.MustCompile(`check_password_restrictions: (.*?)!?$`)

// PasswordRule names the password rule a refusal text says was broken:
// Samba's check_password_restrictions text, the OpenLDAP ppolicy's, or for
// Windows (whose text names none) the rules it may be.
func PasswordRule(msg string) string {
	if m := sambaRule.FindStringSubmatch(msg); m != nil {
		return strings.TrimSpace(m[1])
	}
	l := strings.ToLower(msg)
	for _, r := range []struct{ text, rule string }{
		{"too short", "the password is too short"},
		{"quality", "the password fails the quality check (complexity)"},
		{"history", "the password was used before (password history)"},
		{"too young", "the password was changed too recently (minimum password age)"},
		{"complexity", "the password does not meet the complexity requirements"},
	} {
		if strings.Contains(l, r.text) {
			return r.rule
		}
	}
	return "a rule of the domain's password policy (minimum length, complexity, history or minimum age; Active Directory does not say which): " + msg
}

// adBindReason is what AD's data code in a bind failure means.
func adBindReason(msg string) string {
	for code, why := range map[string]string{
		"data 52e": "", "data 525": ": no such user", "data 530": ": not permitted to log on at this time",
		"data 531": ": not permitted to log on at this workstation", "data 532": ": password expired",
		"data 533": ": account disabled", "data 701": ": account expired", "data 773": ": must change password",
		"data 775": ": account locked out",
	} {
		if strings.Contains(msg, code) {
			return why
		}
	}
	return ""
}
