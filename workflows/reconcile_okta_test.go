package workflows_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/metrics"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// TestReconcileAgainstOkta is TestReconcileAgainstSCIM's planted drift
// against the Okta stand-in through the SDK: 10 missing managed
// memberships added, 3 leftovers suspended, 7 orphans and 2 disputed
// accounts reported, unmanaged groups untouched; the next cycle writes
// nothing.
func TestReconcileAgainstOkta(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	peer := oktatest.Start(t)
	conn, err := okta.New(ctx, okta.Config{OrgURL: peer.OrgURL, Token: secret.New(peer.Token), AllowInsecure: true})
	require.NoError(t, err)

	group := map[string]string{}
	for _, g := range []string{"all-staff", "dept-d0", "dept-d1", "dept-d2", "dept-d3", "dept-d4", "vpn", "proj-1", "proj-2", "proj-3", "proj-4", "proj-5"} {
		gg, err := conn.EnsureGroup(ctx, connectors.Group{Name: g})
		require.NoError(t, err)
		group[g] = gg.ID
	}
	var (
		mu      sync.Mutex
		account = map[string]string{} // login → id
	)
	type seed struct {
		p      activities.IdentityRecord
		groups []string
	}
	var seeds []seed
	var dir activities.StaticDirectory
	for i := 1; i <= n; i++ {
		p := reconPerson(i, "@acme.test")
		dir = append(dir, p)
		gs := []string{"all-staff", fmt.Sprintf("dept-d%d", i%5)}
		switch {
		case slices.Contains([]int{7, 17, 27, 37, 47}, i): // 5 people lose all-staff
			gs = gs[1:]
		case slices.Contains([]int{3, 8, 13, 18, 23}, i): // 5 people lose dept-d3
			gs = gs[:1]
		}
		if i%10 == 0 && i <= 50 {
			gs = append(gs, fmt.Sprintf("proj-%d", i/10)) // unmanaged
		}
		seeds = append(seeds, seed{p, gs})
	}
	missing := 0
	for _, s := range seeds {
		missing += 2 - min(2, len(s.groups)-strings.Count(strings.Join(s.groups, ","), "proj-"))
	}
	require.Equal(t, 10, missing)
	extra := func(login string, active bool, groups ...string) seed {
		return seed{activities.IdentityRecord{Attributes: map[string]string{"username": login, "email": login, "first": "X", "last": "Y"}, Status: map[bool]string{true: "a", false: "d"}[active]}, groups}
	}
	for i := 1; i <= 7; i++ {
		seeds = append(seeds, extra(fmt.Sprintf("orphan%d@acme.test", i), true, "dept-d0"))
	}
	seeds = append(seeds, extra("breakglass@acme.test", true, "all-staff"))
	for i := n + 1; i <= n+3; i++ {
		p := reconPerson(i, "@acme.test")
		p.Status = contract.StatusDeprovisioned
		dir = append(dir, p)
		seeds = append(seeds, seed{p, []string{"all-staff"}})
	}
	for i, name := range []string{"twin1@acme.test", "twin2@acme.test"} {
		seeds = append(seeds, extra(name, true))
		for j := 0; j < 2; j++ {
			p := reconPerson(n+10+2*i+j, "@acme.test")
			p.Attributes["username"], p.Attributes["email"] = name, name
			dir = append(dir, p)
		}
	}
	// Create the accounts and memberships, eight at a time.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, s := range seeds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := s.p.Attributes
			acct, err := conn.CreateAccount(ctx, connectors.Attributes{"login": a["username"], "email": a["email"], "first_name": a["first"], "last_name": a["last"]},
				connectors.CreateOptions{Activate: true})
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			account[a["username"]] = acct.ID
			mu.Unlock()
			for _, g := range s.groups {
				assert.NoError(t, conn.AddMember(ctx, group[g], acct.ID))
			}
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())
	dir[len(dir)-1].Accounts = map[string]string{"app": account["twin2@acme.test"]}
	dir[len(dir)-2].Accounts = map[string]string{"app": account["twin2@acme.test"]}

	reg := prometheus.NewRegistry()
	mh, err := metrics.NewSDKHandler(reg, nil)
	require.NoError(t, err)
	c := temporalServer(t).NewClientWithOptions(client.Options{MetricsHandler: mh})
	t.Cleanup(c.Close)
	acts := activities.New(activities.Config{
		Policy: reconcilePolicy(policy.Target{Type: "okta", OrgURL: peer.OrgURL}, "login", policy.Reconcile{Leftovers: policy.ReconcileDisable,
			Targets: map[string]policy.ReconcileTarget{"app": {NeverTouch: []string{"breakglass@acme.test", "testuser@okta.local"}}}}),
		Targets: map[string]any{"app": conn}, Directory: dir, Client: c,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	cycle := func(k int) (activities.ReconcileResult, []string) {
		t.Helper()
		peer.Reset()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-okta-%d", contract.AttributeSyncScheduleID, k), TaskQueue: contract.TaskQueue},
			contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
		require.NoError(t, err)
		var res workflows.AttributeSyncResult
		require.NoError(t, r.Get(ctx, &res))
		var writes []string
		for _, l := range peer.Log() {
			if !strings.HasPrefix(l, "GET ") {
				writes = append(writes, l)
			}
		}
		return res.Reconcile["app"], writes
	}
	members := func(g string) map[string]bool {
		out := map[string]bool{}
		for cursor := ""; ; {
			ids, next, err := conn.ListMembers(ctx, group[g], cursor, 0)
			require.NoError(t, err)
			for _, id := range ids {
				out[id] = true
			}
			if next == "" {
				return out
			}
			cursor = next
		}
	}
	projBefore := map[string]map[string]bool{}
	for i := 1; i <= 5; i++ {
		projBefore[fmt.Sprint("proj-", i)] = members(fmt.Sprint("proj-", i))
	}

	r, writes := cycle(1)
	t.Logf("cycle 1: %+v", r.Counts)
	assert.Empty(t, r.Problems)
	puts, suspends := 0, 0
	for _, l := range writes {
		switch {
		case strings.HasPrefix(l, "PUT /api/v1/groups/"):
			puts++
		case strings.HasSuffix(strings.SplitN(l, "?", 2)[0], "/lifecycle/suspend"):
			suspends++
		}
	}
	assert.Len(t, writes, 13, "%v", writes)
	assert.Equal(t, 10, puts, "10 memberships added")
	assert.Equal(t, 3, suspends, "3 leftovers suspended")
	assert.Equal(t, 10, r.Counts.Added)
	assert.Zero(t, r.Counts.Removed)
	assert.Equal(t, 7, r.Counts.Orphans)
	assert.Equal(t, 3, r.Counts.LeftoversDisabled)
	assert.Equal(t, 2, r.Counts.Disputed)
	assert.Equal(t, 2, r.Counts.Protected, "break-glass and the stand-in's built-in user")
	assert.Equal(t, n, r.Counts.Linked)
	for g, want := range projBefore {
		assert.Equal(t, want, members(g), g)
	}
	assert.Len(t, members("all-staff"), n+4, "everyone, the leftovers and the protected account")
	assert.Len(t, members("dept-d0"), n/5+7, "orphans keep their groups")

	// The cycle's counts reach Prometheus, by target.
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jml_reconcile_memberships_added_total jml workflow counter jml_reconcile_memberships_added (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_memberships_added_total counter
jml_reconcile_memberships_added_total{target="app"} 10
# HELP jml_reconcile_orphans_total jml workflow counter jml_reconcile_orphans (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_orphans_total counter
jml_reconcile_orphans_total{target="app"} 7
# HELP jml_reconcile_leftovers_disabled_total jml workflow counter jml_reconcile_leftovers_disabled (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_leftovers_disabled_total counter
jml_reconcile_leftovers_disabled_total{target="app"} 3
# HELP jml_reconcile_disputed_total jml workflow counter jml_reconcile_disputed (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_disputed_total counter
jml_reconcile_disputed_total{target="app"} 2
`), "jml_reconcile_memberships_added_total", "jml_reconcile_orphans_total", "jml_reconcile_leftovers_disabled_total", "jml_reconcile_disputed_total"))

	r, writes = cycle(2)
	t.Logf("cycle 2: %+v", r.Counts)
	assert.Empty(t, writes)
	assert.Equal(t, 7, r.Counts.Orphans)
	assert.Equal(t, 2, r.Counts.Disputed)
	assert.Zero(t, r.Counts.Leftovers)
	assert.Equal(t, 3, r.Counts.Deprovisioned)
}
