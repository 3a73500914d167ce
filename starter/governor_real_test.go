package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestSafetyLimitCountsPeople: 30 terminations against a limit of 25
// leavers an hour, each disabling at once and deleting after a grace
// period, on a real server with jml's governor. Exactly 5 people wait
// Blocked (a person's delayed delete rides on the permit of their
// disable, so the 25 who passed never block again); one `starter release
// --all --yes` frees the 5, and their deletes run without another release.
func TestSafetyLimitCountsPeople(t *testing.T) {
	const people, limit = 30, 25
	target := memtarget.New()
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Safety:  policy.Safety{MaxDestructivePerHour: limit},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app", RemoveGroups: true}},
			{DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: "3s"}}, // the grace period
		}},
	}
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, Client: env.Client, Targets: map[string]any{"app": target}}))
	}, worker.Options{})

	ctx := context.Background()
	for i := range people {
		emp := fmt.Sprintf("L%02d", i)
		acct, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": emp + "@acme.test"}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		id := contract.LifecycleWorkflowID("leaver", emp, "t1")
		_, err = env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: contract.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				temporal.NewSearchAttributeKeyKeyword(contract.SAEmployeeID).ValueSet(emp),
				temporal.NewSearchAttributeKeyKeyword(contract.SAState).ValueSet(contract.StateRunning)),
		}, contract.LeaverWorkflowName, workflows.LifecycleInput{Kind: "leaver", EmployeeID: emp, EventID: "t1",
			Attributes: map[string]string{"employee_id": emp}, Accounts: map[string]string{"app": acct.ID},
			HostQueues: true, Version: workflows.IdentityVersion})
		require.NoError(t, err)
	}
	done := `WorkflowType = "Leaver" AND JmlState = "Completed"`
	blocked := `WorkflowType = "Leaver" AND JmlState = "Blocked"`
	require.Eventually(t, func() bool { return countWorkflows(t, env, done) == people-5 }, time.Minute, 200*time.Millisecond,
		"the 25 permitted leavers complete, their deletes included")
	require.Eventually(t, func() bool { return countWorkflows(t, env, blocked) == 5 }, 30*time.Second, 200*time.Millisecond)
	assert.Len(t, target.Accounts(), 5, "25 deleted after the grace period, 5 untouched")

	code, out, errs := starter(t, "list", "--blocked")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "deprovision_identity")
	code, out, errs = starter(t, "release", "--all", "--yes", "--reason", "planned layoff", "--as", "ops@test")
	require.Equal(t, 0, code, "%s%s", out, errs)
	assert.Contains(t, out, "released 5 of 5")

	require.Eventually(t, func() bool { return countWorkflows(t, env, done) == people }, time.Minute, 200*time.Millisecond,
		"the released leavers delete without blocking again")
	assert.Zero(t, countWorkflows(t, env, blocked))
	assert.Empty(t, target.Accounts())

	// The release is recorded: who and why, on the step it released.
	code, out, errs = starter(t, "list", "--state", contract.StateCompleted, "--json")
	require.Equal(t, 0, code, errs)
	released := 0
	for i := range people {
		st, err := status(ctx, env.Client, "", contract.LifecycleWorkflowID("leaver", fmt.Sprintf("L%02d", i), "t1"))
		require.NoError(t, err)
		for _, s := range st.Steps {
			assert.NotEqual(t, workflows.StepBlocked, s.State)
			if s.Decision != nil {
				released++
				assert.Equal(t, workflows.Decision{Update: contract.UpdateRelease, Step: "app.deprovision_identity",
					Operator: "ops@test", Reason: "planned layoff", Time: s.Decision.Time}, *s.Decision)
			}
		}
	}
	assert.Equal(t, 5, released)
}
