package ldappeer_test

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/ldappeer"
)

// The service account's delegated rights cover every write jml makes — and
// nothing outside its containers.
func TestSambaServiceAccountRights(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSamba(t)
	s.CreateOU(t, "OU=Sales,"+s.StaffDN)
	svc := s.ServiceAccount(t)
	c, err := s.DialURL(s.URL)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Bind(svc.BindName, svc.Password))

	// Joiner: create in a department OU under Staff, with a password, enabled.
	dn := "CN=Ada Lovelace,OU=Sales," + s.StaffDN
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{"alovelace"})
	add.Attribute("userPrincipalName", []string{"alovelace@jml.test"})
	add.Attribute("employeeID", []string{"E1"})
	add.Attribute("unicodePwd", []string{ldappeer.UnicodePwd("First-Pass-123")})
	add.Attribute("userAccountControl", []string{"512"})
	require.NoError(t, c.Add(add))
	require.NoError(t, s.Bind("alovelace@jml.test", "First-Pass-123"))

	// Reset password, must change at next logon, attributes.
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("unicodePwd", []string{ldappeer.UnicodePwd("Second-Pass-456")})
	mod.Replace("title", []string{"Engineer"})
	require.NoError(t, c.Modify(mod))
	mod = ldap.NewModifyRequest(dn, nil)
	mod.Replace("pwdLastSet", []string{"0"})
	require.NoError(t, c.Modify(mod))

	// Groups: create one in the Groups OU, add and remove the user.
	group := "CN=Engineers," + s.GroupsDN
	g := ldap.NewAddRequest(group, nil)
	g.Attribute("objectClass", []string{"top", "group"})
	g.Attribute("sAMAccountName", []string{"engineers"})
	require.NoError(t, c.Add(g))
	mod = ldap.NewModifyRequest(group, nil)
	mod.Add("member", []string{dn})
	require.NoError(t, c.Modify(mod))
	mod = ldap.NewModifyRequest(group, nil)
	mod.Delete("member", []string{dn})
	require.NoError(t, c.Modify(mod))

	// Leaver: disable, move to the Disabled OU; the bind fails.
	mod = ldap.NewModifyRequest(dn, nil)
	mod.Replace("userAccountControl", []string{"514"})
	require.NoError(t, c.Modify(mod))
	require.NoError(t, c.ModifyDN(ldap.NewModifyDNRequest(dn, "CN=Ada Lovelace", true, s.DisabledDN)))
	require.Error(t, s.Bind("alovelace@jml.test", "Second-Pass-456"))
	// Delete after the grace period.
	require.NoError(t, c.Del(ldap.NewDelRequest("CN=Ada Lovelace,"+s.DisabledDN, nil)))

	// Outside its containers it is a plain user.
	out := ldap.NewAddRequest("CN=Mallory,"+s.UsersDN, nil)
	out.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	out.Attribute("sAMAccountName", []string{"mallory"})
	err = c.Add(out)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights), "add under CN=Users: %v", err)
	mod = ldap.NewModifyRequest(s.AdminDN, nil)
	mod.Replace("unicodePwd", []string{ldappeer.UnicodePwd("Hijacked-Pass-1")})
	err = c.Modify(mod)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights), "reset the Administrator's password: %v", err)
}

func TestSlapdServiceAccountRights(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSlapd(t)
	s.CreateOU(t, "ou=Sales,"+s.StaffDN)
	svc := s.ServiceAccount(t)
	c, err := s.DialURL(s.URL)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Bind(svc.BindName, svc.Password))

	// Joiner.
	dn := "uid=alovelace,ou=Sales," + s.StaffDN
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{"alovelace"})
	add.Attribute("cn", []string{"Ada Lovelace"})
	add.Attribute("sn", []string{"Lovelace"})
	add.Attribute("employeeNumber", []string{"E1"})
	add.Attribute("userPassword", []string{"First-Pass-123"})
	require.NoError(t, c.Add(add))
	require.NoError(t, s.Bind(dn, "First-Pass-123"))

	// It writes passwords but cannot read them.
	mod := ldap.NewModifyRequest(dn, nil)
	mod.Replace("userPassword", []string{"Second-Pass-456"})
	mod.Replace("title", []string{"Engineer"})
	require.NoError(t, c.Modify(mod))
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userPassword", "title"}, nil))
	require.NoError(t, err)
	require.Equal(t, "Engineer", res.Entries[0].GetAttributeValue("title"))
	require.Empty(t, res.Entries[0].GetAttributeValue("userPassword"))
	require.NoError(t, s.Bind(dn, "Second-Pass-456"))

	// Groups.
	group := "cn=engineers," + s.GroupsDN
	g := ldap.NewAddRequest(group, nil)
	g.Attribute("objectClass", []string{"groupOfNames"})
	g.Attribute("cn", []string{"engineers"})
	g.Attribute("member", []string{dn, svc.DN})
	require.NoError(t, c.Add(g))
	mod = ldap.NewModifyRequest(group, nil)
	mod.Delete("member", []string{dn})
	require.NoError(t, c.Modify(mod))

	// Leaver: lock, move to Disabled; the bind fails. Then delete.
	mod = ldap.NewModifyRequest(dn, nil)
	mod.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
	require.NoError(t, c.Modify(mod))
	require.NoError(t, c.ModifyDN(ldap.NewModifyDNRequest(dn, "uid=alovelace", true, s.DisabledDN)))
	moved := "uid=alovelace," + s.DisabledDN
	err = s.Bind(moved, "Second-Pass-456")
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials), "locked: %v", err)
	require.NoError(t, c.Del(ldap.NewDelRequest(moved, nil)))

	// Outside its containers it only reads.
	out := ldap.NewAddRequest("ou=Elsewhere,"+s.BaseDN, nil)
	out.Attribute("objectClass", []string{"organizationalUnit"})
	out.Attribute("ou", []string{"Elsewhere"})
	err = c.Add(out)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights), "add outside: %v", err)
	mod = ldap.NewModifyRequest(s.PolicyDN, nil)
	mod.Replace("pwdMaxFailure", []string{"0"})
	err = c.Modify(mod)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights), "change the policy: %v", err)
}
