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

// Issue 33 item 8, attribute sync: HR's manager_id (an employee ID) is
// compared and written as the manager's linked Entra account, as the
// joiner wrote it: an account whose manager is E0007's account is in
// sync, and one without a manager gets E0007's account, never "E0007".
func TestAttributeSyncResolvesManagerThroughLink(t *testing.T) {
	graph := graphtest.New(t, graphtest.Options{})
	o := graph.Options()
	c, err := entra.New(context.Background(), entra.Config{Tenant: o.Tenant, ClientID: o.ClientID,
		ClientSecret: secret.New(o.ClientSecret), AuthorityURL: graph.AuthorityURL(), GraphURL: graph.GraphURL()})
	require.NoError(t, err)
	boss := graph.AddUser(map[string]any{"userPrincipalName": "grace@contoso.com", "employeeId": "E0007"})
	ada := graph.AddUser(map[string]any{"userPrincipalName": "ada@contoso.com", "employeeId": "E0042"})
	bob := graph.AddUser(map[string]any{"userPrincipalName": "bob@contoso.com", "employeeId": "E0043"})

	dir := activities.StaticDirectory{
		{EmployeeID: "E0007", Attributes: map[string]string{"upn": "grace@contoso.com"},
			Accounts: map[string]string{"app": boss}},
		{EmployeeID: "E0042", Attributes: map[string]string{"upn": "ada@contoso.com", "manager_id": "E0007"},
			Accounts: map[string]string{"app": ada}},
		{EmployeeID: "E0043", Attributes: map[string]string{"upn": "bob@contoso.com", "manager_id": "E0007"},
			Accounts: map[string]string{"app": bob}},
	}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "entra"}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_principal_name": "{upn}", "manager_id": "{manager_id}"}}}}},
		},
		Targets: map[string]any{"app": c}, Directory: dir,
	})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	// Ada's manager is already E0007's account: in sync.
	require.NoError(t, c.UpdateAccount(context.Background(), ada, map[string]string{"manager": boss}))

	v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{Snapshot: "s1", Target: "app"})
	require.NoError(t, err)
	var res activities.AttrSyncPageResult
	require.NoError(t, v.Get(&res))
	assert.Zero(t, res.Counts.Failures, "%v", res.Problems)
	assert.Equal(t, 1, res.Counts.AccountsChanged, "only Bob's manager is written")
	assert.Equal(t, boss, graph.Manager(bob))
	assert.Equal(t, boss, graph.Manager(ada))
}
