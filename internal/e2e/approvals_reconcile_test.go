package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestReconcileKeepsGrantedMember: prod-admin is a group reconciliation
// manages; Ada is its member by an approved grant in force, Alan by a
// write nobody asked for. A reconciliation run (real Temporal, SCIMMY)
// removes Alan and leaves Ada, whose grant it reads from the running
// request's memo; after her grant is revoked early, the next run has
// nothing to remove and adds nothing back.
func TestReconcileKeepsGrantedMember(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.policy.AttributeSync = policy.AttributeSync{Every: "1h", Targets: []string{"app"}}
	s.policy.Reconcile = policy.Reconcile{MaxGroupRemovalPercent: 100,
		Targets: map[string]policy.ReconcileTarget{"app": {ManagedGroups: []string{"prod-*"}}}}
	s.startWorker(t)
	s.people(t, "prod-admin")
	ctx := context.Background()

	s.grantAll(t, []string{"g1"}, []string{"prod-admin"})
	alan, err := activities.TemporalDirectory{Client: s.c}.Identity(ctx, "M2")
	require.NoError(t, err)
	g, err := s.scim.FindGroup(ctx, "prod-admin")
	require.NoError(t, err)
	require.NoError(t, s.scim.AddMember(ctx, g.ID, alan.Accounts["app"]))
	require.True(t, s.memberOf(t, "M2", "prod-admin"))

	reconcile := func(id string) activities.ReconcileResult {
		run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
			contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
		require.NoError(t, err)
		var res workflows.AttributeSyncResult
		require.NoError(t, run.Get(ctx, &res))
		return res.Reconcile["app"]
	}
	res := reconcile("reconcile-1")
	assert.Equal(t, 1, res.Counts.ExtraFound, "%+v", res)
	assert.False(t, s.memberOf(t, "M2", "prod-admin"), "a member without a grant is drift: removed")
	assert.True(t, s.memberOf(t, "E1", "prod-admin"), "a member by a grant in force is not")
	assert.Equal(t, contract.StateGranted, s.status(t, "g1").State)

	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: "request/g1", UpdateName: contract.UpdateRevoke,
		WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{workflows.RevokeRequest{Operator: "secops", Reason: "done"}}})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	s.waitRequest(t, "g1", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	require.False(t, s.memberOf(t, "E1", "prod-admin"))
	res = reconcile("reconcile-2")
	assert.Zero(t, res.Counts.ExtraFound, "%+v", res)
	assert.Zero(t, res.Counts.Writes, "%+v", res)
	assert.False(t, s.memberOf(t, "E1", "prod-admin"), "an ended grant is not added back")
}
