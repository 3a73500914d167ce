package entra_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/secret"
)

// Tests of issue 33: the connector against the stricter Graph stand-in,
// which refuses what Microsoft Graph documents it refuses.

// Item 1: Graph keeps one business phone; a second is refused before any
// request, naming the attribute.
func TestOneBusinessPhone(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	attrs := joinerAttrs()
	attrs["business_phones"] = "+44 20 7946 0000, +44 20 7946 0001"
	pw := secret.New("Initial-Passw0rd!x")
	_, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, entra.TypeValidation, pe.Type)
	assert.Contains(t, err.Error(), "business_phones")
	assert.Contains(t, err.Error(), "one business phone")
	assert.Zero(t, srv.Requests(), "refused before anything is sent")
	assert.Zero(t, srv.Users())

	attrs["business_phones"] = "+44 20 7946 0000"
	acc, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw})
	require.NoError(t, err)
	assert.Equal(t, []any{"+44 20 7946 0000"}, srv.User(acc.ID)["businessPhones"])
	assert.Equal(t, "+44 20 7946 0000", acc.Attributes["business_phones"])
}

// Item 2: Entra refuses non-ASCII passwords; the connector refuses them
// first, for a create and for a password set, without quoting them.
func TestPasswordASCIIOnly(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	id := seedUser(srv, "ada@contoso.com", "E1")
	srv.ResetCounts()
	for _, pw := range []string{"Grüße-aus-Köln-1", "Passw0rd-🔑-long"} {
		err := c.SetPassword(ctx, id, secret.New(pw))
		var pe *connectors.PermanentError
		require.ErrorAs(t, err, &pe, pw)
		assert.Equal(t, entra.TypeValidation, pe.Type)
		assert.NotContains(t, err.Error(), pw)
		p := secret.New(pw)
		_, err = c.CreateAccount(ctx, joinerAttrs(), connectors.CreateOptions{Password: &p})
		require.ErrorAs(t, err, &pe, pw)
	}
	assert.Zero(t, srv.Requests(), "nothing sent")
	require.NoError(t, c.SetPassword(ctx, id, secret.New("Plain ASCII pass 1")), "spaces are allowed")
}

// Item 3: without User-LifeCycleInfo.ReadWrite.All Graph refuses to write
// employeeHireDate; the error names the permission. The date is read only
// when the policy maps it (it costs a permission).
func TestLifecyclePermission(t *testing.T) {
	ctx := context.Background()
	var roles []string
	for _, r := range graphtest.DefaultRoles {
		if r != graphtest.RoleLifeCycle {
			roles = append(roles, r)
		}
	}
	srv := graphtest.New(t, graphtest.Options{Roles: roles})
	var urls []string
	var mu sync.Mutex
	rec := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		urls = append(urls, r.URL.String())
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := connect(t, srv, func(cfg *entra.Config) { cfg.HTTPClient = rec })
	id := seedUser(srv, "ada@contoso.com", "E1")

	err := c.UpdateAccount(ctx, id, connectors.Diff{"employee_hire_date": "2027-01-04"})
	var pe *connectors.PermanentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, entra.TypeAuth, pe.Type)
	assert.Contains(t, err.Error(), "User-LifeCycleInfo.ReadWrite.All")
	require.NoError(t, c.UpdateAccount(ctx, id, connectors.Diff{"department": "Sales"}), "other attributes need no lifecycle permission")

	_, err = c.ReadAccount(ctx, id)
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(urls, "\n"), "employeeHireDate", "not mapped: not read")
	assert.Contains(t, entra.Permissions, "User-LifeCycleInfo.ReadWrite.All", "documented")

	mapped := connect(t, srv, func(cfg *entra.Config) { cfg.HTTPClient, cfg.LifecycleDates = rec, true })
	_, err = mapped.ReadAccount(ctx, id)
	require.NoError(t, err)
	assert.Contains(t, urls[len(urls)-1], "employeeHireDate", "mapped: read back")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Item 4: $top is the caller's page size (Graph pages hold at most 999).
func TestPageSizeHonoured(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	g := srv.AddGroup(graphtest.GroupSpec{Name: "eng"})
	for _, upn := range []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"} {
		srv.AddMember(g, seedUser(srv, upn, upn))
	}
	ids, next, err := c.ListMembers(ctx, g, "", 2)
	require.NoError(t, err)
	assert.Len(t, ids, 2, "a page of 2")
	require.NotEmpty(t, next)
	rest, next, err := c.ListMembers(ctx, g, next, 2)
	require.NoError(t, err)
	assert.Len(t, rest, 1)
	assert.Empty(t, next)

	accts, _, err := c.ListAccounts(ctx, "", 5000)
	require.NoError(t, err, "more than Graph's 999 is asked as 999, not refused")
	assert.Len(t, accts, 3)
	groups, _, err := c.ListGroups(ctx, "", 0)
	require.NoError(t, err)
	assert.Len(t, groups, 1)
}

// Item 5: a group just created is invisible to the displayName $filter
// for a while; ensuring it again (a retry after a lost answer) finds the
// same group instead of creating a second, and two groups of one name
// resolve to the same one every time.
func TestEnsureGroupIdempotentUnderLag(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, graphtest.Options{ReplicationLag: time.Second})
	c := connect(t, srv, func(cfg *entra.Config) { cfg.Consistency = 20 * time.Second })
	first, err := c.EnsureGroup(ctx, connectors.Group{Name: "Project Apollo"})
	require.NoError(t, err)
	again, err := c.EnsureGroup(ctx, connectors.Group{Name: "Project Apollo"})
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Len(t, srv.GroupByName("Project Apollo"), 1, "no duplicate")

	a := srv.AddGroup(graphtest.GroupSpec{Name: "twins"})
	srv.AddGroup(graphtest.GroupSpec{Name: "twins"})
	for range 3 {
		g, err := c.FindGroup(ctx, "twins")
		require.NoError(t, err, "a duplicate name is not a permanent conflict")
		assert.Equal(t, a, g.ID)
	}
}

// Item 6: with replication lag, the created account's manager and groups
// (a $batch whose requests answer 404 until the account replicates) are
// retried by the account's ID; a second create of the same person (the
// first answer lost) adopts the account by its UPN, not by a lagging
// $filter, and creates no duplicate.
func TestCreateUnderReplicationLag(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, graphtest.Options{ReplicationLag: time.Second})
	c := connect(t, srv, func(cfg *entra.Config) { cfg.Consistency = 20 * time.Second })
	boss := seedUser(srv, "grace@contoso.com", "E1")
	g := srv.AddGroup(graphtest.GroupSpec{Name: "everyone"})
	attrs := joinerAttrs()
	delete(attrs, "employee_hire_date")
	attrs["manager"] = boss
	pw := secret.New("Initial-Passw0rd!x")

	acc, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Password: &pw, GroupIDs: []string{g}})
	require.NoError(t, err)
	assert.Equal(t, boss, srv.Manager(acc.ID))
	assert.Equal(t, []string{acc.ID}, srv.Members(g))

	lost := graphtest.New(t, graphtest.Options{ReplicationLag: time.Second})
	c2 := connect(t, lost, func(cfg *entra.Config) { cfg.Consistency = 20 * time.Second })
	one, err := c2.CreateAccount(ctx, attrs2(), connectors.CreateOptions{Password: &pw})
	require.NoError(t, err)
	two, err := c2.CreateAccount(ctx, attrs2(), connectors.CreateOptions{Password: &pw})
	require.NoError(t, err, "the retry adopts the account it created")
	assert.Equal(t, one.ID, two.ID)
	assert.Equal(t, 1, lost.Users(), "no duplicate")
}

func attrs2() connectors.Attributes {
	a := joinerAttrs()
	delete(a, "employee_hire_date")
	return a
}

// Throttling: Graph answers 429 with Retry-After, each request of a
// $batch on its own; the connector reports the delay.
func TestThrottledRetryAfter(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, graphtest.Options{Throttle: graphtest.Throttle{Limit: 5, Window: time.Hour}})
	c := connect(t, srv)
	id := seedUser(srv, "ada@contoso.com", "E1")
	var groups []string
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		groups = append(groups, srv.AddGroup(graphtest.GroupSpec{Name: n}))
	}
	err := c.AddMemberships(ctx, id, groups)
	var rl *connectors.RateLimitedError
	require.ErrorAs(t, err, &rl)
	assert.GreaterOrEqual(t, rl.RetryAfter, time.Second)
	assert.Positive(t, srv.Throttled())
}
