package workflows_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// guardPolicy: a joiner that creates and groups, a leaver that disables.
func guardPolicy() *policy.Policy {
	return &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true,
				Attributes: map[string]string{"user_name": "{email}", "employee_id": "{employee_id}"}}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"everyone"}}},
		}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app", RemoveGroups: true}},
		}},
	}
}

// guardParent stands in for the identity workflow: it runs one lifecycle
// run as its child, so the run reports links and states to a parent.
func guardParent(ctx workflow.Context, name, id string, in workflows.LifecycleInput) error {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, TaskQueue: contract.TaskQueue})
	return workflow.ExecuteChildWorkflow(cctx, name, in).Get(ctx, nil)
}

// TestRecordGuardHistories records the current-shape histories of the
// version guards TestReplayGuards replays (JML_UPDATE_HISTORIES=1 go test
// ./workflows -run TestRecordGuardHistories). The old-shape histories
// were recorded by a copy of it at the commit before each guard (see
// guardHistories).
func TestRecordGuardHistories(t *testing.T) {
	if os.Getenv("JML_UPDATE_HISTORIES") == "" {
		t.Skip("records histories only with JML_UPDATE_HISTORIES=1")
	}
	ts := temporalServer(t)
	c := ts.GetDefaultClient()
	require.NoError(t, temporalenv.CheckSearchAttributes(context.Background(), c.OperatorService(), ts.GetDefaultNamespace(), nil))
	target := memtarget.New()
	acts := activities.New(activities.Config{Policy: guardPolicy(), Targets: map[string]any{"app": target}, Client: c,
		Audit: &memAudit{keys: map[string]bool{}}})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	w.RegisterWorkflowWithOptions(guardParent, workflow.RegisterOptions{Name: "GuardParent"})
	// The poller's source: one applied poll, by a worker with an audit store.
	w.RegisterActivityWithOptions(func(context.Context, workflows.SourcePollInput) (json.RawMessage, error) {
		return json.RawMessage(`{"every":3600000000000,"people":1,"emitted":{"hire":1},"audit":true}`), nil
	}, activity.RegisterOptions{Name: contract.SourcePollActivityName, DisableAlreadyRegisteredCheck: true})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(id, name string, args ...any) {
		t.Helper()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, name, args...)
		require.NoError(t, err)
		err = r.Get(ctx, nil)
		require.NoError(t, err)
	}
	attrs := map[string]string{"employee_id": "E1", "email": "e1@acme.test"}
	// Runs of shape 3 (VersionOperatorUI), the last that asks these
	// guards: a lean run (VersionLean) takes their new branch from its
	// input without asking (TestLeanRunsAskNoGuards).

	// audit-trail, new branch: a joiner planned by a worker with a store.
	run("joiner/E1/audit", contract.JoinerWorkflowName, workflows.LifecycleInput{Kind: policy.KindJoiner, EmployeeID: "E1",
		EventID: "h1", Attributes: attrs, HostQueues: true, Version: workflows.VersionOperatorUI})
	saveHistory(t, c, "joiner/E1/audit", "guard-audit-trail-new.json")

	// link-state, new branch: a pre-hire joiner enables its account on the
	// start date and reports the state to its parent.
	pre := map[string]string{"employee_id": "E2", "email": "e2@acme.test"}
	run("parent/E2", "GuardParent", contract.JoinerWorkflowName, "joiner/E2/prehire", workflows.LifecycleInput{
		Kind: policy.KindJoiner, EmployeeID: "E2", EventID: "h2", Attributes: pre, HostQueues: true,
		Version: workflows.VersionOperatorUI, EnableAt: time.Now().Add(3 * time.Second)})
	saveHistory(t, c, "joiner/E2/prehire", "guard-link-state-new.json")

	// revoke-grants, new branch: a leaver revokes grants first.
	acct, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "e3@acme.test"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	run("parent/E3", "GuardParent", contract.LeaverWorkflowName, "leaver/E3/term", workflows.LifecycleInput{
		Kind: policy.KindLeaver, EmployeeID: "E3", EventID: "t3", Attributes: map[string]string{"employee_id": "E3"},
		Accounts: map[string]string{"app": acct.ID}, HostQueues: true, Version: workflows.VersionOperatorUI})
	saveHistory(t, c, "leaver/E3/term", "guard-revoke-grants-new.json")

	// source-audit, new branch: a poll applied by a worker with a store.
	saveFirstRun(t, c, contract.SourceWorkflowID("hr"), contract.SourcePollerWorkflowName, workflows.SourcePollerInput{Source: "hr"},
		"guard-source-audit-new.json")
}

// saveFirstRun starts a workflow that continues as new, waits until its
// first run has, saves that run's history and terminates the chain.
func saveFirstRun(t *testing.T, c client.Client, id, name string, in any, file string) {
	t.Helper()
	ctx := context.Background()
	r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, name, in)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, id, r.GetRunID())
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
	}, time.Minute, 100*time.Millisecond)
	var h historypb.History
	it := c.GetWorkflowHistory(ctx, id, r.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("testdata", file), b, 0o644))
	require.NoError(t, c.TerminateWorkflow(ctx, id, "", "recorded"))
}

// TestRecordAuditUnplannedHistory records the new branch of the
// audit-unplanned guard: a joiner whose event could not be scheduled,
// aborted by an operator at its schedule step, before it had a plan
// (JML_UPDATE_HISTORIES=1 go test ./workflows -run
// TestRecordAuditUnplannedHistory).
func TestRecordAuditUnplannedHistory(t *testing.T) {
	if os.Getenv("JML_UPDATE_HISTORIES") == "" {
		t.Skip("records histories only with JML_UPDATE_HISTORIES=1")
	}
	ts := temporalServer(t)
	c := ts.GetDefaultClient()
	require.NoError(t, temporalenv.CheckSearchAttributes(context.Background(), c.OperatorService(), ts.GetDefaultNamespace(), nil))
	acts := activities.New(activities.Config{Policy: guardPolicy(), Targets: map[string]any{"app": memtarget.New()}, Client: c,
		Audit: &memAudit{keys: map[string]bool{}}})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const id = "joiner/E4/unschedulable"
	r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, contract.JoinerWorkflowName,
		workflows.LifecycleInput{Kind: policy.KindJoiner, EmployeeID: "E4", EventID: "h4", Attributes: map[string]string{"employee_id": "E4"},
			HostQueues: true, Version: workflows.IdentityVersion, ScheduleError: "start_date: not a date"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: contract.UpdateAbort,
			Args: []any{workflows.StepRequest{Step: "schedule", Operator: "carol", Reason: "wrong start date"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
		return err == nil && h.Get(ctx, nil) == nil
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, r.Get(ctx, nil))
	saveHistory(t, c, id, "guard-audit-unplanned-new.json")
}
