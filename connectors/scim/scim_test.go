package scim_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/secret"
)

const vendorURN = "urn:ietf:params:scim:schemas:extension:myvendor:1.0:User"

func newClient(t *testing.T, baseURL, token string, mod ...func(*scim.Config)) *scim.Client {
	t.Helper()
	cfg := scim.Config{BaseURL: baseURL, Auth: scim.Auth{BearerToken: token}, HTTPClient: &http.Client{Timeout: 5 * time.Second}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := scim.New(context.Background(), cfg)
	require.NoError(t, err)
	return c
}

func peerClient(t *testing.T, p *scimtest.Peer, mod ...func(*scim.Config)) *scim.Client {
	return newClient(t, p.BaseURL, p.Token, mod...)
}

// diff is what a sync step computes: the desired attributes that differ
// from what the target holds.
func diff(have, want connectors.Attributes) connectors.Diff {
	d := connectors.Diff{}
	for k, v := range want {
		if have[k] != v {
			d[k] = v
		}
	}
	return d
}

// fullProfile exercises every kind of mapping: core, name.*, primary email,
// multi-valued by type, enterprise extension with aliases and full URN
// names, and the vendor extension found through /Schemas.
func fullProfile(userName string) connectors.Attributes {
	return connectors.Attributes{
		"user_name":                     userName,
		"external_id":                   "E-" + userName,
		"display_name":                  "Jane Doe",
		"given_name":                    "Jane",
		"family_name":                   "Doe",
		"email":                         userName + "@acme.example",
		"emails.home":                   "jane@home.example",
		"phone_numbers.work":            "+1 555 0100",
		"phone_numbers.mobile":          "+1 555 0199",
		"addresses.work.locality":       "Lyon",
		"addresses.work.country":        "FR",
		"addresses.work.street_address": "1 Rue de la Paix",
		"title":                         "Engineer",
		"user_type":                     "Employee",
		"locale":                        "fr-FR",
		"timezone":                      "Europe/Paris",
		"preferred_language":            "fr",
		"active":                        "true",
		"employee_number":               "10042",
		"cost_center":                   "CC-7",
		"organization":                  "Acme",
		"division":                      "R&D",
		"urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_department": "Platform",
		"urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_customfield":  "blue-team",
	}
}

func TestSyncRoundTripAndBudget(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)

	const g = 3
	var groupIDs []string
	for i := range g {
		grp, err := c.EnsureGroup(ctx, connectors.Group{Name: fmt.Sprintf("team-%d", i)})
		require.NoError(t, err)
		groupIDs = append(groupIDs, grp.ID)
	}
	_, err := c.Discover(ctx)
	require.NoError(t, err)

	// Joiner, counted at the peer after discovery.
	peer.Reset()
	want := fullProfile("jdoe")
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "jdoe"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	acct, err := c.CreateAccount(ctx, want, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	for _, name := range []string{"team-0", "team-1", "team-2"} {
		grp, err := c.FindGroup(ctx, name)
		require.NoError(t, err)
		require.NoError(t, c.AddMember(ctx, grp.ID, acct.ID))
	}
	assert.Equal(t, 2+2*g, peer.Requests(), "1 lookup + 1 create + g group lookups + g PATCHes")
	assert.Equal(t, map[string]int{"POST": 1, "PATCH": g}, peer.Writes())

	// Every attribute reads back as written, so a re-sync finds nothing to do:
	// 1 lookup, 0 writes.
	peer.Reset()
	found, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "jdoe"})
	require.NoError(t, err)
	assert.Equal(t, acct.ID, found.ID)
	assert.True(t, found.Active)
	assert.Empty(t, diff(found.Attributes, want))
	require.NoError(t, c.UpdateAccount(ctx, found.ID, diff(found.Attributes, want)))
	assert.Equal(t, 1, peer.Requests())
	assert.Empty(t, peer.Writes())

	// The short enterprise names read back too.
	assert.Equal(t, "Platform", found.Attributes["department"])

	groups, err := c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	var ids []string
	for _, grp := range groups {
		ids = append(ids, grp.ID)
	}
	assert.ElementsMatch(t, groupIDs, ids)
}

func TestUpdateAccount(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		opts  []scimtest.Option
		write string
	}{
		{"patch", nil, "PATCH"},
		{"put fallback", []scimtest.Option{scimtest.WithoutPatch()}, "PUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := scimtest.Start(t, tc.opts...)
			c := peerClient(t, peer)
			boss, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "boss"}, connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			acct, err := c.CreateAccount(ctx, fullProfile("mover"), connectors.CreateOptions{Activate: true})
			require.NoError(t, err)

			change := connectors.Diff{
				"title":                   "Staff Engineer", // replace
				"nick_name":               "JD",             // set what was unset
				"locale":                  "",               // clear
				"emails.home":             "",               // delete an item by type
				"email":                   "mover@new.example",
				"phone_numbers.work":      "+1 555 0111", // replace an item's value
				"phone_numbers.home":      "+1 555 0122", // add an item of a new type
				"addresses.work.locality": "Paris",
				"addresses.home.locality": "Nice",
				"department":              "Security",
				"manager":                 boss.ID,
				"urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_customfield": "red-team",
			}
			peer.Reset()
			require.NoError(t, c.UpdateAccount(ctx, acct.ID, change))
			assert.Equal(t, 1, peer.Writes()[tc.write], "one write")

			got, err := c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
			require.NoError(t, err)
			a := got.Attributes
			assert.Equal(t, "Staff Engineer", a["title"])
			assert.Equal(t, "JD", a["nick_name"])
			assert.NotContains(t, a, "locale")
			assert.NotContains(t, a, "emails.home")
			assert.Equal(t, "mover@new.example", a["email"])
			assert.Equal(t, "+1 555 0111", a["phone_numbers.work"])
			assert.Equal(t, "+1 555 0199", a["phone_numbers.mobile"], "untouched item kept")
			assert.Equal(t, "+1 555 0122", a["phone_numbers.home"])
			assert.Equal(t, "Paris", a["addresses.work.locality"])
			assert.Equal(t, "FR", a["addresses.work.country"])
			assert.Equal(t, "Nice", a["addresses.home.locality"])
			assert.Equal(t, "Security", a["department"])
			assert.Equal(t, "Security", a["urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_department"])
			assert.Equal(t, boss.ID, a["manager"])
			assert.Equal(t, "red-team", a["urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_customfield"])
			assert.Equal(t, "10042", a["employee_number"], "untouched attribute kept")
			assert.Equal(t, "Jane", a["given_name"])
		})
	}
}

func TestCreateAdoptsExisting(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	first, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "adopt.me", "title": "A"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)

	peer.Reset()
	// Same userName in another case: the peer answers 409 uniqueness.
	second, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "Adopt.Me", "title": "B"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	assert.Equal(t, first.ID, second.ID)
	assert.Equal(t, "A", second.Attributes["title"], "the existing account is returned as is")
	assert.Equal(t, map[string]int{"POST": 1}, peer.Writes())

	// A retried create that carries groups still grants them.
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "retry-group"})
	require.NoError(t, err)
	third, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "adopt.me"}, connectors.CreateOptions{GroupIDs: []string{g.ID}})
	require.NoError(t, err)
	ms, err := c.Memberships(ctx, third.ID)
	require.NoError(t, err)
	assert.Equal(t, []connectors.Group{{ID: g.ID, Name: "retry-group"}}, ms)

	list, next, err := c.ListAccounts(ctx, "", 10)
	require.NoError(t, err)
	assert.Len(t, list, 1, "no duplicate")
	assert.Empty(t, next)
}

func TestFindEscapesFilterAndIgnoresCase(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	tricky := []string{`o"brien`, `back\slash`, `x" or userName pr or userName eq "y`, "Mixed.Case"}
	ids := map[string]string{}
	for _, u := range tricky {
		a, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": u}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err, u)
		ids[u] = a.ID
	}
	for _, u := range tricky {
		got, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: u})
		require.NoError(t, err, u)
		assert.Equal(t, ids[u], got.ID, u)
	}
	got, err := c.FindAccount(ctx, connectors.Key{Value: "MIXED.case"})
	require.NoError(t, err)
	assert.Equal(t, ids["Mixed.Case"], got.ID)

	_, err = c.FindAccount(ctx, connectors.Key{Value: `nobody" or userName pr or userName eq "`})
	assert.ErrorIs(t, err, connectors.ErrNotFound, "an injected filter must not match everyone")
}

func TestUniqueIdentifierExternalID(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer, func(cfg *scim.Config) { cfg.UniqueIdentifier = "external_id" })
	a, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "ext.user", "external_id": "HR-77"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	got, err := c.FindAccount(ctx, connectors.Key{Value: "HR-77"})
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	require.NoError(t, c.UpdateAccount(ctx, a.ID, connectors.Diff{"email": "Ext.User@Acme.example", "employee_number": "4242"}))
	got, err = c.FindAccount(ctx, connectors.Key{Attribute: "email", Value: "ext.user@acme.example"})
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	got, err = c.FindAccount(ctx, connectors.Key{Attribute: "employee_number", Value: "4242"})
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	got, err = c.FindAccount(ctx, connectors.Key{Attribute: "employee_number", Value: "nope"})
	assert.ErrorIs(t, err, connectors.ErrNotFound)
	assert.Nil(t, got)
}

// statusRecorder remembers the status of every PATCH answer.
type statusRecorder struct {
	mu       sync.Mutex
	statuses []int
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPatch {
		s.mu.Lock()
		s.statuses = append(s.statuses, resp.StatusCode)
		s.mu.Unlock()
	}
	return resp, err
}

func TestGroupsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	rec := &statusRecorder{}
	c := peerClient(t, peer, func(cfg *scim.Config) { cfg.HTTPClient.Transport = rec })
	defer func() {
		// SCIMMY answers a user PATCH 200 with the resource, a group PATCH
		// that excludes members 204: both were accepted.
		assert.Contains(t, rec.statuses, http.StatusOK)
		assert.Contains(t, rec.statuses, http.StatusNoContent)
	}()
	g1, err := c.EnsureGroup(ctx, connectors.Group{Name: "Engineering"})
	require.NoError(t, err)
	// Another client (another worker) sees the group by name, in any case.
	g2, err := peerClient(t, peer).EnsureGroup(ctx, connectors.Group{Name: "engineering"})
	require.NoError(t, err)
	assert.Equal(t, g1.ID, g2.ID)

	_, err = c.FindGroup(ctx, "absent")
	assert.ErrorIs(t, err, connectors.ErrNotFound)

	u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "member"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	require.NoError(t, c.UpdateAccount(ctx, u.ID, connectors.Diff{"title": "Member"}))
	require.NoError(t, c.AddMember(ctx, g1.ID, u.ID))
	require.NoError(t, c.AddMember(ctx, g1.ID, u.ID), "present member")
	ms, err := c.Memberships(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, []connectors.Group{{ID: g1.ID, Name: "Engineering"}}, ms)

	require.NoError(t, c.RemoveMember(ctx, g1.ID, u.ID))
	require.NoError(t, c.RemoveMember(ctx, g1.ID, u.ID), "absent member")
	require.NoError(t, c.RemoveMember(ctx, "no-such-group", u.ID), "gone group")
	ms, err = c.Memberships(ctx, u.ID)
	require.NoError(t, err)
	assert.Empty(t, ms)

	err = c.AddMember(ctx, "no-such-group", u.ID)
	assert.ErrorIs(t, err, connectors.ErrNotFound)
}

// TestMembershipChangesKeepOtherMembers: adding or removing one member
// leaves everyone else in the group (a provider that applies a PATCH to a
// projected read would drop them).
func TestMembershipChangesKeepOtherMembers(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "Everyone"})
	require.NoError(t, err)
	var ids []string
	for _, name := range []string{"ann", "bob", "cyd"} {
		u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": name}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		require.NoError(t, c.AddMember(ctx, g.ID, u.ID))
		ids = append(ids, u.ID)
	}
	for _, id := range ids {
		ms, err := c.Memberships(ctx, id)
		require.NoError(t, err)
		assert.Len(t, ms, 1, "member %s kept", id)
	}
	require.NoError(t, c.RemoveMember(ctx, g.ID, ids[1]))
	for i, id := range ids {
		ms, err := c.Memberships(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, i != 1, len(ms) == 1, "member %d after removing bob", i)
	}
}

func TestLeaverLifecycle(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []scimtest.Option
	}{{"patch", nil}, {"put fallback", []scimtest.Option{scimtest.WithoutPatch()}}} {
		t.Run(tc.name, func(t *testing.T) {
			peer := scimtest.Start(t, tc.opts...)
			c := peerClient(t, peer)
			u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "leaver", "title": "Keep me"}, connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			for _, n := range []string{"a", "b"} {
				g, err := c.EnsureGroup(ctx, connectors.Group{Name: n})
				require.NoError(t, err)
				require.NoError(t, c.AddMember(ctx, g.ID, u.ID))
			}

			peer.Reset()
			require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
			if tc.opts == nil {
				assert.Equal(t, map[string]int{"PATCH": 3}, peer.Writes(), "active=false + one remove per group")
			}
			got, err := c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: u.ID})
			require.NoError(t, err)
			assert.False(t, got.Active)
			assert.Equal(t, "INACTIVE", got.Status)
			assert.Equal(t, "Keep me", got.Attributes["title"], "data preserved")
			ms, err := c.Memberships(ctx, u.ID)
			require.NoError(t, err)
			assert.Empty(t, ms)

			peer.Reset()
			require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true}), "again")
			assert.LessOrEqual(t, writes(peer), 1, "only the idempotent disable: no group left to remove")

			require.NoError(t, c.Reactivate(ctx, u.ID))
			got, err = c.FindAccount(ctx, connectors.Key{Value: "leaver"})
			require.NoError(t, err)
			assert.True(t, got.Active)

			require.NoError(t, c.Delete(ctx, u.ID))
			require.NoError(t, c.Delete(ctx, u.ID), "already gone")
			_, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: u.ID})
			assert.ErrorIs(t, err, connectors.ErrNotFound)
			peer.Reset()
			require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true}), "deprovisioning a deleted user is a no-op")
			assert.LessOrEqual(t, writes(peer), 1, "the disable that finds no user, nothing else")
			assert.ErrorIs(t, c.Reactivate(ctx, u.ID), connectors.ErrNotFound)
			assert.ErrorIs(t, c.UpdateAccount(ctx, u.ID, connectors.Diff{"title": "x"}), connectors.ErrNotFound)
		})
	}
}

// writes is the number of write requests the peer received.
func writes(p *scimtest.Peer) int {
	n := 0
	for _, v := range p.Writes() {
		n += v
	}
	return n
}

func TestPasswords(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

	pw := secret.New("Initial-Pass-123!")
	u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "pw.user"}, connectors.CreateOptions{Activate: true, Password: &pw})
	require.NoError(t, err)
	assert.Equal(t, sum("Initial-Pass-123!"), peer.PasswordSHA256(u.ID))
	assert.NotContains(t, fmt.Sprint(u.Attributes), "Initial-Pass")

	require.NoError(t, c.SetPassword(ctx, u.ID, secret.New("Second-Pass-456?")))
	assert.Equal(t, sum("Second-Pass-456?"), peer.PasswordSHA256(u.ID))

	err = c.SetPassword(ctx, "missing", secret.New("Third-Pass-789#"))
	require.ErrorIs(t, err, connectors.ErrNotFound)
	assert.NotContains(t, err.Error(), "Third-Pass")
}

func TestListAccountsPages(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	const n = 25
	for i := range n {
		_, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": fmt.Sprintf("u%02d", i)}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
	}
	peer.Reset()
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, next, err := c.ListAccounts(ctx, cursor, 10)
		require.NoError(t, err)
		pages++
		for _, a := range page {
			assert.False(t, seen[a.ID], "duplicate %s", a.ID)
			seen[a.ID] = true
			assert.NotEmpty(t, a.Attributes["user_name"])
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Len(t, seen, n)
	assert.Equal(t, 3, pages)
	assert.Equal(t, 3, peer.Requests())

	_, _, err := c.ListAccounts(ctx, "zero", 10)
	assert.True(t, connectors.IsPermanent(err))
}

func TestBadInputSendsNothing(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)

	for _, raw := range []string{"", "::not a url", "ftp://host/scim", "https://", "https://host/scim?x=1", "https://user:pw@host/scim",
		"ftp://user:pw@host/scim", "http://scim.example.com/v2"} {
		_, err := scim.New(ctx, scim.Config{BaseURL: raw})
		require.Error(t, err, raw)
		assert.True(t, connectors.IsPermanent(err), raw)
		assert.NotContains(t, err.Error(), "pw@", "no credentials echoed")
	}
	_, err := scim.New(ctx, scim.Config{BaseURL: "ftp://host/scim"})
	assert.ErrorContains(t, err, "ftp://host/scim", "the error names the URL")
	_, err = scim.New(ctx, scim.Config{BaseURL: "https://host/scim", Auth: scim.Auth{BearerToken: "t", BasicUser: "u"}})
	assert.ErrorContains(t, err, "2 methods")

	c := peerClient(t, peer)
	peer.Reset()
	_, err = c.CreateAccount(ctx, connectors.Attributes{"email": "a@b.example"}, connectors.CreateOptions{})
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err))
	assert.ErrorContains(t, err, "user_name")
	assert.Equal(t, 0, peer.Requests(), "missing user_name: no request at all")

	// Names that map to nothing fail before any request once the schemas
	// are known (a cold client reads /ServiceProviderConfig and /Schemas).
	_, err = c.Discover(ctx)
	require.NoError(t, err)
	for _, name := range []string{"favourite_color", "urn_scim_schemas_extension_othervendor_1_0_x", "faxes.work", "groups", "password"} {
		peer.Reset()
		_, err = c.CreateAccount(ctx, connectors.Attributes{"user_name": "x", name: "v"}, connectors.CreateOptions{})
		require.Error(t, err, name)
		assert.True(t, connectors.IsPermanent(err), name)
		assert.ErrorContains(t, err, name)
		err = c.UpdateAccount(ctx, "some-id", connectors.Diff{name: "v"})
		assert.ErrorContains(t, err, name)
		assert.Zero(t, peer.Requests(), name)
	}

	require.NoError(t, c.ValidateAttributes(ctx, "user_name", "email", "manager", "addresses.home.region",
		"urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_badgecolor"))
	err = c.ValidateAttributes(ctx, "user_name", "favourite_color", "groups")
	assert.True(t, connectors.IsPermanent(err))
	assert.ErrorContains(t, err, "favourite_color")
	assert.ErrorContains(t, err, "groups")

	_, err = c.CreateAccount(ctx, connectors.Attributes{"user_name": "x", "active": "maybe"}, connectors.CreateOptions{})
	assert.ErrorContains(t, err, "active")
	_, err = c.CreateAccount(ctx, connectors.Attributes{"user_name": "x", "email": "a@x", "emails.work": "b@x"}, connectors.CreateOptions{})
	assert.ErrorContains(t, err, "same SCIM attribute")
}

func TestServerDetailSurfaces(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "v"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "g"})
	require.NoError(t, err)

	// The peer refuses a member that is not a user: 400 invalidValue.
	err = c.AddMember(ctx, g.ID, "not-a-user")
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "ScimValidation", perm.Type)
	assert.Contains(t, err.Error(), "member not-a-user is not a known user", "the server's detail")
	assert.Contains(t, err.Error(), "invalidValue")

	// Wrong credentials: 401, permanent, typed.
	bad := newClient(t, peer.BaseURL, "wrong-token")
	_, err = bad.FindAccount(ctx, connectors.Key{Value: "v"})
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, "ScimAuth", perm.Type)
	assert.NotContains(t, err.Error(), "wrong-token")
	_ = u
}

// faultProxy sits in front of the real peer and answers the next requests
// with canned faults.
type faultProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	faults []func(http.ResponseWriter) bool // true: handled
	seen   int
	// minimal makes the peer look like a bare-bones provider: no /Schemas,
	// no /ServiceProviderConfig, no groups attribute on users.
	minimal bool
}

func newFaultProxy(t *testing.T, peer *scimtest.Peer) *faultProxy {
	u, err := url.Parse(peer.BaseURL)
	require.NoError(t, err)
	u.Path = ""
	rp := httputil.NewSingleHostReverseProxy(u)
	fp := &faultProxy{}
	rp.ModifyResponse = func(resp *http.Response) error {
		if !fp.minimal || !strings.HasPrefix(resp.Request.URL.Path, "/scim/v2/Users") || resp.StatusCode != http.StatusOK {
			return nil
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		resp.Body.Close()
		delete(body, "groups")
		if list, ok := body["Resources"].([]any); ok {
			for _, r := range list {
				delete(r.(map[string]any), "groups")
			}
		}
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.seen++
		var f func(http.ResponseWriter) bool
		if len(fp.faults) > 0 {
			f, fp.faults = fp.faults[0], fp.faults[1:]
		}
		fp.mu.Unlock()
		if f != nil && f(w) {
			return
		}
		if fp.minimal && (strings.HasSuffix(r.URL.Path, "/Schemas") || strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig")) {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *faultProxy) url() string { return fp.srv.URL + "/scim/v2" }

func (fp *faultProxy) inject(f ...func(http.ResponseWriter) bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.faults = append(fp.faults, f...)
}

func status(code int, header ...string) func(http.ResponseWriter) bool {
	return func(w http.ResponseWriter) bool {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"%d","detail":"injected %d"}`, code, code)
		return true
	}
}

func TestRetryableFaults(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	fp := newFaultProxy(t, peer)
	c := newClient(t, fp.url(), peer.Token)
	_, err := c.Discover(ctx)
	require.NoError(t, err)
	// A client whose timeout the delayed answer outlasts by far.
	impatient := newClient(t, fp.url(), peer.Token, func(cfg *scim.Config) { cfg.HTTPClient.Timeout = 200 * time.Millisecond })
	when := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)

	for _, tc := range []struct {
		name      string
		fault     func(http.ResponseWriter) bool
		retryIn   time.Duration // RateLimitedError with this delay
		transient bool
	}{
		{"429 seconds", status(429, "Retry-After", "7"), 7 * time.Second, false},
		{"429 date", status(429, "Retry-After", when), 90 * time.Second, false},
		{"429 bare", status(429), connectors.DefaultRetryAfter, false},
		{"503 retry-after", status(503, "Retry-After", "2"), 2 * time.Second, false},
		{"503", status(503), 0, true},
		{"500", status(500), 0, true},
		{"timeout", func(http.ResponseWriter) bool { time.Sleep(2 * time.Second); return false }, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp.inject(tc.fault)
			client := c
			if tc.name == "timeout" {
				client = impatient
			}
			_, err := client.FindAccount(ctx, connectors.Key{Value: "anyone"})
			require.Error(t, err)
			assert.False(t, connectors.IsPermanent(err))
			var rl *connectors.RateLimitedError
			if tc.retryIn > 0 {
				require.ErrorAs(t, err, &rl)
				assert.InDelta(t, tc.retryIn.Seconds(), rl.RetryAfter.Seconds(), 1)
			} else {
				var tr *connectors.TransientError
				assert.ErrorAs(t, err, &tr)
			}
			// The next attempt, once the fault passed, reaches the real peer.
			_, err = c.FindAccount(ctx, connectors.Key{Value: "anyone"})
			assert.ErrorIs(t, err, connectors.ErrNotFound)
		})
	}
}

func TestAuthMethods(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)

	t.Run("oauth2 client credentials", func(t *testing.T) {
		var tokenCalls int
		tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tokenCalls++
			id, sec, ok := r.BasicAuth()
			if !ok || id != "jml" || sec != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":"invalid_client"}`)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, peer.Token)
		}))
		t.Cleanup(tokens.Close)
		c := newClient(t, peer.BaseURL, "", func(cfg *scim.Config) {
			cfg.Auth = scim.Auth{OAuth2: &scim.OAuth2ClientCredentials{TokenURL: tokens.URL, ClientID: "jml", ClientSecret: "s3cret"}}
		})
		_, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "oauth"}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		_, err = c.FindAccount(ctx, connectors.Key{Value: "oauth"})
		require.NoError(t, err)
		assert.Equal(t, 1, tokenCalls, "token cached")

		bad := newClient(t, peer.BaseURL, "", func(cfg *scim.Config) {
			cfg.Auth = scim.Auth{OAuth2: &scim.OAuth2ClientCredentials{TokenURL: tokens.URL, ClientID: "jml", ClientSecret: "wrong"}}
		})
		_, err = bad.FindAccount(ctx, connectors.Key{Value: "oauth"})
		var perm *connectors.PermanentError
		require.ErrorAs(t, err, &perm)
		assert.Equal(t, "ScimAuth", perm.Type)
		assert.NotContains(t, err.Error(), "wrong")
	})

	t.Run("custom header", func(t *testing.T) {
		c := newClient(t, peer.BaseURL, "", func(cfg *scim.Config) {
			cfg.Auth = scim.Auth{HeaderName: "Authorization", HeaderValue: "Bearer " + peer.Token}
		})
		_, err := c.FindAccount(ctx, connectors.Key{Value: "nobody"})
		assert.ErrorIs(t, err, connectors.ErrNotFound)
	})

	t.Run("basic and api key headers", func(t *testing.T) {
		var got http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Clone()
			w.Header().Set("Content-Type", "application/scim+json")
			fmt.Fprint(w, `{"Resources":[],"totalResults":0}`)
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, srv.URL, "", func(cfg *scim.Config) { cfg.Auth = scim.Auth{BasicUser: "svc", BasicPassword: "pw"} })
		_, _ = c.FindAccount(ctx, connectors.Key{Value: "x"})
		assert.Equal(t, "Basic c3ZjOnB3", got.Get("Authorization"))
		c = newClient(t, srv.URL, "", func(cfg *scim.Config) { cfg.Auth = scim.Auth{HeaderName: "X-Api-Key", HeaderValue: "k-123"} })
		_, _ = c.FindAccount(ctx, connectors.Key{Value: "x"})
		assert.Equal(t, "k-123", got.Get("X-Api-Key"))
	})

	t.Run("config prints no secret", func(t *testing.T) {
		cfg := scim.Config{BaseURL: "https://x", Auth: scim.Auth{BearerToken: "tok-SECRET", BasicPassword: "pw-SECRET",
			OAuth2: &scim.OAuth2ClientCredentials{TokenURL: "https://t", ClientSecret: "cs-SECRET"}, HeaderValue: "h-SECRET"}}
		for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", cfg.Auth)} {
			assert.NotContains(t, s, "SECRET")
		}
	})
}

func TestConcurrentJoinersSameUser(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	c := peerClient(t, peer)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "race"}, connectors.CreateOptions{Activate: true})
			errs[i] = err
			if err == nil {
				ids[i] = a.ID
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		require.NoError(t, errs[i])
		assert.Equal(t, ids[0], ids[i])
	}
	list, _, err := c.ListAccounts(ctx, "", 50)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func TestMinimalProvider(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	fp := newFaultProxy(t, peer)
	fp.minimal = true
	c := newClient(t, fp.url(), peer.Token)

	caps, err := c.Discover(ctx)
	require.NoError(t, err)
	assert.False(t, caps.SchemasDiscovered, "RFC schemas assumed")
	assert.True(t, caps.Patch)

	_, err = c.CreateAccount(ctx, connectors.Attributes{"user_name": "m", "urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_customfield": "x"}, connectors.CreateOptions{})
	assert.ErrorContains(t, err, "urn_ietf_params_scim_schemas_extension_myvendor_1_0_user_customfield", "no /Schemas, no vendor index")

	u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "m", "department": "Ops"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	assert.Equal(t, "Ops", u.Attributes["department"])
	var want []string
	for _, n := range []string{"x", "y"} {
		g, err := c.EnsureGroup(ctx, connectors.Group{Name: n})
		require.NoError(t, err)
		require.NoError(t, c.AddMember(ctx, g.ID, u.ID))
		want = append(want, g.ID)
	}
	// Without a groups attribute, memberships come from filtering /Groups.
	ms, err := c.Memberships(ctx, u.ID)
	require.NoError(t, err)
	var got []string
	for _, g := range ms {
		got = append(got, g.ID)
	}
	assert.ElementsMatch(t, want, got)

	require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	ms, err = c.Memberships(ctx, u.ID)
	require.NoError(t, err)
	assert.Empty(t, ms)
}

func TestCreateAccountsBulk(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		opts  []scimtest.Option
		posts int
	}{
		{"bulk", nil, 1},
		{"one by one", []scimtest.Option{scimtest.WithoutBulk()}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := scimtest.Start(t, tc.opts...)
			c := peerClient(t, peer)
			existing, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": "bulk07"}, connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			var in []connectors.Attributes
			for i := range 30 {
				in = append(in, connectors.Attributes{"user_name": fmt.Sprintf("BULK%02d", i), "title": "T", "department": "D"})
			}
			in = append(in, connectors.Attributes{"user_name": "bad", "shoe_size": "44"})
			peer.Reset()
			res, err := c.CreateAccounts(ctx, in, connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			require.Len(t, res, 31)
			assert.Equal(t, tc.posts, peer.Writes()["POST"])
			for i, r := range res[:30] {
				require.NoError(t, r.Err, i)
				got, err := c.FindAccount(ctx, connectors.Key{Value: fmt.Sprintf("bulk%02d", i)})
				require.NoError(t, err)
				assert.Equal(t, got.ID, r.Account.ID)
				if i != 7 { // bulk07 existed before, without a department
					assert.Equal(t, "D", got.Attributes["department"])
				}
			}
			assert.Equal(t, existing.ID, res[7].Account.ID, "adopted")
			assert.ErrorContains(t, res[30].Err, "shoe_size")
		})
	}
}

func TestRequestsPerSecond(t *testing.T) {
	peer := scimtest.Start(t)
	c := peerClient(t, peer, func(cfg *scim.Config) { cfg.RequestsPerSecond = 0.01 })
	_, err := c.FindAccount(context.Background(), connectors.Key{Value: "a"})
	require.ErrorIs(t, err, connectors.ErrNotFound, "the first request passes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.FindAccount(ctx, connectors.Key{Value: "a"})
	assert.ErrorContains(t, err, "rate limit", "the next one would wait ~100 s, past the deadline")
	assert.Equal(t, 1, peer.Requests())
}

func TestConcurrentEnsureGroup(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := peerClient(t, peer).EnsureGroup(ctx, connectors.Group{Name: "Race-Group"})
			if assert.NoError(t, err) {
				ids[i] = g.ID
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
}

type pathRecorder struct{ paths []string }

func (p *pathRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.paths = append(p.paths, r.URL.EscapedPath())
	return http.DefaultTransport.RoundTrip(r)
}

func TestIDsAreEscapedOnce(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	rec := &pathRecorder{}
	c := peerClient(t, peer, func(cfg *scim.Config) { cfg.HTTPClient.Transport = rec })
	_, err := c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: "no/such?id %"})
	assert.ErrorIs(t, err, connectors.ErrNotFound)
	require.NoError(t, c.Delete(ctx, "no/such?id %"))
	require.Len(t, rec.paths, 2)
	for _, p := range rec.paths {
		assert.True(t, strings.HasSuffix(p, "/scim/v2/Users/no%2Fsuch%3Fid%20%25"), p)
	}
}
