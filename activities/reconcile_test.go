package activities_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

// memTarget is an in-memory target for unit tests of reconciliation's own
// logic: accounts, groups with members, and a log of writes.
type memTarget struct {
	mu       sync.Mutex
	accounts []connectors.Account
	groups   []connectors.GroupMembers
	writes   []string
}

func (m *memTarget) ListAccounts(_ context.Context, _ string, _ int) ([]connectors.Account, string, error) {
	return m.accounts, "", nil
}
func (m *memTarget) ListGroups(_ context.Context, _ string, _ int) ([]connectors.GroupMembers, string, error) {
	return m.groups, "", nil
}
func (m *memTarget) ListMembers(context.Context, string, string, int) ([]string, string, error) {
	return nil, "", nil
}
func (m *memTarget) Memberships(context.Context, string) ([]connectors.Group, error) { return nil, nil }
func (m *memTarget) AddMember(_ context.Context, g, a string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, "add "+g+" "+a)
	return nil
}
func (m *memTarget) RemoveMember(_ context.Context, g, a string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, "remove "+g+" "+a)
	return nil
}

func reconcileEnv(t *testing.T, p *policy.Policy, target *memTarget, dir activities.StaticDirectory) *testsuite.TestActivityEnvironment {
	t.Helper()
	acts := activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": target}, Directory: dir})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return env
}

func runReconcile(t *testing.T, env *testsuite.TestActivityEnvironment, release bool) activities.ReconcileResult {
	t.Helper()
	v, err := env.ExecuteActivity("ReconcileTarget", activities.ReconcileInput{Snapshot: "s", Target: "app", Release: release})
	require.NoError(t, err)
	var res activities.ReconcileResult
	require.NoError(t, v.Get(&res))
	return res
}

// TestMassRemovalShare: a group of 10 with a 20 % share may lose 2 members
// in a cycle; a third removal holds all of that group's removals.
func TestMassRemovalShare(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: map[string]string{"user_name": "{u}"}}},
			{When: `team eq "a"`, ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"team-a"}}},
		}},
		Reconcile: policy.Reconcile{MaxGroupRemovalPercent: 20},
	}
	for _, tc := range []struct {
		leave   int
		removed int
		held    int
	}{{1, 1, 0}, {2, 2, 0}, {3, 0, 3}} {
		t.Run(fmt.Sprint(tc.leave, " leave"), func(t *testing.T) {
			target := &memTarget{groups: []connectors.GroupMembers{{Group: connectors.Group{ID: "g1", Name: "team-a"}}}}
			var dir activities.StaticDirectory
			for i := 0; i < 10; i++ {
				id := fmt.Sprint("a", i)
				team := "a"
				if i < tc.leave {
					team = "b"
				}
				target.accounts = append(target.accounts, connectors.Account{ID: id, Active: true, Attributes: connectors.Attributes{"user_name": "u" + id}})
				target.groups[0].Members = append(target.groups[0].Members, id)
				dir = append(dir, activities.IdentityRecord{EmployeeID: "E" + id, Attributes: map[string]string{"u": "u" + id, "team": team}})
			}
			env := reconcileEnv(t, p, target, dir)
			res := runReconcile(t, env, false)
			assert.Equal(t, tc.leave, res.Counts.ExtraFound)
			assert.Equal(t, tc.removed, res.Counts.Removed)
			assert.Equal(t, tc.held, res.Counts.Blocked)
			assert.Len(t, target.writes, tc.removed)
			if tc.held > 0 {
				assert.Equal(t, []activities.BlockedGroup{{Group: "team-a", Remove: 3, Members: 10}}, res.Blocked)
				assert.Contains(t, res.BlockedReason, "more than 20%")
				res = runReconcile(t, env, true)
				assert.Equal(t, 3, res.Counts.Removed, "released")
			}
		})
	}
}

// TestUnevaluableGroupRulesTouchNothing: a rule that reads another step's
// output cannot be rendered here: nobody's groups change and it is reported.
func TestUnevaluableGroupRulesTouchNothing(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: map[string]string{"user_name": "{u}"}}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"all", "org-{ScimUser.id}"}}},
		}},
		Reconcile: policy.Reconcile{Orphans: policy.ReconcileReport},
	}
	target := &memTarget{
		accounts: []connectors.Account{{ID: "1", Active: true, Attributes: connectors.Attributes{"user_name": "ada"}}},
		groups:   []connectors.GroupMembers{{Group: connectors.Group{ID: "g", Name: "org-x"}, Members: []string{"1"}}, {Group: connectors.Group{ID: "all", Name: "all"}}},
	}
	env := reconcileEnv(t, p, target, activities.StaticDirectory{{EmployeeID: "E1", Attributes: map[string]string{"u": "ada"}}})
	res := runReconcile(t, env, false)
	assert.Empty(t, target.writes)
	assert.Equal(t, 1, res.Counts.Linked)
	require.Len(t, res.Problems, 1)
	assert.Contains(t, res.Problems[0].Error, "group rules could not be evaluated for 1 people")
	assert.True(t, slices.ContainsFunc(res.Problems, func(p activities.AttrSyncProblem) bool { return p.Target == "app" }))
}

// TestInFlightAccountsAreNeverOrphansOrLeftovers: with orphans and
// leftovers set to disable, the accounts of people whose run is in flight
// are linked and left alone — a new hire's account known only by the
// employee ID the sync step wrote (external_id), a rehire's reactivated
// account — while the same account of a person with no run in flight is
// an orphan.
func TestInFlightAccountsAreNeverOrphansOrLeftovers(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: map[string]string{"user_name": "{u}", "external_id": "{employee_id}"}}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"team-{team}"}}},
		}},
		Reconcile: policy.Reconcile{Orphans: policy.ReconcileDisable, Leftovers: policy.ReconcileDisable},
	}
	acct := func(id, eid string) connectors.Account {
		return connectors.Account{ID: id, Active: true, Attributes: connectors.Attributes{"user_name": "u" + id, "external_id": eid}}
	}
	target := &memTarget{
		accounts: []connectors.Account{acct("1", "e1"), acct("2", "E2"), acct("3", "E3")},
		groups:   []connectors.GroupMembers{{Group: connectors.Group{ID: "g", Name: "team-a"}, Members: []string{"2"}}},
	}
	dir := activities.StaticDirectory{
		{EmployeeID: "E1", InFlight: true}, // a joiner's account, its link not known yet
		{EmployeeID: "E2", InFlight: true, Status: contract.StatusDeprovisioned, Accounts: map[string]string{"app": "2"}}, // a rehire
		{EmployeeID: "E3"}, // published nothing, no run: its employee ID alone does not link
	}
	res := runReconcile(t, reconcileEnv(t, p, target, dir), false)
	assert.Equal(t, 2, res.Counts.Linked)
	assert.Equal(t, 2, res.Counts.InFlight)
	assert.Zero(t, res.Counts.Leftovers)
	assert.Equal(t, 1, res.Counts.Orphans)
	require.Len(t, res.Accounts, 1)
	assert.Equal(t, "3", res.Accounts[0].AccountID, "only the account of nobody's run is an orphan")
	assert.Empty(t, target.writes, "an in-flight person's groups are the run's business")
}
