package ldappeer_test

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/ldappeer"
)

func TestSlapdUserLockGroupsAndPages(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSlapd(t)
	c := s.Dial(t)

	dn := "uid=alovelace," + s.StaffDN
	const pw = "Correct-Horse-42"
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{"alovelace"})
	add.Attribute("cn", []string{"Ada Lovelace"})
	add.Attribute("sn", []string{"Lovelace"})
	add.Attribute("employeeNumber", []string{"E1"})
	add.Attribute("userPassword", []string{pw})
	require.NoError(t, c.Add(add))
	require.NoError(t, s.Bind(dn, pw), "the user binds with its password")

	// ppolicy_hash_cleartext: the directory keeps a hash, not the password.
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userPassword", "entryUUID"}, nil))
	require.NoError(t, err)
	require.NotEqual(t, pw, res.Entries[0].GetAttributeValue("userPassword"))
	require.NotEmpty(t, res.Entries[0].GetAttributeValue("entryUUID"))

	// memberof: a group's member reads back as the user's memberOf.
	group := "cn=engineers," + s.GroupsDN
	g := ldap.NewAddRequest(group, nil)
	g.Attribute("objectClass", []string{"groupOfNames"})
	g.Attribute("cn", []string{"engineers"})
	g.Attribute("member", []string{dn})
	require.NoError(t, c.Add(g))
	res, err = c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"memberOf"}, nil))
	require.NoError(t, err)
	require.Equal(t, []string{group}, res.Entries[0].GetAttributeValues("memberOf"))

	// ppolicy lockout: pwdAccountLockedTime 000001010000Z locks until cleared.
	lock := ldap.NewModifyRequest(dn, nil)
	lock.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
	require.NoError(t, c.Modify(lock))
	err = s.Bind(dn, pw)
	require.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials), "locked account: %v", err)

	// Paged results (RFC 2696).
	for i := range 7 {
		u := ldap.NewAddRequest(fmt.Sprintf("uid=p%d,%s", i, s.StaffDN), nil)
		u.Attribute("objectClass", []string{"inetOrgPerson"})
		u.Attribute("uid", []string{fmt.Sprintf("p%d", i)})
		u.Attribute("cn", []string{fmt.Sprintf("P %d", i)})
		u.Attribute("sn", []string{"P"})
		require.NoError(t, c.Add(u))
	}
	assertPaged(t, c, s.StaffDN, "(objectClass=inetOrgPerson)", 8)
}

func TestSlapdStartTLS(t *testing.T) {
	t.Parallel()
	s := ldappeer.StartSlapd(t, ldappeer.Bare())
	c, err := s.DialURL(s.PlainURL)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.StartTLS(s.TLSConfig()))
	require.NoError(t, c.Bind(s.AdminDN, s.AdminPassword))
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(ou=Staff)", nil, nil))
	require.NoError(t, err)
	require.Empty(t, res.Entries, "Bare starts without the Staff OU")
}

// assertPaged reads filter under base three entries a page and checks that
// more than one page came back and want entries in all.
func assertPaged(t *testing.T, c *ldap.Conn, base, filter string, want int) {
	t.Helper()
	paging := ldap.NewControlPaging(3)
	var entries, pages int
	for {
		res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, []string{"dn"}, []ldap.Control{paging}))
		require.NoError(t, err)
		entries += len(res.Entries)
		pages++
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		require.NotNil(t, ctrl, "the server answers with a paging control")
		if len(ctrl.Cookie) == 0 {
			break
		}
		paging.SetCookie(ctrl.Cookie)
	}
	require.Equal(t, want, entries)
	require.Greater(t, pages, 1)
}
