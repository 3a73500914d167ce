// Package e2e runs jml end to end: a real Temporal server (temporaltest),
// real workers with the real activities, the real SCIM connector against
// the SCIMMY peer, and an HTTPS endpoint that checks generated passwords.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

type stack struct {
	ts     *temporaltest.TestServer
	c      client.Client
	peer   *scimtest.Peer
	portal *httptest.Server
	// vault, when set, is the vault of the workers started next (tests
	// that watch what a worker holds).
	vault *secret.Vault
	// stepTimeout, when set, is the workers' step timeout (default 10s).
	stepTimeout time.Duration
	// audit, when set, is the audit store of the workers started next.
	audit activities.AuditStore
	// log records everything the workers and clients log (logs reads it).
	log    *zap.Logger
	logs   func() string
	policy *policy.Policy

	// check tells the portal whether a login works (default: the SCIM
	// peer holds exactly that password for the account).
	check func(id, login, password string) bool

	mu        sync.Mutex
	passwords []string // every password the portal received and verified
	rejected  int
	notices   []string // bodies the portal's /notify received
}

func newStack(t *testing.T, opts ...temporaltest.TestServerOption) *stack {
	t.Helper()
	s := newBareStack(t, scimtest.Start(t), opts...)
	s.check = func(id, _, password string) bool {
		sum := sha256.Sum256([]byte(password))
		return s.peer.PasswordSHA256(id) == hex.EncodeToString(sum[:])
	}
	s.policy = &policy.Policy{
		Targets:  map[string]policy.Target{"app": {Type: "scim", BaseURL: s.peer.BaseURL}},
		Password: policy.PasswordPolicy{Length: 20, Lower: true, Upper: true, Digits: true, Symbols: true},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Password: "generate",
				Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}", "department": "{department}"}}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", CreateMissing: true, Add: []string{"everyone", "dept-{department}"}}},
			{Name: "portal.account", SendRESTRequest: &policy.RESTRequest{URL: s.portal.URL + "/accounts",
				Body: `{"id":"{ScimUser.id}","login":"{ScimUser.user_name}","password":"{ScimUser.password}"}`}},
		}},
		Mover: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}", "department": "{department}"}}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", CreateMissing: true, Add: []string{"everyone", "dept-{department}"}}},
		}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app", RemoveGroups: true}},
		}},
	}
	return s
}

// newBareStack is a Temporal server and the HR portal, without a target
// peer, policy or password check (the caller sets them; peer may be nil).
func newBareStack(t *testing.T, peer *scimtest.Peer, opts ...temporaltest.TestServerOption) *stack {
	t.Helper()
	s := &stack{peer: peer}
	s.log, s.logs = logging.Capture()
	s.ts = temporaltest.NewServer(append([]temporaltest.TestServerOption{temporaltest.WithT(t)}, opts...)...)
	s.c = s.ts.NewClientWithOptions(client.Options{Logger: logging.Temporal(s.log)})
	t.Cleanup(s.c.Close)
	ctx := context.Background()
	sa := map[string]enumspb.IndexedValueType{}
	for _, n := range []string{contract.SAEmployeeID, contract.SAEvent, contract.SAState, contract.SAFailedStep} {
		sa[n] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	_, err := s.c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: s.ts.GetDefaultNamespace(), SearchAttributes: sa,
	})
	require.NoError(t, err)

	// The HR portal: accepts a login only if check does; /notify records
	// notifications.
	s.portal = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/notify" {
			b, _ := io.ReadAll(r.Body)
			s.mu.Lock()
			s.notices = append(s.notices, string(b))
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var body struct{ ID, Login, Password string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		ok := body.Password != "" && s.check(body.ID, body.Login, body.Password)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !ok {
			s.rejected++
			http.Error(w, "login failed", http.StatusUnauthorized)
			return
		}
		s.passwords = append(s.passwords, body.Password)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(s.portal.Close)
	return s
}

// worker starts a worker with its own client and vault, sending REST
// requests through hc (nil: the portal's client); stop kills it.
func (s *stack) worker(t *testing.T, hc *http.Client) (stop func()) {
	t.Helper()
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	return s.workerWith(t, map[string]any{"app": sc}, hc)
}

func (s *stack) workerWith(t *testing.T, targets map[string]any, hc *http.Client) (stop func()) {
	t.Helper()
	c := s.ts.NewClientWithOptions(client.Options{Logger: logging.Temporal(s.log)})
	if hc == nil {
		hc = s.portal.Client()
	}
	vault := s.vault
	if vault == nil {
		vault = secret.NewVault(time.Hour)
	}
	host := contract.HostTaskQueue(fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
	stepTimeout := s.stepTimeout
	if stepTimeout == 0 {
		stepTimeout = 10 * time.Second
	}
	a := activities.New(activities.Config{
		Policy: s.policy, Targets: targets, Vault: vault, HostQueue: host, HostTimeout: 5 * time.Second,
		HTTPClient: hc, Client: c, Logger: s.log,
		Directory:   activities.TemporalDirectory{Client: c},
		StepTimeout: stepTimeout, SessionHeartbeat: 2 * time.Second,
		Audit: s.audit,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true, WorkflowPanicPolicy: worker.FailWorkflow})
	workflows.Register(w, a)
	require.NoError(t, w.Start())
	hw := worker.New(c, host, worker.Options{})
	hw.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	require.NoError(t, hw.Start())
	var once sync.Once
	stop = func() { once.Do(func() { hw.Stop(); w.Stop(); c.Close() }) }
	t.Cleanup(stop)
	return stop
}

// deliver sends an HR event the way the intake does.
func deliver(ctx context.Context, c client.Client, ev hr.Event) (workflows.EventAccepted, error) {
	return intake.Submit(ctx, c, ev)
}

func person(i int) map[string]string {
	return map[string]string{
		"employee_id": fmt.Sprintf("E%03d", i), "first_name": fmt.Sprintf("First%d", i),
		"email": fmt.Sprintf("user%03d@acme.test", i), "department": "eng",
	}
}

func (s *stack) waitStatus(t *testing.T, emps []string, status string) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		for _, e := range emps {
			v, err := s.c.QueryWorkflow(ctx, contract.IdentityWorkflowID(e), "", contract.QueryCurrent)
			if err != nil {
				return false
			}
			var cr workflows.CurrentRun
			if v.Get(&cr) != nil || cr.Status != status || cr.WorkflowID != "" || len(cr.Pending) > 0 {
				return false
			}
		}
		return true
	}, 3*time.Minute, 500*time.Millisecond)
}

// TestHireChangeTerminate50 delivers hire → change → terminate for 50
// people, interleaved and with duplicates, and checks the SCIM peer, the
// portal and every byte of history for the generated passwords.
func TestHireChangeTerminate50(t *testing.T) {
	s := newStack(t)
	s.worker(t, nil)
	ctx := context.Background()
	const n = 50
	var emps []string
	for i := range n {
		emps = append(emps, person(i)["employee_id"])
	}
	// Each person's events in order, people interleaved, every event
	// delivered twice (the second time later, out of band).
	var wg sync.WaitGroup
	var dupMu sync.Mutex
	dups := 0
	for i := range n {
		wg.Go(func() {
			p := person(i)
			evs := []hr.Event{
				{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p},
				{EventID: p["employee_id"] + "-chg", Type: hr.Change, Employee: map[string]string{"employee_id": p["employee_id"], "department": "sales"}},
				{EventID: p["employee_id"] + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": p["employee_id"]}},
			}
			for k, ev := range evs {
				acc, err := deliver(ctx, s.c, ev)
				assert.NoError(t, err)
				assert.False(t, acc.Duplicate)
				if k > 0 { // redeliver the previous event
					acc, err := deliver(ctx, s.c, evs[k-1])
					assert.NoError(t, err)
					dupMu.Lock()
					if acc.Duplicate {
						dups++
					}
					dupMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 2*n, dups)
	s.waitStatus(t, emps, contract.StatusDeprovisioned)

	sc, err := scim.New(ctx, scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	accts, _, err := sc.ListAccounts(ctx, "", 500)
	require.NoError(t, err)
	require.Len(t, accts, n, "exactly one account per person")
	for _, a := range accts {
		assert.False(t, a.Active, a.Attributes["user_name"])
		gs, err := sc.Memberships(ctx, a.ID)
		require.NoError(t, err)
		assert.Empty(t, gs)
	}
	s.mu.Lock()
	pws, rejected := append([]string(nil), s.passwords...), s.rejected
	s.mu.Unlock()
	assert.Len(t, pws, n, "every joiner delivered a password that logs in")
	assert.Zero(t, rejected)
	s.assertNoSecrets(t, pws)
	saveHistories(t, s, "E000")
}

// assertNoSecrets reads the complete history and description of every
// workflow, and the captured logs, and counts each password in raw,
// base64 and JSON-escaped form.
func (s *stack) assertNoSecrets(t *testing.T, pws []string) {
	t.Helper()
	ctx := context.Background()
	var blob bytes.Buffer
	var token []byte
	workflowsSeen := 0
	for {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token, PageSize: 1000})
		require.NoError(t, err)
		for _, e := range resp.Executions {
			workflowsSeen++
			it := s.c.GetWorkflowHistory(ctx, e.Execution.WorkflowId, e.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				b, _ := proto.Marshal(ev)
				blob.Write(b)
				blob.WriteString(protojson.Format(ev))
			}
			d, err := s.c.DescribeWorkflowExecution(ctx, e.Execution.WorkflowId, e.Execution.RunId)
			require.NoError(t, err)
			b, _ := proto.Marshal(d)
			blob.Write(b)
			blob.WriteString(protojson.Format(d))
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	require.Greater(t, workflowsSeen, len(pws))
	logs := s.logs()
	require.NotEmpty(t, logs)
	hist := blob.String()
	found := 0
	for _, pw := range pws {
		js, _ := json.Marshal(pw)
		for _, form := range []string{pw, strings.Trim(string(js), `"`), base64.StdEncoding.EncodeToString([]byte(pw)), base64.RawStdEncoding.EncodeToString([]byte(pw))} {
			found += strings.Count(hist, form) + strings.Count(logs, form)
		}
	}
	assert.Zero(t, found, "password occurrences in histories, descriptions and logs")
	t.Logf("scanned %d workflows (%d bytes of history) and %d bytes of logs for %d passwords", workflowsSeen, len(hist), len(logs), len(pws))
}

// TestWorkerKilledMidJoiners kills the worker while joiners are between
// "create" and "send REST": a new worker finishes every run, with exactly
// one account per person, and each REST step sends a new, valid password.
func TestWorkerKilledMidJoiners(t *testing.T) {
	s := newStack(t)
	arrived := make(chan struct{}, 100)
	stuck := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		arrived <- struct{}{}
		<-r.Context().Done() // the worker dies before the request goes out
		return nil, r.Context().Err()
	})}
	kill := s.worker(t, stuck)
	ctx := context.Background()
	const n = 10
	var emps []string
	for i := range n {
		p := person(i)
		emps = append(emps, p["employee_id"])
		_, err := deliver(ctx, s.c, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
		require.NoError(t, err)
	}
	<-arrived // at least one joiner sits between create and send REST
	kill()
	s.worker(t, nil)
	s.waitStatus(t, emps, contract.StatusActive)

	sc, err := scim.New(ctx, scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	accts, _, err := sc.ListAccounts(ctx, "", 500)
	require.NoError(t, err)
	assert.Len(t, accts, n, "exactly one account per person")
	s.mu.Lock()
	assert.Len(t, s.passwords, n)
	assert.Zero(t, s.rejected)
	pws := append([]string(nil), s.passwords...)
	s.mu.Unlock()
	reissued := 0
	for _, e := range emps {
		v, err := s.c.QueryWorkflow(ctx, contract.LifecycleWorkflowID("joiner", e, e+"-hire"), "", contract.QuerySteps)
		require.NoError(t, err)
		var steps []workflows.StepInfo
		require.NoError(t, v.Get(&steps))
		for _, st := range steps {
			if st.Note == activities.NotePasswordReissued || st.Note == activities.NotePasswordSet {
				reissued++
			}
		}
	}
	assert.Positive(t, reissued, "a lost vault entry was replaced by a new password")
	s.assertNoSecrets(t, pws)
}

// saveHistories writes histories for the replay test when
// JML_UPDATE_HISTORIES=1.
func saveHistories(t *testing.T, s *stack, emp string) {
	if os.Getenv("JML_UPDATE_HISTORIES") != "1" {
		return
	}
	ids := []string{
		contract.IdentityWorkflowID(emp),
		contract.LifecycleWorkflowID("joiner", emp, emp+"-hire"),
		contract.LifecycleWorkflowID("mover", emp, emp+"-chg"),
		contract.LifecycleWorkflowID("leaver", emp, emp+"-term"),
	}
	for _, id := range ids {
		// -lean: the current shape (VersionLean); identity.json,
		// joiner.json, mover.json and leaver.json are older shapes, kept.
		writeHistory(t, s.c, id, strings.SplitN(id, "/", 2)[0]+"-lean.json")
	}
}

// writeHistory writes a workflow's history to workflows/testdata/name
// for the replay test when JML_UPDATE_HISTORIES=1.
func writeHistory(t *testing.T, c client.Client, id, name string) {
	if os.Getenv("JML_UPDATE_HISTORIES") != "1" {
		return
	}
	var h historypb.History
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "..", "workflows", "testdata", name), b, 0o644))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
