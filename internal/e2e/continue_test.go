package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/workflows"
)

// TestIdentityContinuesAsNew: with the server suggesting continue-as-new
// after a few events, a person's identity continues as new between
// events and carries what later runs need: the account link (the leaver
// disables the account the joiner made), the handled event IDs (a resent
// hire is a duplicate) and the attributes. With JML_UPDATE_HISTORIES=1 it
// saves the run that continued as new and the run after it for the replay
// test.
func TestIdentityContinuesAsNew(t *testing.T) {
	s := newStack(t, temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		dynamicconfig.HistoryCountSuggestContinueAsNew.Key():        20,
	})))
	s.worker(t, nil)
	ctx := context.Background()
	p := person(900)
	emp := p["employee_id"]
	id := contract.IdentityWorkflowID(emp)
	hire := hr.Event{EventID: emp + "-hire", Type: hr.Hire, Employee: p}
	send := func(ev hr.Event) {
		t.Helper()
		acc, err := deliver(ctx, s.c, ev)
		require.NoError(t, err)
		require.False(t, acc.Duplicate, ev.EventID)
	}
	send(hire)
	s.waitStatus(t, []string{emp}, contract.StatusActive)
	for _, dept := range []string{"sales", "ops", "legal"} {
		ev := hr.Event{EventID: emp + "-chg-" + dept, Type: hr.Change, Employee: map[string]string{"employee_id": emp, "department": dept}}
		send(ev)
		require.Eventually(t, func() bool {
			v, err := s.c.QueryWorkflow(ctx, id, "", contract.QueryCurrent)
			var cr workflows.CurrentRun
			return err == nil && v.Get(&cr) == nil && cr.WorkflowID == "" && len(cr.Pending) == 0 &&
				cr.LastRun == contract.LifecycleWorkflowID("mover", emp, ev.EventID)
		}, 60*time.Second, 100*time.Millisecond)
	}

	runs := identityRuns(t, s, id)
	require.GreaterOrEqual(t, len(runs), 2, "the identity continued as new")
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, runs[len(runs)-1].Status, "the first run")

	acc, err := deliver(ctx, s.c, hire)
	require.NoError(t, err)
	assert.True(t, acc.Duplicate, "the hire handled before continue-as-new is remembered")

	send(hr.Event{EventID: emp + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": emp}})
	s.waitStatus(t, []string{emp}, contract.StatusDeprovisioned)

	sc, err := scim.New(ctx, scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	accts, _, err := sc.ListAccounts(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, accts, 1, "one account, moved three times")
	assert.False(t, accts[0].Active, "the leaver disabled the linked account")
	assert.Equal(t, "legal", accts[0].Attributes["department"])

	if os.Getenv("JML_UPDATE_HISTORIES") == "1" {
		runs = identityRuns(t, s, id)
		first, last := runs[len(runs)-1], runs[0]
		saveHistory(t, s, id, first.Execution.RunId, "identity-continued.json")
		saveHistory(t, s, id, last.Execution.RunId, "identity-after-continue.json")
	}
}

// identityRuns lists the runs of workflow id, newest first.
func identityRuns(t *testing.T, s *stack, id string) []*workflowpb.WorkflowExecutionInfo {
	t.Helper()
	var out []*workflowpb.WorkflowExecutionInfo
	require.Eventually(t, func() bool {
		resp, err := s.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowId = '" + id + "'",
		})
		if err != nil {
			return false
		}
		out = resp.Executions
		return len(out) >= 2
	}, 30*time.Second, 100*time.Millisecond)
	return out
}

func saveHistory(t *testing.T, s *stack, id, runID, name string) {
	t.Helper()
	var h historypb.History
	it := s.c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "..", "workflows", "testdata", name), b, 0o644))
}
