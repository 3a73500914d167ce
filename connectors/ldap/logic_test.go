package ldap

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf16"

	ldapv3 "github.com/go-ldap/ldap/v3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

func TestTemplateEscapesValues(t *testing.T) {
	tpl, err := parseTemplate("OU={department},OU=Staff,DC=corp,DC=example")
	require.NoError(t, err)
	assert.Equal(t, []string{"department"}, tpl.names())
	tests := []struct{ dept, want string }{
		{"Sales", `OU=Sales,OU=Staff,DC=corp,DC=example`},
		{"R&D, Europe", `OU=R&D\, Europe,OU=Staff,DC=corp,DC=example`},
		{`A+B "C" <D>; E\F`, `OU=A\+B \"C\" \<D\>\; E\\F,OU=Staff,DC=corp,DC=example`},
		{"#1 team", `OU=\#1 team,OU=Staff,DC=corp,DC=example`},
		{"  Ops  ", `OU=Ops,OU=Staff,DC=corp,DC=example`}, // trimmed, not escaped
		{"Zoë's Ünit", `OU=Zoë's Ünit,OU=Staff,DC=corp,DC=example`},
	}
	for _, tt := range tests {
		dn, err := tpl.renderFor(connectors.Attributes{"department": tt.dept})
		require.NoError(t, err, tt.dept)
		assert.Equal(t, tt.want, dn)
		parsed, err := ldapv3.ParseDN(dn)
		require.NoError(t, err)
		assert.Len(t, parsed.RDNs, 4, "%q stays one RDN", tt.dept)
		assert.Equal(t, strings.TrimSpace(tt.dept), parsed.RDNs[0].Attributes[0].Value)
	}
	_, err = tpl.renderFor(connectors.Attributes{})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, err.Error(), "{department} is empty")
}

func TestTemplateRefusesBadTemplates(t *testing.T) {
	for _, src := range []string{"", "OU={department,DC=x", "OU=}x,DC=x", "OU={},DC=x", "not a dn {department}"} {
		_, err := parseTemplate(src)
		assert.Error(t, err, src)
	}
}

func TestUnicodePwd(t *testing.T) {
	got := unicodePwd(secret.New("Pä$s1"))
	b := []byte(got)
	require.Len(t, b, 2*7)
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8 // little-endian
	}
	assert.Equal(t, `"Pä$s1"`, string(utf16.Decode(u)))
	assert.Equal(t, []byte{'"', 0, 'P', 0, 0xe4, 0}, b[:6])
}

func TestGUIDRoundTrip(t *testing.T) {
	// objectGUID bytes as AD sends them and the string AD shows.
	raw := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	s := guidString(raw)
	assert.Equal(t, "00112233-4455-6677-8899-aabbccddeeff", s)
	assert.Equal(t, raw, guidBytes(uuid.MustParse(s)))
	assert.Equal(t, `(objectGUID=\33\22\11\00\55\44\77\66\88\99\aa\bb\cc\dd\ee\ff)`, adSchema.idFilter(s))
	assert.Equal(t, "(entryUUID=00112233-4455-6677-8899-aabbccddeeff)", openLDAPSchema.idFilter(strings.ToUpper(s)))
	assert.Equal(t, `(objectGUID=preview.ADUser)`, adSchema.idFilter("preview.ADUser"))
}

func TestUserAccountControlBits(t *testing.T) {
	c := &Connector{cfg: Config{Flavour: ActiveDirectory}, schema: adSchema}
	for _, tt := range []struct {
		uac    string
		active bool
	}{{"512", true}, {"514", false}, {"66048", true}, {"66050", false}, {"", true}} {
		e := ldapv3.NewEntry("CN=x", map[string][]string{"userAccountControl": {tt.uac}})
		got, _ := c.active(e)
		assert.Equal(t, tt.active, got, tt.uac)
	}
	assert.Equal(t, 512, uacEnabled)
	assert.Equal(t, 514, uacDisabled)
	o := &Connector{cfg: Config{Flavour: OpenLDAP}, schema: openLDAPSchema}
	locked, _ := o.active(ldapv3.NewEntry("uid=x", map[string][]string{"pwdAccountLockedTime": {lockedForever}}))
	assert.False(t, locked)
}

func ldapErr(code uint16, msg string) error { return ldapv3.NewError(code, errors.New(msg)) }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		pw   bool // a password operation
		want func(*testing.T, error)
	}{
		{"exists", ldapErr(68, "00000524: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS)"), false, is(connectors.ErrConflict)},
		{"no such object", ldapErr(32, "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT)"), false, is(connectors.ErrNotFound)},
		{"bad credentials", ldapErr(49, "80090308: LdapErr: DSID-0C090439, comment: AcceptSecurityContext error, data 52e, v4563"), false, permanent(TypeAuth, "invalid credentials")},
		{"disabled bind", ldapErr(49, "AcceptSecurityContext error, data 533, v1db1"), false, permanent(TypeAuth, "account disabled")},
		{"no rights", ldapErr(50, "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS)"), false, permanent(TypeAuth, "lacks the right")},
		{"busy", ldapErr(51, "busy"), false, transient},
		{"unavailable", ldapErr(52, "unavailable"), false, transient},
		{"network", ldapErr(ldapv3.ErrorNetwork, "connection reset"), false, transient},
		{"schema", ldapErr(17, "unknown attribute employeeID"), false, permanent(TypeSchema, "schema")},
		{"samba password", ldapErr(19, "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 14 characters!"), true,
			permanent(TypePasswordPolicy, "the password is too short. It should be equal or longer than 14 characters")},
		{"windows password", ldapErr(53, "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0"), true,
			permanent(TypePasswordPolicy, "minimum length, complexity, history or minimum age")},
		{"ppolicy password", ldapErr(19, "Password fails quality checking policy"), true, permanent(TypePasswordPolicy, "quality check")},
		{"history", ldapErr(19, "Password is in history of old passwords"), true, permanent(TypePasswordPolicy, "used before")},
		{"constraint not a password", ldapErr(19, "00002082: AtrErr: DSID-03151904, #1: 0: 00002082: DSID-03151904, problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 90290 (sAMAccountName)"), true, permanent(TypeRefused, "")},
		{"password without TLS", ldapErr(53, "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0"), true, permanent(TypeInsecure, "ldaps://")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("op", tt.err)
			if tt.pw {
				err = classifyPasswordError("op", err, tt.name != "password without TLS")
			}
			tt.want(t, err)
		})
	}
}

func is(target error) func(*testing.T, error) {
	return func(t *testing.T, err error) { assert.ErrorIs(t, err, target) }
}

func permanent(typ, text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		var pe *connectors.PermanentError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, typ, pe.Type, err.Error())
		assert.Contains(t, err.Error(), text)
	}
}

func transient(t *testing.T, err error) {
	var te *connectors.TransientError
	assert.ErrorAs(t, err, &te)
}

func TestNewRefusesPlainLDAPOutsideDev(t *testing.T) {
	base := Config{URL: "ldap://dc1.corp.example", TLS: TLSNone, BindDN: "CN=svc,DC=corp,DC=example",
		BindPassword: secret.New("x"), BaseDN: "DC=corp,DC=example", UserContainer: "OU=Staff,DC=corp,DC=example"}
	_, err := New(base)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused outside --dev")
	base.AllowInsecure = true
	_, err = New(base)
	require.NoError(t, err)

	for _, bad := range []Config{
		{URL: "http://dc1", BindDN: "x", BindPassword: secret.New("x"), BaseDN: "DC=x", UserContainer: "DC=x"},
		{URL: "ldaps://dc1", TLS: TLSNone, BindDN: "x", BindPassword: secret.New("x"), BaseDN: "DC=x", UserContainer: "DC=x"},
		{URL: "ldaps://dc1", BindDN: "x", BaseDN: "DC=x", UserContainer: "DC=x"},
		{URL: "ldaps://dc1", BindDN: "x", BindPassword: secret.New("x"), BaseDN: "not a dn", UserContainer: "DC=x"},
		{URL: "ldaps://dc1", BindDN: "x", BindPassword: secret.New("x"), BaseDN: "DC=x", UserContainer: "OU={dept"},
	} {
		_, err := New(bad)
		assert.Error(t, err, "%+v", bad.URL)
	}
	assert.NotContains(t, Config{BindPassword: secret.New("hunter2")}.String(), "hunter2")
}

func TestSAMAccountNameRules(t *testing.T) {
	d := DescribeAD()
	assert.NoError(t, d.CheckIdentifier("login", "jsmith"))
	assert.NoError(t, d.CheckIdentifier("login", strings.Repeat("a", 20)))
	assert.ErrorContains(t, d.CheckIdentifier("login", strings.Repeat("a", 21)), "at most 20")
	assert.ErrorContains(t, d.CheckIdentifier("sam_account_name", "j[smith]"), "may not contain")
	assert.ErrorContains(t, d.CheckIdentifier("login", "john@corp"), "may not contain")
	assert.NoError(t, d.CheckIdentifier("user_principal_name", "john.smith.long.name@corp.example"), "the rule is the login's")
}

func TestGeneratedPasswordHasEveryClass(t *testing.T) {
	for range 50 {
		pw := generatePassword().Reveal()
		assert.Len(t, pw, 24)
		assert.True(t, strings.ContainsAny(pw, "abcdefghijkmnopqrstuvwxyz"))
		assert.True(t, strings.ContainsAny(pw, "ABCDEFGHJKLMNPQRSTUVWXYZ"))
		assert.True(t, strings.ContainsAny(pw, "23456789"))
		assert.True(t, strings.ContainsAny(pw, "!#%+-.=?@^_~"))
	}
}

func TestTemplateSuffix(t *testing.T) {
	for src, want := range map[string]string{
		"OU={department},OU=Staff,DC=corp,DC=example":              "OU=Staff,DC=corp,DC=example",
		"OU={department},OU={country},OU=Staff,DC=corp,DC=example": "OU=Staff,DC=corp,DC=example",
		"OU=Staff,DC=corp,DC=example":                              "OU=Staff,DC=corp,DC=example",
	} {
		tpl, err := parseTemplate(src)
		require.NoError(t, err)
		assert.Equal(t, want, tpl.suffix(), src)
	}
}

func TestSchemaNames(t *testing.T) {
	assert.Equal(t, []string{"cn", "commonName"}, schemaNames("( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519' SUP name )"))
	assert.Equal(t, []string{"employeeID"}, schemaNames("( 1.2.840.113556.1.4.35 NAME 'employeeID' SYNTAX '1.3.6.1.4.1.1466.115.121.1.15' SINGLE-VALUE )"))
}
