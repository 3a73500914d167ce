package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestRequestForMissingGroupRefused: a requestable group the SCIMMY target
// does not have is refused up front, by `starter request` and by POST
// /v1/requests (422 naming grant), looked up by a worker through the real
// connector; no AccessRequest starts and nobody is asked. A group the
// target has is accepted.
func TestRequestForMissingGroupRefused(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
targets:
  app: {type: scim, base_url: `+peer.BaseURL+`, auth: {type: bearer, token_env: APP_TOKEN}}
joiner:
  - sync_identity: {target: app, create_allowed: true, attributes: {user_name: '{email}'}}
approvals:
  requestable: ["group:ops-*@app"]
  max_duration: 1d
  approval: {approvers: [manager], timeout: 1h}
`), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)
	sc, err := scim.New(ctx, scim.Config{BaseURL: peer.BaseURL, Auth: scim.Auth{BearerToken: peer.Token}})
	require.NoError(t, err)
	_, err = sc.EnsureGroup(ctx, connectors.Group{Name: "ops-admin"})
	require.NoError(t, err)

	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	env.Server.NewWorkerWithOptions(contract.TaskQueue, func(r worker.Registry) {
		workflows.Register(r, activities.New(activities.Config{Policy: p, Targets: map[string]any{"app": sc}, Client: env.Client}))
	}, worker.Options{EnableSessionWorker: true})
	for _, emp := range []map[string]string{
		{"employee_id": "M1", "first_name": "Grace", "email": "grace@acme.test"},
		{"employee_id": "E1", "first_name": "Ada", "email": "ada@acme.test", "manager_id": "M1"},
	} {
		_, err := intake.Submit(ctx, env.Client, hr.Event{EventID: emp["employee_id"] + "-hire", Type: hr.Hire,
			EffectiveAt: time.Now().Add(-time.Hour), Employee: emp})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `WorkflowType = "Joiner" AND ExecutionStatus = "Completed"`) == 2
	}, time.Minute, 100*time.Millisecond)

	code, _, errs := starter(t, "request", "E1", "--grant", "group:ops-ghost@app", "--for", "8h", "--reason", "r",
		"--as", "it@acme.test", "--policy", path)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `grant: group "ops-ghost" does not exist at "app"`)
	assert.Contains(t, errs, "nothing started")

	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, Policy: p, BearerToken: "tok",
		SubmitTimeout: 30 * time.Second}))
	t.Cleanup(srv.Close)
	ask := func(grant string) (int, intake.RequestResponse) {
		body, _ := json.Marshal(intake.RequestBody{EmployeeID: "E1", Grant: grant, For: "8h", Reason: "r", Requester: "it@acme.test"})
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/requests", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var rr intake.RequestResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rr))
		return resp.StatusCode, rr
	}
	status, rr := ask("group:ops-ghost@app")
	assert.Equal(t, http.StatusUnprocessableEntity, status, rr.Error)
	require.Len(t, rr.Fields, 1)
	assert.Equal(t, "grant", rr.Fields[0].Field)
	assert.Contains(t, rr.Fields[0].Message, "does not exist")
	assert.Zero(t, countWorkflows(t, env, `WorkflowType = "AccessRequest"`), "nothing started, nobody asked")

	status, rr = ask("group:ops-admin@app")
	assert.Equal(t, http.StatusAccepted, status, rr.Error)
	// Once the accepted one is visible, the refused ones (started before,
	// had they started) would be too.
	require.Eventually(t, func() bool { return countWorkflows(t, env, `WorkflowType = "AccessRequest"`) >= 1 },
		30*time.Second, 50*time.Millisecond)
	assert.Equal(t, int64(1), countWorkflows(t, env, `WorkflowType = "AccessRequest"`), "only the group the target has")
}
