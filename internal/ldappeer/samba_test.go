package ldappeer_test

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/ldappeer"
)

func TestSambaUserBindsWhileEnabled(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSamba(t)
	c := s.Dial(t)

	dn := "CN=Ada Lovelace," + s.StaffDN
	const pw = "Correct-Horse-42"
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{"alovelace"})
	add.Attribute("userPrincipalName", []string{"alovelace@jml.test"})
	add.Attribute("unicodePwd", []string{ldappeer.UnicodePwd(pw)})
	add.Attribute("userAccountControl", []string{"512"})
	require.NoError(t, c.Add(add))

	require.NoError(t, s.Bind("alovelace@jml.test", pw), "enabled account with its password")
	require.Error(t, s.Bind("alovelace@jml.test", "Wrong-Horse-42"), "wrong password")

	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("userAccountControl", []string{"514"})
	require.NoError(t, c.Modify(mod))
	err := s.Bind("alovelace@jml.test", pw)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials), "disabled account: %v", err)
	require.Contains(t, err.Error(), "data 533", "AD says the account is disabled")
}

func TestSambaStartTLSAndPasswordPolicy(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSamba(t)
	c, err := s.DialURL(s.PlainURL)
	require.NoError(t, err)
	defer c.Close()
	err = c.Bind(s.AdminUPN, s.AdminPassword)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired), "a simple bind without TLS: %v", err)
	require.NoError(t, c.StartTLS(s.TLSConfig()))
	require.NoError(t, c.Bind(s.AdminUPN, s.AdminPassword))

	s.SetPasswordPolicy(t, ldappeer.PasswordPolicy{Complexity: true, MinLength: 14})
	add := ldap.NewAddRequest("CN=Short Pw,"+s.StaffDN, nil)
	add.Attribute("objectClass", []string{"user"})
	add.Attribute("sAMAccountName", []string{"shortpw"})
	add.Attribute("unicodePwd", []string{ldappeer.UnicodePwd("Short-Pw-1")})
	add.Attribute("userAccountControl", []string{"512"})
	err = c.Add(add)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultConstraintViolation), "a 10-character password under a 14-character minimum: %v", err)
}

func TestSambaAllowPlainBind(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSamba(t, ldappeer.AllowPlainBind(), ldappeer.Bare())
	c, err := s.DialURL(s.PlainURL)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Bind(s.AdminUPN, s.AdminPassword))
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(ou=Staff)", nil, nil))
	require.NoError(t, err)
	require.Empty(t, res.Entries, "Bare starts without the Staff OU")
}
