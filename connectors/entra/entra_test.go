package entra_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/secret"
)

func setup(t testing.TB, mod ...func(*entra.Config)) (*graphtest.Server, *entra.Connector) {
	t.Helper()
	srv := graphtest.New(t, graphtest.Options{})
	return srv, connect(t, srv, mod...)
}

func connect(t testing.TB, srv *graphtest.Server, mod ...func(*entra.Config)) *entra.Connector {
	t.Helper()
	o := srv.Options()
	cfg := entra.Config{
		Tenant: o.Tenant, ClientID: o.ClientID, ClientSecret: secret.New(o.ClientSecret),
		AuthorityURL: srv.AuthorityURL(), GraphURL: srv.GraphURL(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := entra.New(context.Background(), cfg)
	require.NoError(t, err)
	return c
}

func seedUser(srv *graphtest.Server, upn, employeeID string) string {
	return srv.AddUser(map[string]any{
		"userPrincipalName": upn, "displayName": upn, "mailNickname": strings.Split(upn, "@")[0],
		"employeeId": employeeID, "department": "Engineering", "jobTitle": "Engineer",
	})
}

func joinerAttrs() connectors.Attributes {
	return connectors.Attributes{
		"user_name": "ada.lovelace@contoso.com", "given_name": "Ada", "surname": "Lovelace",
		"email": "ada.lovelace@contoso.com", "department": "Engineering", "job_title": "Engineer",
		"employee_id": "E1001", "employee_hire_date": "2026-12-01", "usage_location": "gb",
	}
}

func TestJoinerRequestBudget(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t, func(c *entra.Config) { c.LifecycleDates = true })
	boss := seedUser(srv, "grace@contoso.com", "E1")
	g1 := srv.AddGroup(graphtest.GroupSpec{Name: "everyone"})
	g2 := srv.AddGroup(graphtest.GroupSpec{Name: "dept-engineering"})
	pw := secret.New("Initial-Passw0rd!x")

	_, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "ada.lovelace@contoso.com"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	attrs := joinerAttrs()
	attrs["manager"] = boss
	acc, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw, GroupIDs: []string{g1, g2}, Activate: true})
	require.NoError(t, err)

	// 1 find + 1 create + 1 $batch (2 member adds + the manager).
	assert.Equal(t, 3, srv.Requests(), srv.Log())
	assert.Equal(t, 3, srv.BatchedRequests())
	assert.Equal(t, 1, srv.TokenRequests())

	u := srv.User(acc.ID)
	require.NotNil(t, u)
	assert.Equal(t, true, u["accountEnabled"])
	assert.Equal(t, "Ada Lovelace", u["displayName"])
	assert.Equal(t, "ada.lovelace", u["mailNickname"])
	assert.Equal(t, "2026-12-01T00:00:00Z", u["employeeHireDate"])
	assert.Equal(t, "GB", u["usageLocation"])
	got, force := srv.Password(acc.ID)
	assert.Equal(t, pw.Reveal(), got)
	assert.True(t, force, "forceChangePasswordNextSignIn")
	assert.Equal(t, boss, srv.Manager(acc.ID))
	assert.Contains(t, srv.Members(g1), acc.ID)
	assert.Contains(t, srv.Members(g2), acc.ID)

	// Read back: every attribute we wrote compares equal, so a diff is empty.
	found, err := c.FindAccount(ctx, connectors.Key{Attribute: "employee_id", Value: "E1001"})
	require.NoError(t, err)
	assert.Equal(t, acc.ID, found.ID)
	assert.True(t, found.Active)
	for k, v := range joinerAttrs() {
		want := v
		if k == "usage_location" {
			want = "GB"
		}
		assert.Equal(t, want, found.Attributes[k], k)
	}
	assert.Equal(t, "grace@contoso.com", found.Attributes["manager"])
	assert.Equal(t, boss, found.Attributes["manager_id"])

	// A rerun (worker died after the create) adopts the account: no duplicate.
	again, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw, GroupIDs: []string{g1, g2}, Activate: true})
	require.NoError(t, err)
	assert.Equal(t, acc.ID, again.ID)
	assert.Equal(t, 2, srv.Users())
	assert.Len(t, srv.Members(g1), 1)
}

func TestCreateWithoutPasswordOrActivation(t *testing.T) {
	srv, c := setup(t)
	acc, err := c.CreateAccount(context.Background(), joinerAttrs(), connectors.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, acc.Active, "pre-hire accounts stay disabled until the start date")
	pw, force := srv.Password(acc.ID)
	assert.GreaterOrEqual(t, len(pw), 16, "a random password is set")
	assert.True(t, force)
	assert.Equal(t, 1, srv.Requests(), "no groups, no manager: one request")
}

func TestCreateConflicts(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	existing := seedUser(srv, "ada.lovelace@contoso.com", "E1001")

	acc, err := c.CreateAccount(ctx, joinerAttrs(), connectors.CreateOptions{Activate: true})
	require.NoError(t, err, "same UPN and employee ID: adopt")
	assert.Equal(t, existing, acc.ID)

	other := joinerAttrs()
	other["employee_id"] = "E2002"
	_, err = c.CreateAccount(ctx, other, connectors.CreateOptions{Activate: true})
	require.ErrorIs(t, err, connectors.ErrConflict, "UPN of another employee: let the caller try a fallback")
	assert.True(t, connectors.IsPermanent(err))

	dupMail := joinerAttrs()
	dupMail["user_name"] = "ada.l@contoso.com"
	dupMail["email"] = "ada.lovelace@contoso.com"
	srv.AddUser(map[string]any{"userPrincipalName": "x@contoso.com", "mail": "ada.lovelace@contoso.com"})
	_, err = c.CreateAccount(ctx, dupMail, connectors.CreateOptions{})
	require.ErrorIs(t, err, connectors.ErrConflict)
	assert.Equal(t, 2, srv.Users(), "nothing created")
}

func TestBadInputSendsNothing(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t, func(cfg *entra.Config) { cfg.VerifiedDomains = []string{"contoso.com"} })
	cases := []struct {
		name  string
		run   func() error
		field string
	}{
		{"UPN outside verified domains", func() error {
			a := joinerAttrs()
			a["user_name"] = "ada@fabrikam.com"
			_, err := c.CreateAccount(ctx, a, connectors.CreateOptions{})
			return err
		}, "user_principal_name"},
		{"UPN without domain", func() error {
			a := joinerAttrs()
			a["user_name"] = "ada"
			_, err := c.CreateAccount(ctx, a, connectors.CreateOptions{})
			return err
		}, "user_principal_name"},
		{"missing UPN", func() error {
			_, err := c.CreateAccount(ctx, connectors.Attributes{"given_name": "Ada"}, connectors.CreateOptions{})
			return err
		}, "user_principal_name"},
		{"unknown attribute", func() error {
			return c.UpdateAccount(ctx, "id-1", connectors.Diff{"shoe_size": "42"})
		}, "shoe_size"},
		{"bad hire date", func() error {
			return c.UpdateAccount(ctx, "id-1", connectors.Diff{"employee_hire_date": "next monday"})
		}, "employee_hire_date"},
		{"bad usage location", func() error {
			return c.UpdateAccount(ctx, "id-1", connectors.Diff{"usage_location": "Germany"})
		}, "usage_location"},
		{"clear display name", func() error {
			return c.UpdateAccount(ctx, "id-1", connectors.Diff{"display_name": ""})
		}, "display_name"},
		{"password as attribute", func() error {
			return c.UpdateAccount(ctx, "id-1", connectors.Diff{"password": "Secr3t!!"})
		}, "password"},
		{"empty account id", func() error { return c.Delete(ctx, "") }, "account id"},
		{"lookup by unsupported key", func() error {
			_, err := c.FindAccount(ctx, connectors.Key{Attribute: "department", Value: "x"})
			return err
		}, "department"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			require.Error(t, err)
			assert.True(t, connectors.IsPermanent(err), "%v", err)
			assert.Contains(t, err.Error(), tc.field)
			assert.NotContains(t, err.Error(), "Secr3t!!")
		})
	}
	assert.Zero(t, srv.Requests(), srv.Log())
	assert.Zero(t, srv.TokenRequests())
}

func TestUnverifiedDomainRefusedByGraph(t *testing.T) {
	srv, c := setup(t) // no VerifiedDomains: Graph's 400 decides
	a := joinerAttrs()
	a["user_name"] = "ada@fabrikam.com"
	_, err := c.CreateAccount(context.Background(), a, connectors.CreateOptions{})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, entra.TypeValidation, pe.Type)
	assert.Contains(t, err.Error(), "verified domain names")
	assert.Zero(t, srv.Users())
}

func TestFindAccount(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "o'brien@contoso.com", "E7")
	seedUser(srv, "twin1@contoso.com", "E9")
	seedUser(srv, "twin2@contoso.com", "E9")

	for _, key := range []connectors.Key{
		{Attribute: "user_name", Value: "O'Brien@contoso.com"}, // quote escaped, UPN compared without case
		{Attribute: "user_principal_name", Value: "o'brien@contoso.com"},
		{Attribute: "employee_id", Value: "E7"},
		{Attribute: "id", Value: id},
	} {
		acc, err := c.FindAccount(ctx, key)
		require.NoError(t, err, key)
		assert.Equal(t, id, acc.ID)
		assert.Equal(t, "Engineering", acc.Attributes["department"])
	}
	_, err := c.FindAccount(ctx, connectors.Key{Attribute: "employee_id", Value: "E9"})
	require.ErrorIs(t, err, connectors.ErrConflict, "two accounts share an employee ID")
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "employee_id", Value: "x' or '1' eq '1"})
	require.ErrorIs(t, err, connectors.ErrNotFound, "injection attempt stays a literal")
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: "00000000-0000-0000-0000-000000000000"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
}

func TestUpdateAccount(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "ada@contoso.com", "E1")
	seedUser(srv, "boss@contoso.com", "E2")
	boss := srv.UserByUPN("boss@contoso.com")

	require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{}))
	assert.Zero(t, srv.Requests(), "nothing changed: nothing sent")

	require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{
		"department": "Sales", "job_title": "", "manager": "boss@contoso.com", "employee_hire_date": "2027-01-04T09:00:00+01:00",
	}))
	// resolve the manager's UPN, then one $batch: PATCH + PUT manager/$ref.
	assert.ElementsMatch(t, []string{
		"GET /v1.0/users/boss@contoso.com", "POST /v1.0/$batch",
		"batch PATCH /v1.0/users/" + id, "batch PUT /v1.0/users/" + id + "/manager/$ref",
	}, srv.Log())
	u := srv.User(id)
	assert.Equal(t, "Sales", u["department"])
	assert.NotContains(t, u, "jobTitle", "an empty value clears")
	assert.Equal(t, "2027-01-04T08:00:00Z", u["employeeHireDate"])
	assert.Equal(t, "Engineering", srv.User(boss)["department"], "untouched")
	assert.Equal(t, boss, srv.Manager(id))

	srv.ResetCounts()
	require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{"manager": ""}))
	require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{"manager": ""}), "no manager: already done")
	assert.Empty(t, srv.Manager(id))
	assert.Equal(t, 2, srv.Requests())

	err := c.UpdateAccount(ctx, id, connectors.Diff{"manager": "nobody@contoso.com"})
	require.True(t, connectors.IsPermanent(err))
	assert.Contains(t, err.Error(), "manager")

	err = c.UpdateAccount(ctx, "00000000-0000-0000-0000-000000000000", connectors.Diff{"department": "x"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
}

func TestMemberships(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "ada@contoso.com", "E1")
	g := srv.AddGroup(graphtest.GroupSpec{Name: "everyone"})

	require.NoError(t, c.AddMember(ctx, g, id))
	require.NoError(t, c.AddMember(ctx, g, id), "present member: success")
	groups, err := c.Memberships(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, []connectors.Group{{ID: g, Name: "everyone"}}, groups)
	require.NoError(t, c.RemoveMember(ctx, g, id))
	require.NoError(t, c.RemoveMember(ctx, g, id), "absent member: success")
	assert.Empty(t, srv.Members(g))

	err = c.AddMember(ctx, "00000000-0000-0000-0000-000000000000", id)
	require.ErrorIs(t, err, connectors.ErrNotFound)

	var many []string
	for i := range 25 {
		many = append(many, srv.AddGroup(graphtest.GroupSpec{Name: fmt.Sprint("g", i)}))
	}
	srv.ResetCounts()
	require.NoError(t, c.AddMemberships(ctx, id, many))
	assert.Equal(t, 2, srv.Requests(), "25 adds = 2 $batch requests of ≤20")
	assert.Equal(t, 25, srv.BatchedRequests())
	require.NoError(t, c.RemoveMemberships(ctx, id, many[:3]))
	groups, err = c.Memberships(ctx, id)
	require.NoError(t, err)
	assert.Len(t, groups, 22)
}

func TestDeprovision(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "leaver@contoso.com", "E1")
	static := []string{
		srv.AddGroup(graphtest.GroupSpec{Name: "everyone"}),
		srv.AddGroup(graphtest.GroupSpec{Name: "m365", Unified: true}),
		srv.AddGroup(graphtest.GroupSpec{Name: "vpn"}),
	}
	dynamic := srv.AddGroup(graphtest.GroupSpec{Name: "all-engineers", Dynamic: true})
	onPrem := srv.AddGroup(graphtest.GroupSpec{Name: "ad-synced", OnPremises: true})
	for _, g := range append(static, dynamic, onPrem) {
		srv.AddMember(g, id)
	}
	opts := connectors.DeprovisionOptions{Mode: "suspend", RemoveGroups: true, ClearSessions: true}
	require.NoError(t, c.Deprovision(ctx, id, opts))

	assert.Equal(t, 3, srv.Requests(), "$batch (disable + memberOf), $batch (removals), revoke: %v", srv.Log())
	assert.Equal(t, 5, srv.BatchedRequests(), "disable + memberOf, then 3 removes")
	assert.Equal(t, false, srv.User(id)["accountEnabled"])
	for _, g := range static {
		assert.Empty(t, srv.Members(g))
	}
	assert.Equal(t, []string{id}, srv.Members(dynamic), "dynamic groups are left to their rule")
	assert.Equal(t, []string{id}, srv.Members(onPrem), "AD-synced groups are left to AD")
	assert.Equal(t, 1, srv.Revocations(id))

	require.NoError(t, c.Deprovision(ctx, id, opts), "rerun")
	require.NoError(t, c.Deprovision(ctx, "00000000-0000-0000-0000-000000000000", opts), "missing account: done")
	err := c.Deprovision(ctx, id, connectors.DeprovisionOptions{Mode: "shred"})
	require.True(t, connectors.IsPermanent(err))
}

func TestReactivateAndDelete(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := srv.AddUser(map[string]any{"userPrincipalName": "back@contoso.com", "accountEnabled": false})

	require.NoError(t, c.Reactivate(ctx, id))
	assert.Equal(t, true, srv.User(id)["accountEnabled"])
	require.NoError(t, c.Delete(ctx, id))
	assert.True(t, srv.Deleted(id), "soft-deleted to deleted items")
	require.NoError(t, c.Delete(ctx, id), "404: already done")
	require.ErrorIs(t, c.Reactivate(ctx, id), connectors.ErrNotFound)
}

func TestPasswords(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "ada@contoso.com", "E1")

	require.NoError(t, c.SetPassword(ctx, id, secret.New("Synced-Passw0rd")))
	pw, force := srv.Password(id)
	assert.Equal(t, "Synced-Passw0rd", pw)
	assert.False(t, force)

	tmp, err := c.ResetPassword(ctx, id)
	require.NoError(t, err)
	pw, force = srv.Password(id)
	assert.Equal(t, tmp.Reveal(), pw)
	assert.True(t, force)
	assert.NotContains(t, fmt.Sprint(tmp), pw)

	weak := "weakweakweak"
	err = c.SetPassword(ctx, id, secret.New(weak))
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, err.Error(), "Entra's policy")
	assert.NotContains(t, err.Error(), weak, "the password never appears in an error")
}

func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		fault     graphtest.Fault
		rateAfter time.Duration
		transient bool
		permType  string
	}{
		{fault: graphtest.Fault{Status: 429, RetryAfter: "7"}, rateAfter: 7 * time.Second},
		{fault: graphtest.Fault{Status: 429}, rateAfter: 10 * time.Second},
		{fault: graphtest.Fault{Status: 503, RetryAfter: "3"}, rateAfter: 3 * time.Second},
		{fault: graphtest.Fault{Status: 503}, transient: true},
		{fault: graphtest.Fault{Status: 500}, transient: true},
		{fault: graphtest.Fault{Status: 504}, transient: true},
		{fault: graphtest.Fault{Status: 409, Code: "Directory_ConcurrencyViolation"}, transient: true},
		{fault: graphtest.Fault{Status: 401, Times: 2}, permType: entra.TypeAuth}, // the first 401 refreshes the token
		{fault: graphtest.Fault{Status: 403, Message: "Insufficient privileges to complete the operation."}, permType: entra.TypeAuth},
		{fault: graphtest.Fault{Status: 400, Code: "Request_BadRequest", Message: "Invalid value specified for property 'department'."}, permType: entra.TypeValidation},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.fault.Status, tc.fault.RetryAfter), func(t *testing.T) {
			srv, c := setup(t)
			id := seedUser(srv, "ada@contoso.com", "E1")
			tc.fault.Path = "/v1.0/users/"
			srv.FailNext(tc.fault)
			err := c.UpdateAccount(ctx, id, connectors.Diff{"department": "Sales"})
			require.Error(t, err)
			var rl *connectors.RateLimitedError
			var tr *connectors.TransientError
			var pe *connectors.PermanentError
			switch {
			case tc.rateAfter > 0:
				require.ErrorAs(t, err, &rl)
				assert.Equal(t, tc.rateAfter, rl.RetryAfter)
			case tc.transient:
				require.ErrorAs(t, err, &tr)
				assert.False(t, connectors.IsPermanent(err))
			default:
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, tc.permType, pe.Type)
				if tc.fault.Message != "" {
					assert.Contains(t, err.Error(), tc.fault.Message)
				}
			}
			require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{"department": "Sales"}), "the retry succeeds")
			assert.Equal(t, "Sales", srv.User(id)["department"])
		})
	}
}

func TestThrottledInsideBatch(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "ada@contoso.com", "E1")
	g1 := srv.AddGroup(graphtest.GroupSpec{Name: "a"})
	g2 := srv.AddGroup(graphtest.GroupSpec{Name: "b"})
	srv.FailNext(graphtest.Fault{Method: "POST", Path: "/v1.0/groups/" + g2, Status: 429, RetryAfter: "12"})

	err := c.AddMemberships(ctx, id, []string{g1, g2})
	var rl *connectors.RateLimitedError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 12*time.Second, rl.RetryAfter)
	assert.Equal(t, []string{id}, srv.Members(g1), "the other request of the batch went through")

	require.NoError(t, c.AddMemberships(ctx, id, []string{g1, g2}), "retry: present member is success")
	assert.Equal(t, []string{id}, srv.Members(g2))
}

func TestEnsureGroup(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "Project Apollo (EU)", Description: "apollo team"})
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Requests(), "find + create")
	p := srv.Group(g.ID)
	assert.Equal(t, true, p["securityEnabled"])
	assert.Equal(t, false, p["mailEnabled"])
	assert.Equal(t, "ProjectApolloEU", p["mailNickname"])

	again, err := c.EnsureGroup(ctx, connectors.Group{Name: "Project Apollo (EU)"})
	require.NoError(t, err)
	assert.Equal(t, g.ID, again.ID)
	assert.Len(t, srv.GroupByName("Project Apollo (EU)"), 1)

	found, err := c.FindGroup(ctx, "project apollo (eu)")
	require.NoError(t, err)
	assert.Equal(t, "apollo team", found.Description)

	older := srv.AddGroup(graphtest.GroupSpec{Name: "twins"})
	srv.AddGroup(graphtest.GroupSpec{Name: "twins"})
	twin, err := c.EnsureGroup(ctx, connectors.Group{Name: "twins"})
	require.NoError(t, err, "two groups of one name: the oldest, every time")
	assert.Equal(t, older, twin.ID)
	_, err = c.FindGroup(ctx, "nope")
	require.ErrorIs(t, err, connectors.ErrNotFound)
}

func TestListAccounts(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	for i := range 5 {
		seedUser(srv, fmt.Sprintf("u%d@contoso.com", i), fmt.Sprint("E", i))
	}
	var all []connectors.Account
	cursor, pages := "", 0
	for {
		page, next, err := c.ListAccounts(ctx, cursor, 2)
		require.NoError(t, err)
		all = append(all, page...)
		pages++
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Len(t, all, 5)
	assert.Equal(t, 3, pages)
	assert.Equal(t, "E4", all[4].Attributes["employee_id"])

	_, _, err := c.ListAccounts(ctx, "https://evil.example/users?$skiptoken=1", 2)
	require.True(t, connectors.IsPermanent(err), "a cursor never sends the token elsewhere")
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong secret", func(t *testing.T) {
		srv := graphtest.New(t, graphtest.Options{})
		c := connect(t, srv, func(cfg *entra.Config) { cfg.ClientSecret = secret.New("not-the-secret-xyz") })
		_, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "a@contoso.com"})
		var pe *connectors.PermanentError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, entra.TypeAuth, pe.Type)
		assert.Contains(t, err.Error(), "AADSTS7000215")
		assert.NotContains(t, err.Error(), "not-the-secret-xyz")
		assert.Zero(t, srv.Requests())
	})
	t.Run("unknown tenant", func(t *testing.T) {
		srv := graphtest.New(t, graphtest.Options{})
		c := connect(t, srv, func(cfg *entra.Config) { cfg.Tenant = "fabrikam.onmicrosoft.com" })
		err := c.CheckAccess(ctx)
		require.True(t, connectors.IsPermanent(err))
		assert.Contains(t, err.Error(), "AADSTS90002")
	})
	t.Run("token endpoint down", func(t *testing.T) {
		srv := graphtest.New(t, graphtest.Options{})
		c := connect(t, srv)
		srv.FailNext(graphtest.Fault{Path: "/" + srv.Options().Tenant + "/oauth2", Status: 503})
		err := c.CheckAccess(ctx)
		var tr *connectors.TransientError
		require.ErrorAs(t, err, &tr)
		require.NoError(t, c.CheckAccess(ctx))
	})
	t.Run("token revoked early", func(t *testing.T) {
		srv := graphtest.New(t, graphtest.Options{})
		c := connect(t, srv)
		require.NoError(t, c.CheckAccess(ctx))
		srv.ExpireTokens()
		require.NoError(t, c.CheckAccess(ctx), "a 401 fetches a new token once")
		assert.Equal(t, 2, srv.TokenRequests())
		assert.Equal(t, 3, srv.Requests())
	})
	t.Run("certificate", func(t *testing.T) {
		cert, key := selfSigned(t)
		srv := graphtest.New(t, graphtest.Options{Certificate: cert})
		c := connect(t, srv, func(cfg *entra.Config) {
			cfg.ClientSecret = secret.Secret{}
			cfg.Certificate, cfg.PrivateKey = cert, key
		})
		for range 3 {
			require.NoError(t, c.CheckAccess(ctx))
		}
		assert.Equal(t, 1, srv.TokenRequests(), "the token is cached until it expires")

		other, otherKey := selfSigned(t)
		bad := connect(t, srv, func(cfg *entra.Config) {
			cfg.ClientSecret = secret.Secret{}
			cfg.Certificate, cfg.PrivateKey = other, otherKey
		})
		err := bad.CheckAccess(ctx)
		require.True(t, connectors.IsPermanent(err))
		assert.Contains(t, err.Error(), "AADSTS700027")
	})
}

func selfSigned(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jml"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func TestConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	_, err := entra.ConfigFromEnv(env(nil))
	require.True(t, connectors.IsPermanent(err))
	for _, v := range []string{"ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET"} {
		assert.Contains(t, err.Error(), v)
	}
	_, err = entra.ConfigFromEnv(env(map[string]string{"ENTRA_TENANT_ID": "t", "ENTRA_CLIENT_ID": "c"}))
	assert.Contains(t, err.Error(), "ENTRA_CLIENT_SECRET")
	assert.NotContains(t, err.Error(), "ENTRA_TENANT_ID")

	cfg, err := entra.ConfigFromEnv(env(map[string]string{
		"ENTRA_TENANT_ID": "t", "ENTRA_CLIENT_ID": "c", "ENTRA_CLIENT_SECRET": "hunter2-value",
		"ENTRA_VERIFIED_DOMAINS": "contoso.com, contoso.onmicrosoft.com",
	}))
	require.NoError(t, err)
	assert.Equal(t, []string{"contoso.com", "contoso.onmicrosoft.com"}, cfg.VerifiedDomains)
	assert.NotContains(t, fmt.Sprintf("%+v %#v", cfg, cfg), "hunter2-value", "a printed Config hides the secret")

	for name, mod := range map[string]func(*entra.Config){
		"no tenant":        func(c *entra.Config) { c.Tenant = "" },
		"plain http graph": func(c *entra.Config) { c.GraphURL = "http://graph.example.com/v1.0" },
		"no credential":    func(c *entra.Config) { c.ClientSecret = secret.Secret{} },
	} {
		c := cfg
		mod(&c)
		_, err := entra.New(context.Background(), c)
		assert.True(t, connectors.IsPermanent(err), name)
	}
}

func TestCertificateFromEnv(t *testing.T) {
	cert, key := selfSigned(t)
	file := filepath.Join(t.TempDir(), "app.pem")
	pemBytes := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	require.NoError(t, os.WriteFile(file, pemBytes, 0o600))

	srv := graphtest.New(t, graphtest.Options{Certificate: cert})
	o := srv.Options()
	cfg, err := entra.ConfigFromEnv(func(k string) string {
		return map[string]string{
			"ENTRA_TENANT_ID": o.Tenant, "ENTRA_CLIENT_ID": o.ClientID, "ENTRA_CLIENT_CERTIFICATE_FILE": file,
			"ENTRA_AUTHORITY_URL": srv.AuthorityURL(), "ENTRA_GRAPH_URL": srv.GraphURL(),
		}[k]
	})
	require.NoError(t, err)
	printed := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
	assert.Contains(t, printed, "certificate")
	assert.NotContains(t, printed, key.D.String(), "the private key never prints")

	c, err := entra.New(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, c.CheckAccess(context.Background()))

	_, err = entra.ConfigFromEnv(func(k string) string {
		return map[string]string{"ENTRA_TENANT_ID": "t", "ENTRA_CLIENT_ID": "c", "ENTRA_CLIENT_CERTIFICATE_FILE": file + ".missing"}[k]
	})
	require.True(t, connectors.IsPermanent(err))
	assert.Contains(t, err.Error(), "ENTRA_CLIENT_CERTIFICATE_FILE")
}

// BenchmarkJoiner measures find + create + $batch(2 groups) against the
// loopback Graph.
func BenchmarkJoiner(b *testing.B) {
	ctx := context.Background()
	srv, c := setup(b)
	groups := []string{srv.AddGroup(graphtest.GroupSpec{Name: "a"}), srv.AddGroup(graphtest.GroupSpec{Name: "b"})}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a := joinerAttrs()
		a["user_name"] = fmt.Sprintf("user%d@contoso.com", i)
		a["email"] = a["user_name"]
		a["employee_id"] = fmt.Sprint("B", i)
		if _, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: a["user_name"]}); !errors.Is(err, connectors.ErrNotFound) {
			b.Fatal(err)
		}
		if _, err := c.CreateAccount(ctx, a, connectors.CreateOptions{GroupIDs: groups, Activate: true}); err != nil {
			b.Fatal(err)
		}
	}
}
