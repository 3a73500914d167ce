package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// pwStack is the password endpoint over a real Temporal server, real
// Identity workflows holding each person's links, and two SCIMMY peers.
type pwStack struct {
	c          client.Client
	srv        *httptest.Server
	corp, wiki *scimtest.Peer
	logs       *observer.ObservedLogs
	// accounts by employee ID and target; passwords set before the test.
	accounts map[string]map[string]string
	old      string
	tried    []string
}

const oldPassword = "Old-Passw0rd-2025"

func sha(pw string) string { s := sha256.Sum256([]byte(pw)); return hex.EncodeToString(s[:]) }

func newPWStack(t *testing.T) *pwStack {
	ctx := context.Background()
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ts.GetDefaultNamespace(), SearchAttributes: temporalenv.SearchAttributes()})
	require.NoError(t, err)
	s := &pwStack{c: c, corp: scimtest.Start(t), wiki: scimtest.Start(t), accounts: map[string]map[string]string{}, old: oldPassword}
	corpC, err := scim.New(ctx, scim.Config{BaseURL: s.corp.BaseURL, Auth: scim.Auth{BearerToken: s.corp.Token}})
	require.NoError(t, err)
	wikiC, err := scim.New(ctx, scim.Config{BaseURL: s.wiki.BaseURL, Auth: scim.Auth{BearerToken: s.wiki.Token}})
	require.NoError(t, err)

	// The people and their accounts, as joiners and a leaver left them.
	people := []struct {
		id, first, last, status string
		accounts                bool
		disabled                []string
	}{
		{"E5001", "Ada", "Baker", contract.StatusActive, true, nil},
		{"E5002", "Ann", "Other", contract.StatusActive, true, nil},
		{"E5003", "Tom", "Gone", contract.StatusDeprovisioned, true, []string{"corp", "wiki"}},
		{"E5004", "Nia", "Later", "", false, nil}, // hired, start date not come: no account yet
		{"E5005", "Ida", "Half", contract.StatusActive, true, []string{"wiki"}},
	}
	for _, p := range people {
		links := map[string]string{}
		if p.accounts {
			for name, conn := range map[string]*scim.Client{"corp": corpC, "wiki": wikiC} {
				a, err := conn.CreateAccount(ctx, connectors.Attributes{"user_name": strings.ToLower(p.first + "." + p.last)}, connectors.CreateOptions{Activate: true})
				require.NoError(t, err)
				require.NoError(t, conn.SetPassword(ctx, a.ID, secret.New(oldPassword)))
				if p.id == "E5003" || (p.id == "E5005" && name == "wiki") {
					require.NoError(t, conn.Deprovision(ctx, a.ID, connectors.DeprovisionOptions{}))
				}
				links[name] = a.ID
			}
		}
		s.accounts[p.id] = links
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.IdentityWorkflowID(p.id), TaskQueue: contract.TaskQueue},
			contract.IdentityWorkflowName, workflows.IdentityInput{EmployeeID: p.id, Version: workflows.IdentityVersion, Status: p.status,
				Attributes: map[string]string{"first_name": p.first, "last_name": p.last, "employee_id": p.id}, Accounts: links})
		require.NoError(t, err)
	}

	pol := &policy.Policy{
		Targets: map[string]policy.Target{
			"corp": {Type: "scim", BaseURL: s.corp.BaseURL}, "wiki": {Type: "scim", BaseURL: s.wiki.BaseURL},
			"entra": {Type: "entra", Tenant: "t"},
		},
		PasswordSyncGroups: []policy.PasswordSyncGroup{
			{Name: "corp", Auth: "corp", Members: []string{"wiki"}, Rules: policy.PasswordRules{MinLength: 12, RequireLower: true,
				RequireUpper: true, RequireDigit: true, ForbiddenWords: []string{"{first_name}", "{last_name}"}}},
			// Entra's own rules (ASCII only) beyond the group's.
			{Name: "cloud", Auth: "corp", Members: []string{"entra"}, Rules: policy.PasswordRules{MinLength: 12, MaxLength: 64,
				RequireLower: true, RequireUpper: true, RequireDigit: true}},
		},
	}
	for _, g := range pol.PasswordSyncGroups {
		require.Empty(t, policy.PasswordGroupProblems(pol, g))
	}
	vault := secret.NewVault(time.Hour)
	acts := activities.New(activities.Config{Policy: pol, Vault: vault, Client: c,
		Targets: map[string]any{"corp": corpC, "wiki": wikiC}})
	host := contract.HostTaskQueue("pw-test")
	w := worker.New(c, contract.TaskQueue, worker.Options{})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	hw, err := startHostWorker(c, host, acts, worker.Options{})
	require.NoError(t, err)
	t.Cleanup(hw.Stop)

	// Each identity's record is read from its memo, as the worker reads it.
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dir := activities.TemporalDirectory{Client: c}
	for _, p := range people {
		for {
			rec, err := dir.Identity(dctx, p.id)
			if err == nil && rec.Attributes["first_name"] == p.first {
				break
			}
			require.NoError(t, dctx.Err(), "identity %s never published its record", p.id)
			time.Sleep(20 * time.Millisecond)
		}
	}

	core, logs := observer.New(zap.DebugLevel)
	s.logs = logs
	s.srv = httptest.NewServer(passwordHandler(passwordEndpoint{token: "portal-token", svc: temporalPasswords(c, vault, host, acts),
		metrics: newPasswordMetrics(prometheus.NewRegistry()), log: zap.New(core)}))
	t.Cleanup(s.srv.Close)
	s.corp.Reset()
	s.wiki.Reset()
	return s
}

// post sends a change; the answer's status and JSON body.
func (s *pwStack) post(t *testing.T, body map[string]any) (int, map[string]any) {
	t.Helper()
	if pw, ok := body["password"].(string); ok && len(pw) >= 8 {
		s.tried = append(s.tried, pw) // (shorter ones match any text)
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	return s.do(t, http.MethodPost, "/v1/password-changes", b)
}

func (s *pwStack) do(t *testing.T, method, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer portal-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// unchanged asserts that nothing was written to either peer and that the
// people's passwords are still the old ones ("logging in" with them).
func (s *pwStack) unchanged(t *testing.T, ids ...string) {
	t.Helper()
	assert.Empty(t, s.corp.Writes())
	assert.Empty(t, s.wiki.Writes())
	for _, id := range ids {
		assert.Equal(t, sha(s.old), s.corp.PasswordSHA256(s.accounts[id]["corp"]), "%s corp", id)
		assert.Equal(t, sha(s.old), s.wiki.PasswordSHA256(s.accounts[id]["wiki"]), "%s wiki", id)
	}
	s.noRuns(t)
}

func (s *pwStack) noRuns(t *testing.T) {
	t.Helper()
	resp, err := s.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'PasswordSync'"})
	require.NoError(t, err)
	assert.Empty(t, resp.GetExecutions(), "a refused change starts no run")
}

func failedRules(body map[string]any) []string {
	var out []string
	fs, _ := body["failures"].([]any)
	for _, f := range fs {
		out = append(out, f.(map[string]any)["rule"].(string))
	}
	return out
}

// TestPasswordEndpointProofs are issue 31's proofs, end to end.
func TestPasswordEndpointProofs(t *testing.T) {
	s := newPWStack(t)
	const good = "Correct-Horse-42"

	t.Run("a request cannot point the change at another person", func(t *testing.T) {
		// E5002's request carrying E5001's name: refused, nobody changed.
		code, body := s.post(t, map[string]any{"group": "corp", "employee_id": "E5002", "password": good,
			"attributes": map[string]string{"first_name": "Ada", "last_name": "Baker"}})
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Equal(t, "attributes", body["field"])
		code, body = s.post(t, map[string]any{"group": "corp", "employee_id": "E5002", "password": good,
			"accounts": map[string][]string{"corp": {s.accounts["E5001"]["corp"]}}})
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Equal(t, "accounts", body["field"])
		s.unchanged(t, "E5001", "E5002")
	})

	t.Run("each broken rule answered 422 at once, naming it", func(t *testing.T) {
		for _, tt := range []struct {
			group, employee, pw string
			rules               []string
		}{
			{"corp", "E5001", "Sh0rt-pass", []string{"min_length"}},
			{"corp", "E5001", "no-digits-At-all", []string{"require_digit"}},
			{"corp", "E5001", "no-upper-case-1", []string{"require_upper"}},
			{"corp", "E5002", "Long-Enough-Other-1", []string{"forbidden_words"}}, // E5002's own last name
			{"corp", "E5001", "ada", []string{"min_length", "require_upper", "require_digit", "forbidden_words"}},
			{"cloud", "E5001", "Grüße-aus-Köln-1", []string{"ascii_only"}}, // Entra's own rule
		} {
			code, body := s.post(t, map[string]any{"group": tt.group, "employee_id": tt.employee, "password": tt.pw})
			assert.Equal(t, http.StatusUnprocessableEntity, code, body)
			assert.Equal(t, "rules", body["code"])
			assert.Equal(t, tt.rules, failedRules(body), tt.pw)
			for _, r := range tt.rules {
				assert.Contains(t, body["error"], r)
			}
		}
		s.unchanged(t, "E5001", "E5002")
	})

	t.Run("who the person is: terminated, unknown, no account yet, a bad ID", func(t *testing.T) {
		for _, tt := range []struct {
			employee  string
			status    int
			code, msg string
		}{
			{"E5003", http.StatusConflict, "terminated", "terminated"},
			{"E9999", http.StatusNotFound, "unknown_person", "no person with employee ID E9999"},
			{"E5004", http.StatusConflict, "no_account", "no account on corp"},
			{"../../E5001", http.StatusBadRequest, "invalid", "employee_id"},
		} {
			code, body := s.post(t, map[string]any{"group": "corp", "employee_id": tt.employee, "password": good})
			assert.Equal(t, tt.status, code, body)
			assert.Equal(t, tt.code, body["code"], body)
			assert.Contains(t, body["error"], tt.msg)
		}
		// The terminated person's disabled accounts keep their password.
		s.unchanged(t, "E5003")
	})

	var accepted string
	t.Run("an accepted change is readable through the status endpoint", func(t *testing.T) {
		code, body := s.post(t, map[string]any{"group": "corp", "employee_id": "E5001", "password": good})
		require.Equal(t, http.StatusAccepted, code, body)
		accepted, _ = body["id"].(string)
		require.True(t, strings.HasPrefix(accepted, "E5001/"), body)
		assert.Equal(t, "/v1/password-changes/"+accepted, body["status_url"])
		assert.Equal(t, workflows.PasswordRunning, body["state"])

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, s.c.GetWorkflow(ctx, "password-sync/"+accepted, "").Get(ctx, nil))
		code, body = s.do(t, http.MethodGet, body["status_url"].(string), nil)
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, workflows.PasswordChanged, body["state"], body)
		assert.Equal(t, "E5001", body["employee_id"])
		targets, _ := body["targets"].([]any)
		require.Len(t, targets, 2)
		for i, want := range []string{"corp", "wiki"} {
			tg := targets[i].(map[string]any)
			assert.Equal(t, want, tg["target"])
			assert.Equal(t, s.accounts["E5001"][want], tg["account_id"])
			assert.Equal(t, workflows.AccountChanged, tg["outcome"])
		}
		assert.Equal(t, sha(good), s.corp.PasswordSHA256(s.accounts["E5001"]["corp"]))
		assert.Equal(t, sha(good), s.wiki.PasswordSHA256(s.accounts["E5001"]["wiki"]))
		for _, id := range []string{"E5002", "E5003"} {
			assert.Equal(t, sha(s.old), s.corp.PasswordSHA256(s.accounts[id]["corp"]), id)
		}

		for _, bad := range []string{"identity/E5001", "E5001", "E5001/not-a-time", "E5001/20261122T084500.000Z"} {
			code, body = s.do(t, http.MethodGet, "/v1/password-changes/"+bad, nil)
			assert.Equal(t, http.StatusNotFound, code, "%s: %v", bad, body)
		}
	})

	t.Run("a disabled account is skipped and reported", func(t *testing.T) {
		s.wiki.Reset()
		code, body := s.post(t, map[string]any{"group": "corp", "employee_id": "E5005", "password": "Steady-Going-99"})
		require.Equal(t, http.StatusAccepted, code, body)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var res workflows.PasswordSyncResult
		require.NoError(t, s.c.GetWorkflow(ctx, "password-sync/"+body["id"].(string), "").Get(ctx, &res))
		assert.Equal(t, workflows.PasswordPartlyFailed, res.State)
		require.Len(t, res.Targets, 2)
		assert.Equal(t, workflows.AccountChanged, res.Targets[0].Outcome)
		assert.Equal(t, workflows.AccountDisabled, res.Targets[1].Outcome)
		assert.Empty(t, s.wiki.Writes())
		assert.Equal(t, sha(s.old), s.wiki.PasswordSHA256(s.accounts["E5005"]["wiki"]))
	})

	t.Run("no password in any history or log", func(t *testing.T) {
		ctx := context.Background()
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
		require.NoError(t, err)
		require.NotEmpty(t, resp.GetExecutions())
		for _, e := range resp.GetExecutions() {
			it := s.c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				raw, err := proto.Marshal(ev)
				require.NoError(t, err)
				for _, pw := range s.tried {
					for _, form := range []string{pw, base64.StdEncoding.EncodeToString([]byte(pw))} {
						assert.False(t, bytes.Contains(raw, []byte(form)), "password in history of %s", e.GetExecution().GetWorkflowId())
					}
				}
			}
		}
		require.NotZero(t, s.logs.Len())
		for _, entry := range s.logs.All() {
			line, err := json.Marshal(map[string]any{"msg": entry.Message, "fields": entry.ContextMap()})
			require.NoError(t, err)
			for _, pw := range s.tried {
				assert.NotContains(t, string(line), pw)
			}
		}
		assert.NotEmpty(t, s.logs.FilterMessage("password change accepted").All())
	})
}
