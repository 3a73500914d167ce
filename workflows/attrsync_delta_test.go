package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// Issue 33 item 7, through Temporal: a scheduled cycle of the attribute
// sync starts from the /users/delta link the previous cycle ended with
// (its result), reads only the users changed since and never lists the
// tenant through /users.
func TestAttributeSyncSecondCycleReadsDeltaOnly(t *testing.T) {
	graph := graphtest.New(t, graphtest.Options{})
	o := graph.Options()
	conn, err := entra.New(context.Background(), entra.Config{Tenant: o.Tenant, ClientID: o.ClientID,
		ClientSecret: secret.New(o.ClientSecret), AuthorityURL: graph.AuthorityURL(), GraphURL: graph.GraphURL()})
	require.NoError(t, err)
	var dir activities.StaticDirectory
	ids := map[string]string{}
	for _, emp := range []string{"E1", "E2", "E3", "E4"} {
		upn := emp + "@contoso.com"
		ids[emp] = graph.AddUser(map[string]any{"userPrincipalName": upn, "employeeId": emp, "jobTitle": "Engineer"})
		dir = append(dir, activities.IdentityRecord{EmployeeID: emp, Attributes: map[string]string{"upn": upn, "title": "Engineer"},
			Accounts: map[string]string{"app": ids[emp]}})
	}
	s := &syncStack{dir: dir, c: temporalServer(t).GetDefaultClient()}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "entra"}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_principal_name": "{upn}", "job_title": "{title}"}}}}},
			AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"app"}, PageSize: 100},
		},
		Targets: map[string]any{"app": conn}, Directory: s.dir, Client: s.c,
	})
	w := worker.New(s.c, contract.TaskQueue, worker.Options{})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	res := s.runOn(t, contract.AttributeSyncScheduleID+"-1")
	assert.Equal(t, 4, res.IdentitiesChecked)
	assert.Contains(t, graph.Log(), "GET /v1.0/users/delta")
	require.NotEmpty(t, res.Delta["app"].Link, "the cycle ends with the delta link")

	graph.UpdateUser(ids["E3"], map[string]any{"jobTitle": "Chief"}) // edited in the portal
	graph.ResetCounts()
	res = s.runOn(t, contract.AttributeSyncScheduleID+"-2")
	assert.NotContains(t, graph.Log(), "GET /v1.0/users", "no full list of the tenant")
	assert.Contains(t, graph.Log(), "GET /v1.0/users/delta")
	assert.Equal(t, 1, res.IdentitiesChecked, "only the changed user is read")
	assert.Equal(t, 1, res.AccountsChanged)
	assert.Zero(t, res.Failures, "%+v", res.Problems)
	assert.Equal(t, "Engineer", graph.User(ids["E3"])["jobTitle"], "the portal edit is undone")
	assert.NotEmpty(t, res.Delta["app"].Link)
	saveHistory(t, s.c, contract.AttributeSyncScheduleID+"-2", "guard-attribute-sync-delta-new.json")
}

func (s *syncStack) runOn(t *testing.T, id string) workflows.AttributeSyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
		contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
	require.NoError(t, err)
	var res workflows.AttributeSyncResult
	require.NoError(t, run.Get(ctx, &res))
	return res
}
