package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// grantDirectory is a directory with access grants in force.
type grantDirectory struct {
	activities.StaticDirectory
	grants []activities.Grant
}

func (d grantDirectory) ActiveGrants(context.Context) ([]activities.Grant, error) {
	return d.grants, nil
}

// TestTimeBoundGrantIsNoDrift: reconciliation of a managed group leaves a
// member by a grant in force alone until it expires, and removes the same
// kind of membership held without one.
func TestTimeBoundGrantIsNoDrift(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: map[string]string{"user_name": "{u}"}}},
		}},
		Reconcile: policy.Reconcile{Targets: map[string]policy.ReconcileTarget{"app": {ManagedGroups: []string{"prod-*"}}}},
	}
	target := &memTarget{
		accounts: []connectors.Account{{ID: "1", Active: true, Attributes: connectors.Attributes{"user_name": "ada"}}},
		groups: []connectors.GroupMembers{
			{Group: connectors.Group{ID: "g1", Name: "prod-admin"}, Members: []string{"1"}},
			{Group: connectors.Group{ID: "g2", Name: "prod-db"}, Members: []string{"1"}},
		},
	}
	dir := grantDirectory{
		StaticDirectory: activities.StaticDirectory{{EmployeeID: "E1", Attributes: map[string]string{"u": "ada"}, Accounts: map[string]string{"app": "1"}}},
		grants:          []activities.Grant{{Workflow: "request/r1", EmployeeID: "e1", Target: "app", Group: "PROD-ADMIN", Until: time.Now().Add(time.Hour)}},
	}
	acts := activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": target}, Directory: dir})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	res := runReconcile(t, env, false)
	assert.Equal(t, []string{"remove g2 1"}, target.writes, "prod-db has no grant: drift; prod-admin is granted: kept")
	assert.Equal(t, 1, res.Counts.ExtraFound)
}
