package sources_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/operatorservice/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/sources"
	"github.com/jml-dev/jml/workflows"
)

// stack is a real Temporal server with real workers: the lifecycle
// workflows and activities, the source poller and its activity. The
// policy's flows may end with a REST step to the hook, which records
// each completed run (kind and employee ID).
type stack struct {
	ts     *temporaltest.TestServer
	c      client.Client
	pol    *policy.Policy
	env    map[string]string
	hook   *httptest.Server
	mu     sync.Mutex
	runs   []run
	client *http.Client // trusts the httptest TLS certificate
}

type run struct{ Kind, ID string }

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{env: map[string]string{}}
	s.ts = temporaltest.NewServer(temporaltest.WithT(t))
	s.c = s.ts.GetDefaultClient()
	_, err := s.c.OperatorService().AddSearchAttributes(context.Background(), &operatorservice.AddSearchAttributesRequest{
		Namespace: s.ts.GetDefaultNamespace(), SearchAttributes: temporalenv.SearchAttributes(),
	})
	require.NoError(t, err)
	s.hook = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rn run
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &rn); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.runs = append(s.runs, rn)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.hook.Close)
	s.client = s.hook.Client()
	return s
}

// hookStep is a flow step that tells the hook a run of kind completed.
func (s *stack) hookStep(kind string) policy.Step {
	return policy.Step{Name: "hook." + kind, SendRESTRequest: &policy.RESTRequest{URL: s.hook.URL + "/runs", Method: "POST",
		Body: fmt.Sprintf(`{"kind":%q,"id":"{employee_id}"}`, kind)}}
}

func (s *stack) getenv(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.env[k]
}

// worker starts a worker process (its own client, vault and host queue)
// with the given connectors; stop ends it.
func (s *stack) worker(t *testing.T, targets map[string]any) (stop func()) {
	t.Helper()
	c := s.ts.NewClientWithOptions(client.Options{})
	host := contract.HostTaskQueue(fmt.Sprintf("src-%d", time.Now().UnixNano()))
	acts := activities.New(activities.Config{
		Policy: s.pol, Targets: targets, Vault: secret.NewVault(time.Hour), HostQueue: host, HostTimeout: 5 * time.Second,
		HTTPClient: s.client, Client: c, Directory: activities.TemporalDirectory{Client: c},
		StepTimeout: 20 * time.Second, SessionHeartbeat: 2 * time.Second, Getenv: s.getenv,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true, WorkflowPanicPolicy: worker.FailWorkflow})
	workflows.Register(w, acts)
	sources.Register(w, sources.New(sources.Config{Policy: s.pol, Client: c, HTTPClient: s.client, Getenv: s.getenv, AllowInsecure: true}))
	require.NoError(t, w.Start())
	hw := worker.New(c, host, worker.Options{})
	hw.RegisterActivityWithOptions(acts, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	require.NoError(t, hw.Start())
	var once sync.Once
	stop = func() { once.Do(func() { hw.Stop(); w.Stop(); c.Close() }) }
	t.Cleanup(stop)
	return stop
}

func (s *stack) runsSoFar() []run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// waitRuns waits until the hook saw n runs and returns them.
func (s *stack) waitRuns(t *testing.T, n int) []run {
	t.Helper()
	require.Eventually(t, func() bool { return len(s.runsSoFar()) >= n }, 4*time.Minute, 200*time.Millisecond,
		"want %d runs", n)
	return s.runsSoFar()
}

func (s *stack) status(t *testing.T, name string) workflows.SourceStatus {
	t.Helper()
	var st workflows.SourceStatus
	v, err := s.c.QueryWorkflow(context.Background(), contract.SourceWorkflowID(name), "", contract.QuerySourceStatus)
	require.NoError(t, err)
	require.NoError(t, v.Get(&st))
	return st
}

// details is the poller's current details as the UI shows them.
func (s *stack) details(t *testing.T, name string) string {
	t.Helper()
	var md sdkpb.WorkflowMetadata
	v, err := s.c.QueryWorkflow(context.Background(), contract.SourceWorkflowID(name), "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}

func (s *stack) update(t *testing.T, name, update string, args ...any) (workflows.SourceStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: contract.SourceWorkflowID(name), UpdateName: update, Args: args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.SourceStatus
	if err == nil {
		err = h.Get(ctx, &st)
	}
	return st, err
}

// pollNow polls and returns the status after the poll.
func (s *stack) pollNow(t *testing.T, name string) workflows.SourceStatus {
	t.Helper()
	st, err := s.update(t, name, contract.UpdateSourcePoll, workflows.SourcePollRequest{})
	require.NoError(t, err)
	return st
}

// count is how many workflows a visibility query finds.
func (s *stack) count(t *testing.T, query string) int {
	t.Helper()
	resp, err := s.c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	require.NoError(t, err)
	return int(resp.GetCount())
}

func (s *stack) waitCount(t *testing.T, query string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return s.count(t, query) == n }, time.Minute, 200*time.Millisecond, "%s: want %d", query, n)
}

// startPollers starts the pollers and waits for each one's first poll.
func (s *stack) startPollers(t *testing.T) {
	t.Helper()
	require.NoError(t, sources.EnsurePollers(context.Background(), s.c, s.pol))
	for name := range s.pol.Sources {
		require.Eventually(t, func() bool {
			v, err := s.c.QueryWorkflow(context.Background(), contract.SourceWorkflowID(name), "", contract.QuerySourceStatus)
			var st workflows.SourceStatus
			return err == nil && v.Get(&st) == nil && st.Polls > 0
		}, time.Minute, 100*time.Millisecond)
	}
}

// runID is the poller's current run.
func (s *stack) runID(t *testing.T, name string) string {
	t.Helper()
	d, err := s.c.DescribeWorkflowExecution(context.Background(), contract.SourceWorkflowID(name), "")
	require.NoError(t, err)
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// saveHistory writes a poller run's history for the replay test
// (workflows/replay_test.go) when JML_UPDATE_HISTORIES=1.
func (s *stack) saveHistory(t *testing.T, name, runID, file string) {
	t.Helper()
	if os.Getenv("JML_UPDATE_HISTORIES") != "1" {
		return
	}
	var h historypb.History
	it := s.c.GetWorkflowHistory(context.Background(), contract.SourceWorkflowID(name), runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "workflows", "testdata", file), b, 0o644))
}
