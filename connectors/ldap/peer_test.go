package ldap_test

import (
	"context"
	"net/http"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/ldap"
	"github.com/jml-dev/jml/internal/ldappeer"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
)

// peerConfig is the connector's configuration for a directory peer.
func peerConfig(t *testing.T, f ldap.Flavour, d *ldappeer.Directory) ldap.Config {
	t.Helper()
	pool, err := ldap.LoadCAFile(d.CAFile)
	require.NoError(t, err)
	users := "OU={department}," + d.StaffDN
	if f == ldap.OpenLDAP {
		users = "ou={department}," + d.StaffDN
	}
	return ldap.Config{Flavour: f, URL: d.URL, BindDN: d.AdminDN, BindPassword: secret.New(d.AdminPassword),
		BaseDN: d.BaseDN, RootCAs: pool, UserContainer: users, GroupsContainer: d.GroupsDN,
		DisabledContainer: d.DisabledDN, MustChangePassword: true}
}

func newPeerConnector(t *testing.T, cfg ldap.Config) *ldap.Connector {
	t.Helper()
	c, err := ldap.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// readEntry reads dn's attrs as the administrator.
func readEntry(t *testing.T, d *ldappeer.Directory, dn string, attrs ...string) *goldap.Entry {
	t.Helper()
	es := d.SearchAll(t, dn, "(objectClass=*)", attrs...)
	require.Len(t, es, 1)
	return es[0]
}

// TestSambaLifecycle runs a joiner, a mover, a leaver, a rehire and a
// delete through the connector against a Samba AD DC, each checked by the
// directory itself: where the object is, its userAccountControl and
// pwdLastSet, its groups, and a bind as the user.
func TestSambaLifecycle(t *testing.T) {
	s := ldappeer.StartSamba(t)
	ctx := context.Background()
	for _, ou := range []string{"OU=Sales," + s.StaffDN, "OU=Engineering," + s.StaffDN} {
		s.CreateOU(t, ou)
	}
	c := newPeerConnector(t, peerConfig(t, ldap.ActiveDirectory, &s.Directory))

	boss, err := c.CreateAccount(ctx, connectors.Attributes{"login": "bboss", "first_name": "Big", "last_name": "Boss",
		"display_name": "Big Boss", "employee_id": "E0007", "department": "Sales"}, connectors.CreateOptions{})
	require.NoError(t, err)
	require.False(t, boss.Active, "an AD account without a password is created disabled")

	pw := secret.New("Joiner-Pass-2026!x")
	attrs := connectors.Attributes{"login": "jsmith", "user_principal_name": "jsmith@jml.test", "first_name": "John",
		"last_name": "Smith", "display_name": "John Smith", "email": "john.smith@jml.test", "title": "Rep",
		"department": "Sales", "employee_id": "E0100", "phone_number": "+1 555 0100", "manager": "E0007"}
	acct, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw, Activate: true})
	require.NoError(t, err)
	assert.True(t, acct.Active)
	assert.Equal(t, "E0007", acct.Attributes["manager"], "the manager reads back as the manager's employee ID")
	dn := "CN=John Smith,OU=Sales," + s.StaffDN
	e := readEntry(t, &s.Directory, dn, "userAccountControl", "pwdLastSet", "manager", "employeeID", "objectGUID")
	assert.Equal(t, "512", e.GetAttributeValue("userAccountControl"))
	assert.Equal(t, "0", e.GetAttributeValue("pwdLastSet"), "must change the password at first logon")
	assert.Equal(t, "CN=Big Boss,OU=Sales,"+s.StaffDN, e.GetAttributeValue("manager"))
	err = s.Bind("jsmith@jml.test", pw.Reveal())
	require.Error(t, err, "pwdLastSet=0: the password must be changed before a bind")
	assert.Contains(t, err.Error(), "data 773", "AD says: must change password (so the password itself was right)")

	found, err := c.Correlate(ctx, connectors.Attributes{"employee_id": "E0100"})
	require.NoError(t, err)
	assert.Equal(t, acct.ID, found.ID)

	// A namesake in the same OU gets its own CN; the ID is the objectGUID.
	// (This one may keep its password: it binds.)
	keep := peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	keep.MustChangePassword = false
	pw2 := secret.New("Other-Pass-2026!y")
	twin, err := newPeerConnector(t, keep).CreateAccount(ctx, connectors.Attributes{"login": "jsmith2", "first_name": "John", "last_name": "Smith",
		"display_name": "John Smith", "department": "Sales", "employee_id": "E0101"}, connectors.CreateOptions{Password: &pw2, Activate: true})
	require.NoError(t, err)
	assert.NotEqual(t, acct.ID, twin.ID)
	assert.Equal(t, "CN=John Smith (jsmith2),OU=Sales,"+s.StaffDN, twin.Attributes["dn"])

	// Mover: new department → the object moves; the ID stays.
	require.NoError(t, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"department": "Engineering", "title": "Engineer"}))
	moved, err := c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.Equal(t, "CN=John Smith,OU=Engineering,"+s.StaffDN, moved.Attributes["dn"])
	assert.Equal(t, "Engineer", moved.Attributes["title"])

	// Groups.
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "sales-team", Description: "Sales"})
	require.NoError(t, err)
	again, err := c.EnsureGroup(ctx, connectors.Group{Name: "sales-team"})
	require.NoError(t, err)
	assert.Equal(t, g.ID, again.ID)
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID))
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID), "a present member is done")
	gs, err := c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	require.Len(t, gs, 1)
	assert.Equal(t, "sales-team", gs[0].Name)
	listed, _, err := c.ListGroups(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, g.ID, listed[0].ID)
	members, _, err := c.ListMembers(ctx, g.ID, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{acct.ID}, members)

	// Leaver: disabled, no groups, in the disabled OU, the bind fails.
	require.NoError(t, s.Bind("jsmith2@jml.test", pw2.Reveal()), "")
	require.NoError(t, c.AddMember(ctx, g.ID, twin.ID))
	require.NoError(t, c.Deprovision(ctx, twin.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	gone, err := c.ReadAccount(ctx, twin.ID)
	require.NoError(t, err)
	assert.False(t, gone.Active)
	assert.Equal(t, "CN=John Smith (jsmith2),"+s.DisabledDN, gone.Attributes["dn"])
	gs, err = c.Memberships(ctx, twin.ID)
	require.NoError(t, err)
	assert.Empty(t, gs)
	err = s.Bind("jsmith2@jml.test", pw2.Reveal())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data 533", "AD says the account is disabled")

	// Rehire: the same object, enabled, back in its department.
	require.NoError(t, c.Reactivate(ctx, twin.ID))
	back, err := c.ReadAccount(ctx, twin.ID)
	require.NoError(t, err)
	assert.True(t, back.Active)
	assert.Equal(t, "CN=John Smith (jsmith2),OU=Sales,"+s.StaffDN, back.Attributes["dn"])
	require.NoError(t, s.Bind("jsmith2@jml.test", pw2.Reveal()))

	// Reset: a new password that must be changed.
	tmp, err := c.ResetPassword(ctx, twin.ID)
	require.NoError(t, err)
	err = s.Bind("jsmith2@jml.test", tmp.Reveal())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data 773")

	// Listing in pages.
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		as, next, err := c.ListAccounts(ctx, cursor, 2)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(as), 2)
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Contains(t, ids, acct.ID)
	assert.Contains(t, ids, twin.ID)

	// Delete: gone, and deleting again is done.
	require.NoError(t, c.Delete(ctx, twin.ID))
	_, err = c.ReadAccount(ctx, twin.ID)
	require.ErrorIs(t, err, connectors.ErrNotFound)
	require.NoError(t, c.Delete(ctx, twin.ID))

	// A password the domain refuses: a permanent password-policy error
	// naming the rule, and no account (the add carried the password).
	s.SetPasswordPolicy(t, ldappeer.PasswordPolicy{Complexity: true, MinLength: 14})
	short := secret.New("Short-Pw-1")
	_, err = c.CreateAccount(ctx, connectors.Attributes{"login": "shortpw", "last_name": "Short", "department": "Sales",
		"employee_id": "E0300"}, connectors.CreateOptions{Password: &short, Activate: true})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, ldap.TypePasswordPolicy, pe.Type)
	assert.Contains(t, err.Error(), "the password is too short. It should be equal or longer than 14 characters")
	assert.NotContains(t, err.Error(), short.Reveal())
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "login", Value: "shortpw"})
	require.ErrorIs(t, err, connectors.ErrNotFound, "nothing half-created")
}

// TestSlapdLifecycle is the joiner, mover, leaver and rehire against
// OpenLDAP: inetOrgPerson named by uid, the password set by the Password
// Modify extended operation, a leaver locked by ppolicy.
func TestSlapdLifecycle(t *testing.T) {
	s := ldappeer.StartSlapd(t)
	ctx := context.Background()
	for _, ou := range []string{"ou=Sales," + s.StaffDN, "ou=Engineering," + s.StaffDN} {
		s.CreateOU(t, ou)
	}
	cfg := peerConfig(t, ldap.OpenLDAP, &s.Directory)
	cfg.MustChangePassword = false
	c := newPeerConnector(t, cfg)

	pw := secret.New("Joiner-Pass-2026!x")
	acct, err := c.CreateAccount(ctx, connectors.Attributes{"login": "jsmith", "first_name": "John", "last_name": "Smith",
		"display_name": "John Smith", "email": "john.smith@jml.test", "department": "Sales", "employee_id": "E0100"},
		connectors.CreateOptions{Password: &pw, Activate: true})
	require.NoError(t, err)
	assert.True(t, acct.Active)
	dn := "uid=jsmith,ou=Sales," + s.StaffDN
	assert.Equal(t, dn, acct.Attributes["dn"])
	require.NoError(t, s.Bind(dn, pw.Reveal()), "the password works")
	e := readEntry(t, &s.Directory, dn, "userPassword")
	assert.NotContains(t, e.GetAttributeValue("userPassword"), pw.Reveal(), "the server hashed it")

	require.NoError(t, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"department": "Engineering"}))
	moved, err := c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.Equal(t, "uid=jsmith,ou=Engineering,"+s.StaffDN, moved.Attributes["dn"])
	assert.Equal(t, acct.ID, moved.ID, "entryUUID survives the move")

	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "eng"})
	require.NoError(t, err)
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID))
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID))
	gs, err := c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	require.Len(t, gs, 1)
	members, _, err := c.ListMembers(ctx, g.ID, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{acct.ID}, members, "memberOf (the overlay); the service account placeholder is no member")

	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	gone, err := c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.False(t, gone.Active)
	assert.Equal(t, "uid=jsmith,"+s.DisabledDN, gone.Attributes["dn"])
	gs, err = c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	assert.Empty(t, gs)
	require.Error(t, s.Bind("uid=jsmith,"+s.DisabledDN, pw.Reveal()), "ppolicy lock: the bind fails")

	require.NoError(t, c.Reactivate(ctx, acct.ID))
	back, err := c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.True(t, back.Active)
	assert.Equal(t, "uid=jsmith,ou=Engineering,"+s.StaffDN, back.Attributes["dn"])
	require.NoError(t, s.Bind(back.Attributes["dn"], pw.Reveal()))

	require.NoError(t, c.Delete(ctx, acct.ID))
	_, err = c.ReadAccount(ctx, acct.ID)
	require.ErrorIs(t, err, connectors.ErrNotFound)
}

// TestProbe is `starter targets check` against both directories: bind,
// TLS and its certificate, containers, schema, paging, and a write probe
// that leaves nothing behind; a missing container is reported.
func TestProbe(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (ldap.Flavour, *ldappeer.Directory)
	}{
		{"samba", func(t *testing.T) (ldap.Flavour, *ldappeer.Directory) {
			return ldap.ActiveDirectory, &ldappeer.StartSamba(t).Directory
		}},
		{"slapd", func(t *testing.T) (ldap.Flavour, *ldappeer.Directory) {
			return ldap.OpenLDAP, &ldappeer.StartSlapd(t).Directory
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, d := tt.start(t)
			c := newPeerConnector(t, peerConfig(t, f, d))
			caps, err := c.Probe(context.Background(), true)
			require.NoError(t, err)
			got := map[string]connectors.Capability{}
			for _, cp := range caps {
				got[cp.Name] = cp
				assert.Equal(t, connectors.CapWorks, cp.Status, "%s: %s", cp.Name, cp.Detail)
			}
			for _, n := range []string{ldap.CapBind, ldap.CapTLS, ldap.CapContainers, ldap.CapSchema, connectors.CapList,
				connectors.CapLookup, connectors.CapGroups, connectors.CapCreate, connectors.CapUpdate, connectors.CapDelete, connectors.CapMembership} {
				assert.Contains(t, got, n)
			}
			assert.Contains(t, got[ldap.CapTLS].Detail, "verified")
			assert.Empty(t, d.SearchAll(t, d.BaseDN, "(cn=jml-probe-*)"), "the write probe cleans up")

			cfg := peerConfig(t, f, d)
			cfg.DisabledContainer = "OU=Nowhere," + d.BaseDN
			caps, err = newPeerConnector(t, cfg).Probe(context.Background(), false)
			require.NoError(t, err)
			for _, cp := range caps {
				if cp.Name == ldap.CapContainers {
					assert.Equal(t, connectors.CapUnsupported, cp.Status)
					assert.Contains(t, cp.Detail, "disabled_container OU=Nowhere")
				}
			}
		})
	}
}

// TestSambaPagesThousand reads 1,000 users in pages of 100: every user
// once, one search a page.
func TestSambaPagesThousand(t *testing.T) {
	s := ldappeer.StartSamba(t)
	s.LoadUsers(t, s.StaffDN, ldappeer.GenerateUsers(1000))
	rec := &targets.Recorder{Live: http.DefaultTransport, Wire: true}
	cfg := peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	cfg.Recorder = rec
	c := newPeerConnector(t, cfg)
	seen := map[string]bool{}
	cursors := map[string]bool{}
	cursor := ""
	for {
		assert.False(t, cursors[cursor], "every page has its own cursor (Samba repeats its cookie)")
		cursors[cursor] = true
		as, next, err := c.ListAccounts(context.Background(), cursor, 100)
		require.NoError(t, err)
		for _, a := range as {
			assert.False(t, seen[a.ID])
			seen[a.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.GreaterOrEqual(t, len(seen), 1000)
	assert.Len(t, rec.Calls(), (len(seen)+99)/100)
}

// TestPasswordNeverOverPlainLDAP: with plain LDAP allowed (--dev) and a
// Samba that would take unicodePwd in clear, the connector still refuses
// to send a password, before the add: nothing is created. Without --dev
// plain LDAP is refused outright.
func TestPasswordNeverOverPlainLDAP(t *testing.T) {
	s := ldappeer.StartSamba(t, ldappeer.AllowPlainBind())
	s.CreateOU(t, "OU=Sales,"+s.StaffDN)
	cfg := peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	cfg.URL, cfg.TLS = s.PlainURL, ldap.TLSNone
	_, err := ldap.New(cfg)
	require.ErrorContains(t, err, "refused outside --dev")

	cfg.AllowInsecure = true
	c := newPeerConnector(t, cfg)
	pw := secret.New("Plain-Pass-2026!x")
	_, err = c.CreateAccount(context.Background(), connectors.Attributes{"login": "plainpw", "last_name": "Plain",
		"department": "Sales", "employee_id": "E0400"}, connectors.CreateOptions{Password: &pw, Activate: true})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, ldap.TypeInsecure, pe.Type)
	assert.Empty(t, s.SearchAll(t, s.BaseDN, "(sAMAccountName=plainpw)"), "nothing sent")

	// Without a password the plain connection works (--dev).
	acct, err := c.CreateAccount(context.Background(), connectors.Attributes{"login": "nopw", "last_name": "Plain",
		"department": "Sales", "employee_id": "E0401"}, connectors.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, acct.Active)
}

// TestLeaverToMissingContainer: a disabled_container that does not exist
// makes the leaver's move fail for good (Samba answers 80 with
// 00002095, OpenLDAP noSuchObject on the new superior): a configuration
// error naming the container, for the operator, not a retry forever nor
// "account not found". The account is still disabled.
func TestLeaverToMissingContainer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (ldap.Flavour, *ldappeer.Directory, string)
	}{
		{"samba", func(t *testing.T) (ldap.Flavour, *ldappeer.Directory, string) {
			s := ldappeer.StartSamba(t)
			s.CreateOU(t, "OU=Sales,"+s.StaffDN)
			return ldap.ActiveDirectory, &s.Directory, "OU=Nowhere," + s.BaseDN
		}},
		{"openldap", func(t *testing.T) (ldap.Flavour, *ldappeer.Directory, string) {
			s := ldappeer.StartSlapd(t)
			s.CreateOU(t, "ou=Sales,"+s.StaffDN)
			return ldap.OpenLDAP, &s.Directory, "ou=Nowhere," + s.BaseDN
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, d, nowhere := tt.start(t)
			ctx := context.Background()
			cfg := peerConfig(t, f, d)
			cfg.MustChangePassword = false
			cfg.DisabledContainer = nowhere
			c := newPeerConnector(t, cfg)
			acct, err := c.CreateAccount(ctx, connectors.Attributes{"login": "lleaver", "first_name": "Lee", "last_name": "Leaver",
				"display_name": "Lee Leaver", "department": "Sales", "employee_id": "E0500"}, connectors.CreateOptions{})
			require.NoError(t, err)

			err = c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{RemoveGroups: true})
			var pe *connectors.PermanentError
			require.ErrorAs(t, err, &pe, "%v", err)
			assert.Equal(t, ldap.TypeConfig, pe.Type)
			assert.Contains(t, err.Error(), "disabled_container")
			assert.Contains(t, err.Error(), nowhere)
			assert.NotErrorIs(t, err, connectors.ErrNotFound, "the account is there; its destination is not")

			got, err := c.ReadAccount(ctx, acct.ID)
			require.NoError(t, err)
			assert.False(t, got.Active, "disabled before the move")
		})
	}
}
