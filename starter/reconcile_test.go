package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestReconcileReportCommand prints a real cycle's orphans, leftovers and
// disputed accounts as text, JSON and CSV.
func TestReconcileReportCommand(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	ids := peer.Load([]scimtest.LoadUser{
		{UserName: "ada", Active: true}, {UserName: "orphan1", Active: true}, {UserName: "left1", Active: true}, {UserName: "twin", Active: true},
	}, []scimtest.LoadGroup{{DisplayName: "all-staff", Members: []string{"ada"}}})
	conn, err := scim.New(ctx, scim.Config{BaseURL: peer.BaseURL, Auth: scim.Auth{BearerToken: peer.Token}})
	require.NoError(t, err)
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	t.Setenv("TEMPORAL_ADDRESS", ts.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ts.GetDefaultNamespace())
	dir := activities.StaticDirectory{
		{EmployeeID: "E1", Attributes: map[string]string{"username": "ada"}},
		{EmployeeID: "E2", Status: contract.StatusDeprovisioned, Attributes: map[string]string{"username": "left1"}},
		{EmployeeID: "E3", Attributes: map[string]string{"username": "x"}, Accounts: map[string]string{"app": ids.Users["twin"]}},
		{EmployeeID: "E4", Attributes: map[string]string{"username": "y"}, Accounts: map[string]string{"app": ids.Users["twin"]}},
	}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "scim", BaseURL: peer.BaseURL}},
			Joiner: policy.Flow{Steps: []policy.Step{
				{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: map[string]string{"user_name": "{username}"}}},
				{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"all-staff"}}},
			}},
			Reconcile: policy.Reconcile{Orphans: policy.ReconcileReport},
		},
		Targets: map[string]any{"app": conn}, Directory: dir,
	})
	c := ts.GetDefaultClient()
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	var out, errb bytes.Buffer
	assert.Equal(t, 1, run(ctx, []string{"reconcile", "report"}, &out, &errb), "no cycle yet")
	assert.Contains(t, errb.String(), "no completed scheduled attribute sync")

	id := contract.AttributeSyncScheduleID + "-2026-12-02T06:00:00Z"
	r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{Targets: []string{"app"}, PageSize: 100})
	require.NoError(t, err)
	require.NoError(t, r.Get(ctx, nil))
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Completed'"})
		return err == nil && len(resp.GetExecutions()) == 1
	}, 10*time.Second, 50*time.Millisecond)

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, run(ctx, []string{"reconcile", "report"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "app: 4 accounts read (1 linked, 0 of them with a run in flight; 1 orphans, 1 leftovers, 1 disputed")
	assert.Regexp(t, `orphan\s+\S+\s+orphan1\s+true\s+reported`, out.String())
	assert.Regexp(t, `disputed\s+\S+\s+twin\s+true\s+E3 E4\s+reported`, out.String())

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"reconcile", "report", "--target", "app", "--json"}, &out, &errb), errb.String())
	var rep reconcileReportOut
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.Equal(t, id, rep.WorkflowID)
	assert.Equal(t, 1, rep.Targets["app"].Counts.Leftovers)

	out.Reset()
	require.Equal(t, 0, run(ctx, []string{"reconcile", "report", "--csv"}, &out, &errb), errb.String())
	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 4)
	assert.Equal(t, []string{"target", "situation", "account_id", "identifier", "active", "employee_ids", "action"}, rows[0])
	assert.Equal(t, []string{"app", "leftover", ids.Users["left1"], "left1", "true", "E2", "reported"}, rows[2])

	assert.Equal(t, 1, run(ctx, []string{"reconcile", "report", "--target", "nope"}, &out, &errb))
	for _, args := range [][]string{{"reconcile"}, {"reconcile", "bogus"}, {"reconcile", "report", "--json", "--csv"}, {"reconcile", "report", "extra"}} {
		assert.Equal(t, 2, run(ctx, args, &out, &errb), args)
	}
	errb.Reset()
	assert.Equal(t, 1, run(ctx, []string{"reconcile", "release"}, &out, &errb), "nothing running")
	assert.Contains(t, errb.String(), "0 attribute syncs running")
}
