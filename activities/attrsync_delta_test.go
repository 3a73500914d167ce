package activities_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

// Issue 33 item 7: the attribute sync of an Entra target keeps the
// /users/delta link of a cycle and the next cycle reads only the users
// changed since, never the whole tenant through /users; a link Graph has
// forgotten (410 Gone) starts a full round again.
// deltaSync is three Entra users linked to three identities and one
// attribute-sync cycle over them from a delta state.
func deltaSync(t *testing.T, opts graphtest.Options) (*graphtest.Server, map[string]string, activities.StaticDirectory, func(string, activities.DeltaState) activities.AttrSyncPageResult) {
	graph := graphtest.New(t, opts)
	o := graph.Options()
	c, err := entra.New(context.Background(), entra.Config{Tenant: o.Tenant, ClientID: o.ClientID,
		ClientSecret: secret.New(o.ClientSecret), AuthorityURL: graph.AuthorityURL(), GraphURL: graph.GraphURL()})
	require.NoError(t, err)
	dir := activities.StaticDirectory{}
	ids := map[string]string{}
	for _, p := range []struct{ emp, upn string }{{"E1", "ada"}, {"E2", "bob"}, {"E3", "cy"}} {
		upn := p.upn + "@contoso.com"
		ids[p.emp] = graph.AddUser(map[string]any{"userPrincipalName": upn, "employeeId": p.emp, "department": "R&D"})
		dir = append(dir, activities.IdentityRecord{EmployeeID: p.emp, Attributes: map[string]string{"upn": upn, "dept": "R&D"},
			Accounts: map[string]string{"app": ids[p.emp]}})
	}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "entra"}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_principal_name": "{upn}", "department": "{dept}"}}}}},
		},
		Targets: map[string]any{"app": c}, Directory: dir,
	})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	cycle := func(snapshot string, since activities.DeltaState) activities.AttrSyncPageResult {
		t.Helper()
		graph.ResetCounts()
		v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{Snapshot: snapshot, Target: "app", PageSize: 100, Since: since})
		require.NoError(t, err)
		var res activities.AttrSyncPageResult
		require.NoError(t, v.Get(&res))
		assert.Zero(t, res.Counts.Failures, "%v", res.Problems)
		assert.Empty(t, res.Next)
		assert.NotContains(t, graph.Log(), "GET /v1.0/users", "the sync never lists the tenant through /users")
		return res
	}
	return graph, ids, dir, cycle
}

func TestAttributeSyncReadsChangesThroughDeltaLink(t *testing.T) {
	graph, ids, dir, cycle := deltaSync(t, graphtest.Options{})
	first := cycle("cycle-1", activities.DeltaState{})
	assert.False(t, first.Round.Incremental)
	assert.Equal(t, 3, first.Counts.IdentitiesChecked, "the first cycle reads every user")
	assert.Zero(t, first.Counts.Unmatched)
	require.NotEmpty(t, first.Delta.Link, "the first cycle keeps the delta link")

	// Someone edits Bob in the portal between cycles.
	graph.UpdateUser(ids["E2"], map[string]any{"department": "Sales"})
	second := cycle("cycle-2", first.Delta)
	assert.Contains(t, graph.Log(), "GET /v1.0/users/delta")
	assert.True(t, second.Round.Incremental)
	assert.Equal(t, 1, second.Counts.PagesRead)
	assert.Equal(t, 1, second.Counts.IdentitiesChecked, "only Bob changed since the link")
	assert.Equal(t, 1, second.Counts.AccountsChanged)
	assert.Equal(t, "R&D", graph.User(ids["E2"])["department"], "Bob's change is undone")
	require.NotEmpty(t, second.Delta.Link)

	// Graph forgot the link: the cycle reads everyone again and keeps a new one.
	graph.ExpireDeltaLinks()
	third := cycle("cycle-3", second.Delta)
	assert.False(t, third.Round.Incremental)
	assert.Equal(t, 3, third.Counts.IdentitiesChecked)
	assert.NotEmpty(t, third.Delta.Link)
	assert.NotEqual(t, second.Delta.Link, third.Delta.Link)

	// HR changed the desired state: accounts that did not change must be
	// compared again, so the kept link is not used.
	dir[0].Attributes["dept"] = "Ops" // the directory the activities read
	fourth := cycle("cycle-4", third.Delta)
	assert.False(t, fourth.Round.Incremental)
	assert.Equal(t, 3, fourth.Counts.IdentitiesChecked)
	assert.Equal(t, "Ops", graph.User(ids["E1"])["department"], "Ada's new department is written though her account did not change")
}

// Graph's change round may carry only what changed: an edit of a property
// the policy does not manage writes nothing, and a managed one left out
// of the round is not taken for empty.
func TestAttributeSyncDeltaReadsChangedAccountsWhole(t *testing.T) {
	graph, ids, _, cycle := deltaSync(t, graphtest.Options{DeltaSparse: true})
	first := cycle("cycle-1", activities.DeltaState{})
	graph.UpdateUser(ids["E1"], map[string]any{"jobTitle": "Lead"})
	second := cycle("cycle-2", first.Delta)
	assert.True(t, second.Round.Incremental)
	assert.Equal(t, 1, second.Counts.IdentitiesChecked)
	assert.Zero(t, second.Counts.AccountsChanged, "nothing the policy manages changed")
	assert.NotContains(t, graph.Log(), "PATCH /v1.0/users/"+ids["E1"])
}
