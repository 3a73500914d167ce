package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

// TestEntraJoinersUnderReplicationLag (issue 33): real Temporal, real
// workers, the real Entra connector against the Graph stand-in with 5 s of
// replication lag (a created user or group is invisible to every read for
// 5 s). 200 joiners, each with a manager (HR's manager_id, an employee ID,
// resolved through the manager's link) and a group ensured by all of them
// at once: every run completes (no PostconditionFailed, no operator
// wait), one account per person, no duplicate group, every manager set
// to E000's account.
func TestEntraJoinersUnderReplicationLag(t *testing.T) {
	if testing.Short() {
		t.Skip("200 joiners")
	}
	const n = 200
	graph := graphtest.New(t, graphtest.Options{Domains: []string{"acme.test"}, ReplicationLag: 5 * time.Second})
	s := newStack(t)
	s.stepTimeout = time.Minute
	s.policy = &policy.Policy{
		Targets:  map[string]policy.Target{"app": {Type: "entra"}},
		Password: policy.PasswordPolicy{Length: 20, Lower: true, Upper: true, Digits: true, Symbols: true},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Password: "generate",
				Attributes: map[string]string{"user_principal_name": "{email}", "display_name": "{first_name}",
					"employee_id": "{employee_id}", "department": "{department}", "manager_id": "{manager_id}"}}},
			{CreateEntitlement: &policy.CreateEntitlement{Target: "app", Name: "team-{department}"}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"team-{department}"}}},
		}},
	}
	o := graph.Options()
	c, err := entra.New(context.Background(), entra.Config{Tenant: o.Tenant, ClientID: o.ClientID,
		ClientSecret: secret.New(o.ClientSecret), AuthorityURL: graph.AuthorityURL(), GraphURL: graph.GraphURL()})
	require.NoError(t, err)
	s.workerWith(t, map[string]any{"app": c}, nil)
	t.Cleanup(func() {
		if t.Failed() {
			l := s.logs()
			t.Log(l[max(0, len(l)-6000):])
		}
	})

	ctx := context.Background()
	hire := func(i int) {
		p := person(i)
		p["email"] = fmt.Sprintf("user%03d@acme.test", i)
		if i > 0 {
			p["manager_id"] = "E000"
		}
		_, err := deliver(ctx, s.c, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
		assert.NoError(t, err)
	}
	hire(0) // the manager first: the others' manager_id resolves through E000's link
	s.waitStatus(t, []string{"E000"}, contract.StatusActive)
	var wg sync.WaitGroup
	var emps []string
	for i := 1; i < n; i++ {
		emps = append(emps, person(i)["employee_id"])
		wg.Go(func() { hire(i) })
	}
	wg.Wait()
	s.waitStatus(t, emps, contract.StatusActive)

	require.Equal(t, n, graph.Users(), "one account per person, no duplicate")
	boss := graph.UserByUPN("user000@acme.test")
	require.NotEmpty(t, boss)
	seen := map[string]bool{}
	for i := range n {
		id := graph.UserByUPN(fmt.Sprintf("user%03d@acme.test", i))
		require.NotEmpty(t, id, i)
		emp := graph.User(id)["employeeId"].(string)
		assert.False(t, seen[emp], "duplicate %s", emp)
		seen[emp] = true
		if i > 0 {
			assert.Equal(t, boss, graph.Manager(id), "manager of %s is E000's account", emp)
		}
	}
	groups := graph.GroupByName("team-eng")
	require.Len(t, groups, 1, "200 concurrent ensures of one group under lag: one group")
	assert.Len(t, graph.Members(groups[0]), n)
}
