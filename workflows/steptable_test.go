package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkapi "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/activity"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestStepTableLeavesOutEmptyRevoke: a leaver's requests.revoke that
// found no access request is left out of the run's details (the UI) and
// of ShownSteps (starter status), and the query still has it; one that
// revoked something, or failed, is shown.
func TestStepTableLeavesOutEmptyRevoke(t *testing.T) {
	for _, tc := range []struct {
		name    string
		revoked int
		shown   bool
	}{
		{"no access requests", 0, false},
		{"two revoked", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			p.Leaver = policy.Flow{Steps: p.Leaver.Steps[:1]} // deprovision now
			f := newFixture(t, p)
			f.env.RegisterActivityWithOptions(func(context.Context, string) (int, error) { return tc.revoked, nil },
				activity.RegisterOptions{Name: "RevokeGrantsOf", DisableAlreadyRegisteredCheck: true})
			acct, err := f.target.CreateAccount(context.Background(), connectors.Attributes{"user_name": alice["email"]},
				connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			f.env.ExecuteWorkflow(contract.LeaverWorkflowName, workflows.LifecycleInput{Kind: policy.KindLeaver, EmployeeID: "E1",
				EventID: "t1", Attributes: withID(alice), Accounts: map[string]string{"app": acct.ID}, HostQueues: true,
				Version: workflows.IdentityVersion})
			require.NoError(t, f.env.GetWorkflowError())

			v, err := f.env.QueryWorkflow(contract.QuerySteps)
			require.NoError(t, err)
			var rows []workflows.StepInfo
			require.NoError(t, v.Get(&rows))
			require.NotEmpty(t, rows)
			assert.Equal(t, "requests.revoke", rows[0].Name, "the query keeps the row")
			assert.Equal(t, workflows.StepDone, rows[0].State)
			assert.Equal(t, !tc.shown, rows[0].NotApplicable())
			shown := workflows.ShownSteps(rows)
			assert.Equal(t, tc.shown, len(shown) == len(rows), "starter status's rows")

			v, err = f.env.QueryWorkflow("__temporal_workflow_metadata")
			require.NoError(t, err)
			var md sdkapi.WorkflowMetadata
			require.NoError(t, v.Get(&md))
			details := md.GetCurrentDetails()
			assert.Contains(t, details, "`app.deprovision_identity` done")
			if tc.shown {
				assert.Contains(t, details, "`requests.revoke` done")
			} else {
				assert.NotContains(t, details, "requests.revoke")
			}
		})
	}
}

// TestShownSteps: only a done requests.revoke that revoked nothing is
// left out; running or failed it is shown, and so is any other row.
func TestShownSteps(t *testing.T) {
	rows := []workflows.StepInfo{
		{Name: "requests.revoke", Action: "requests.revoke", State: workflows.StepDone, Note: "0 access request(s) revoked"},
		{Name: "requests.revoke", Action: "requests.revoke", State: workflows.StepDone, Note: "1 access request(s) revoked"},
		{Name: "requests.revoke", Action: "requests.revoke", State: workflows.StepRunning},
		{Name: "requests.revoke", Action: "requests.revoke", State: workflows.StepFailed, LastError: "list access requests: unavailable"},
		{Name: "app.sync", Action: "sync_identity", State: workflows.StepDone, Note: "0 access request(s) revoked"},
	}
	assert.Equal(t, rows[1:], workflows.ShownSteps(rows))
}
