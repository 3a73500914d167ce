package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestRequestCommands drives an access request from the CLI against real
// Temporal and jml's workflows: request (refused for an unknown person,
// started for a known one), requests and status show who is asked,
// approve as the requester is refused, approve as the manager grants,
// requests shows the grant, revoke ends it at the target.
func TestRequestCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
targets:
  app: {type: scim, base_url: https://app.invalid/scim/v2, auth: {type: none}}
joiner:
  - sync_identity: {target: app, create_allowed: true, attributes: {user_name: '{email}'}}
approvals:
  requestable: ["group:ops-*@app"]
  max_duration: 1d
  approval: {approvers: [manager], timeout: 1h}
`), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)
	mt := memtarget.New()
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": mt}, Client: env.Client}))
	}, worker.Options{EnableSessionWorker: true})
	for _, emp := range []map[string]string{
		{"employee_id": "M1", "first_name": "Grace", "email": "grace@acme.test"},
		{"employee_id": "E1", "first_name": "Ada", "email": "ada@acme.test", "manager_id": "M1"},
	} {
		_, err := intake.Submit(context.Background(), env.Client, hr.Event{EventID: emp["employee_id"] + "-hire", Type: hr.Hire,
			EffectiveAt: time.Now().Add(-time.Hour), Employee: emp})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowType = "Joiner" AND ExecutionStatus = "Completed"`) == 2
	}, time.Minute, 100*time.Millisecond)

	code, _, errs := starter(t, "request", "NOPE", "--grant", "group:ops-admin@app", "--for", "8h", "--reason", "r", "--policy", path)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "employee_id")
	code, _, errs = starter(t, "request", "E1", "--grant", "group:finance@app", "--for", "8h", "--reason", "r", "--policy", path)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "not requestable")
	assert.Zero(t, countWorkflows(t, env, `WorkflowType = "AccessRequest"`), "nothing started")

	code, out, errs := starter(t, "request", "E1", "--grant", "group:ops-admin@app", "--for", "8h", "--reason", "deploy", "--id", "q1",
		"--as", "it@acme.test", "--policy", path)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "request q1 started")
	require.Eventually(t, func() bool {
		_, out, _ := starter(t, "requests")
		return strings.Contains(out, "Waiting") && strings.Contains(out, "grace@acme.test")
	}, 30*time.Second, 100*time.Millisecond)
	code, out, errs = starter(t, "status", "request/q1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "waiting   for 1 of 1 approvals (round 1) from grace@acme.test")

	code, _, errs = starter(t, "approve", "q1", "--reason", "me", "--as", "it@acme.test")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "nobody approves their own request")
	code, _, errs = starter(t, "approve", "q1", "--as", "grace@acme.test")
	assert.Equal(t, 2, code, "a reason is required")
	assert.Contains(t, errs, "--reason")
	code, out, errs = starter(t, "approve", "q1", "--reason", "planned deploy", "--as", "grace@acme.test")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "approved (1 of 1): granting")
	require.Eventually(t, func() bool {
		a, ok := mt.Find("user_name", "ada@acme.test")
		return ok && slices.Contains(a.Groups, "ops-admin")
	}, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		_, out, _ := starter(t, "requests")
		return strings.Contains(out, "Granted") && strings.Contains(out, "until ")
	}, 30*time.Second, 100*time.Millisecond)
	_, out, _ = starter(t, "status", "request/q1")
	assert.Contains(t, out, "approved by grace@acme.test via cli: planned deploy")

	code, out, errs = starter(t, "revoke", "q1", "--reason", "done early")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "revoking now")
	require.Eventually(t, func() bool {
		a, _ := mt.Find("user_name", "ada@acme.test")
		return !slices.Contains(a.Groups, "ops-admin")
	}, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		_, out, _ := starter(t, "status", "request/q1")
		return strings.Contains(out, "Completed revoked")
	}, 30*time.Second, 100*time.Millisecond)
	_, out, _ = starter(t, "requests")
	assert.NotContains(t, out, "q1")
}

// TestPrintRequestUnderReview: a grant asked again after a move shows why,
// who is asked and until when.
func TestPrintRequestUnderReview(t *testing.T) {
	st := workflows.RequestStatus{ID: "r1", State: contract.StateGranted, Round: 2, Quorum: 1,
		Review: `moved: department "eng" → "sales"`, Asked: []activities.Approver{{Email: "alan@acme.test"}},
		Deadline: time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC), GrantedAt: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
		Until: time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)}
	var b strings.Builder
	printRequest(&b, st)
	assert.Contains(t, b.String(), "review    asked again because the person moved: department \"eng\" → \"sales\"\n")
	assert.Contains(t, b.String(), "waiting   for 1 of 1 approvals (round 2) from alan@acme.test, until 2026-12-08T09:00:00Z\n")
}
