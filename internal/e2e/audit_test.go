package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/workflows"
)

// gatedStore is the audit store with an off switch (the store is down:
// every append fails) and a crash: every crashEvery-th append commits and
// then fails, as when the worker dies between the commit and reporting
// the activity done, so the activity runs again.
type gatedStore struct {
	*auditdb.Store
	down       atomic.Bool
	calls      atomic.Int64
	crashes    atomic.Int64
	refused    atomic.Int64
	crashEvery int64
}

func (g *gatedStore) Append(ctx context.Context, recs []audit.Record) (int, error) {
	if g.down.Load() {
		g.refused.Add(1)
		return 0, errors.New("connection refused")
	}
	n, err := g.Store.Append(ctx, recs)
	if err == nil && g.crashEvery > 0 && g.calls.Add(1)%g.crashEvery == 0 {
		g.crashes.Add(1)
		return 0, errors.New("worker died after the commit")
	}
	return n, err
}

// stuckSCIM is the SCIM connector whose Deprovision fails for good for
// one account: that person's leaver waits for an operator and the account
// stays active.
type stuckSCIM struct {
	*scim.Client
	stuck atomic.Value // account ID
}

func (s *stuckSCIM) Deprovision(ctx context.Context, id string, o connectors.DeprovisionOptions) error {
	if v, _ := s.stuck.Load().(string); v == id {
		return connectors.Permanentf("Forbidden", "deprovision refused for %s", id)
	}
	return s.Client.Deprovision(ctx, id, o)
}

// TestAuditTrailOutlivesTemporal hires, changes and terminates 30 people
// (JML_AUDIT_PEOPLE=300 for the size) through real workers on a real Temporal server and the
// SCIM peer, with the audit store down during the terminations and every
// seventh write "crashing" after its commit; then deletes every workflow
// execution from Temporal. The trail still shows every effect of every
// person exactly once, agrees with the peer's accounts, the leavers report
// agrees with the peer and with a computation by hand, the chain
// verifies, and no generated password is anywhere in the store's files.
func TestAuditTrailOutlivesTemporal(t *testing.T) {
	n := 30
	if v, err := strconv.Atoi(os.Getenv("JML_AUDIT_PEOPLE")); err == nil && v > 0 {
		n = v
	}
	s := newStack(t)
	s.policy.Audit.Attributes = []string{"department"}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "audit.db")
	st, err := auditdb.Open(context.Background(), dbPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	gs := &gatedStore{Store: st, crashEvery: 7}
	s.audit = gs
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	target := &stuckSCIM{Client: sc}
	s.workerWith(t, map[string]any{"app": target}, nil)
	ctx := context.Background()
	testStart := time.Now()

	var emps []string
	for i := range n {
		emps = append(emps, person(i)["employee_id"])
	}
	const stuckEmp = "E007"
	backdated := func(i int) bool { return i%10 == 0 } // termination effective 3h ago
	deliverEach := func(mk func(i int, p map[string]string) hr.Event) {
		var wg sync.WaitGroup
		jobs := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range jobs {
					// Redelivered, as an HR feed does, when the machine's
					// load makes the update's call time out (an event ID
					// is taken once).
					var err error
					for range 5 {
						if _, err = deliver(ctx, s.c, mk(i, person(i))); err == nil {
							break
						}
					}
					assert.NoError(t, err)
				}
			})
		}
		for i := range n {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}

	// 1. Hires, then changes.
	deliverEach(func(_ int, p map[string]string) hr.Event {
		return hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p}
	})
	deliverEach(func(_ int, p map[string]string) hr.Event {
		return hr.Event{EventID: p["employee_id"] + "-chg", Type: hr.Change,
			Employee: map[string]string{"employee_id": p["employee_id"], "department": "sales"}}
	})
	waitAll(t, s, emps, contract.StatusActive)
	byUser := map[string]connectors.Account{}
	accts, err := allAccounts(ctx, sc)
	require.NoError(t, err)
	for _, a := range accts {
		byUser[a.Attributes["user_name"]] = a
	}
	target.stuck.Store(byUser["user007@acme.test"].ID)

	// 2. Terminations with the store down: the runs make their effects
	// and wait for their records.
	gs.down.Store(true)
	termAt := time.Now()
	deliverEach(func(i int, p map[string]string) hr.Event {
		ev := hr.Event{EventID: p["employee_id"] + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": p["employee_id"]}}
		if backdated(i) {
			ev.EffectiveAt = termAt.Add(-3 * time.Hour)
		}
		return ev
	})
	require.Eventually(t, func() bool {
		accts, err := allAccounts(ctx, sc)
		if err != nil {
			return false
		}
		off := 0
		for _, a := range accts {
			if !a.Active {
				off++
			}
		}
		return off >= n/2
	}, 10*time.Minute, 200*time.Millisecond, "runs go on while the audit store is down")
	disabled, err := st.Records(ctx, auditdb.Filter{Actions: []string{audit.AccountDisabled}})
	require.NoError(t, err)
	assert.Empty(t, disabled, "nothing reached the store while it was down")
	gs.down.Store(false)
	var rest []string
	for _, e := range emps {
		if e != stuckEmp {
			rest = append(rest, e)
		}
	}
	waitAll(t, s, rest, contract.StatusDeprovisioned)
	termDone := time.Now()
	assert.Positive(t, gs.refused.Load(), "the store was asked while down")
	assert.Positive(t, gs.crashes.Load(), "writes crashed after their commit")
	t.Logf("%d people; store refused %d writes while down; %d writes crashed after commit", n, gs.refused.Load(), gs.crashes.Load())

	// E007's leaver waits for an operator: its records (the failure) are
	// in, though its run is open.
	// (Deleting an open run drops the records it has not stored yet: wait
	// for all of them, whatever order the retries land them in.)
	require.Eventually(t, func() bool {
		recs, err := st.Records(ctx, auditdb.Filter{EmployeeID: stuckEmp, Actions: []string{audit.StepFailed, audit.RunStarted}})
		return err == nil && len(recs) == 4
	}, 5*time.Minute, 200*time.Millisecond)

	if os.Getenv("JML_UPDATE_HISTORIES") == "1" {
		// For the replay test: a joiner whose records landed at once
		// (local activities) and a leaver whose records waited for the
		// store (the RecordAudit fallback).
		saveHistory(t, s, contract.LifecycleWorkflowID("joiner", "E001", "E001-hire"), "", "joiner-lean-audit.json")
		saveHistory(t, s, contract.LifecycleWorkflowID("leaver", "E001", "E001-term"), "", "leaver-lean-audit-store-down.json")
	}

	// 3. Temporal forgets every run.
	deleteAllExecutions(t, s)

	// 4. Every effect, once, as the peer has it.
	accts, err = allAccounts(ctx, sc)
	require.NoError(t, err)
	require.Len(t, accts, n)
	byUser = map[string]connectors.Account{}
	for _, a := range accts {
		byUser[a.Attributes["user_name"]] = a
	}
	all, err := st.Records(ctx, auditdb.Filter{})
	require.NoError(t, err)
	adopted := 0
	count := func(recs []audit.Record, action, group string) (k int) {
		for _, r := range recs {
			if r.Action == audit.AccountAdopted && strings.Contains(r.Detail, activities.NotePasswordSet) {
				// A joiner's create whose attempt timed out on the loaded
				// machine: the retry finds the account and says so.
				r.Action = audit.AccountCreated
			}
			if r.Action == audit.GroupRemoved && r.Kind == "leaver" {
				// The leaver's remove_groups: counted apart (below).
				continue
			}
			if r.Action == action && r.Group == group {
				k++
			}
		}
		return k
	}
	for _, r := range all {
		if r.Action == audit.AccountAdopted || strings.Contains(r.Detail, activities.NoteEarlierAttempt) {
			adopted++
		}
	}
	t.Logf("%d records name an earlier attempt that lost its result (step timeouts under load)", adopted)
	assert.Equal(t, n, count(all, audit.AccountCreated, ""), "one account.created per account in the peer")
	for i, emp := range emps {
		recs, err := st.Records(ctx, auditdb.Filter{EmployeeID: emp})
		require.NoError(t, err)
		acct := byUser[person(i)["email"]]
		require.NotEmpty(t, acct.ID, emp)
		for _, r := range recs {
			if r.AccountID != "" {
				assert.Equal(t, acct.ID, r.AccountID, "%s %s names another account", emp, r.Action)
			}
			assert.NotEmpty(t, r.WorkflowID)
			assert.NotEmpty(t, r.EventID)
		}
		for action, want := range map[string]int{audit.AccountCreated: 1, audit.PasswordSet: 1, audit.PasswordDelivered: 1,
			audit.RequestSent: 1, audit.AccountUpdated: 1} {
			assert.Equal(t, want, count(recs, action, ""), "%s: %s", emp, action)
		}
		for _, g := range []struct{ action, group string }{{audit.GroupAdded, "everyone"}, {audit.GroupAdded, "dept-eng"},
			{audit.GroupAdded, "dept-sales"}, {audit.GroupRemoved, "dept-eng"}} {
			assert.Equal(t, 1, count(recs, g.action, g.group), "%s: %s %s", emp, g.action, g.group)
		}
		assert.Equal(t, 3, count(recs, audit.RunStarted, ""), emp)
		for _, r := range recs {
			if r.Action == audit.AccountUpdated {
				assert.Equal(t, map[string]string{"department": "sales"}, r.Attributes, "auditable values only")
			}
		}
		if emp == stuckEmp {
			assert.True(t, acct.Active)
			assert.Zero(t, count(recs, audit.AccountDisabled, ""))
			continue
		}
		assert.False(t, acct.Active, emp)
		assert.Equal(t, 1, count(recs, audit.AccountDisabled, ""), emp)
		assert.Equal(t, 3, count(recs, audit.RunCompleted, ""), emp)
	}

	// 5. The leavers report: the peer's state and a hand computation.
	rep := audit.Leavers(all, testStart.Add(-24*time.Hour), time.Hour, time.Now())
	require.Len(t, rep.Terminations, n)
	assert.Equal(t, n, rep.Accounts)
	assert.Equal(t, n-1, rep.Done)
	require.Len(t, rep.StillActive, 1)
	assert.Equal(t, stuckEmp, rep.StillActive[0].EmployeeID)
	assert.Equal(t, byUser["user007@acme.test"].ID, rep.StillActive[0].AccountID)
	assert.Equal(t, "user007@acme.test", rep.StillActive[0].Identifier)
	var breaches []string
	for _, b := range rep.Breaches {
		breaches = append(breaches, b.EmployeeID)
	}
	var wantBreaches []string
	var lats []time.Duration
	window := termDone.Sub(termAt)
	for i, emp := range emps {
		if backdated(i) && emp != stuckEmp {
			wantBreaches = append(wantBreaches, emp)
		}
		for _, term := range rep.Terminations {
			if term.EmployeeID != emp || emp == stuckEmp {
				continue
			}
			a := term.Accounts[0]
			assert.Equal(t, byUser[person(i)["email"]].ID, a.AccountID)
			assert.Equal(t, audit.LeaverDisabled, a.State)
			// By hand: the termination's effective time to the disable,
			// bounded by the wall clock of this test.
			if backdated(i) {
				assert.GreaterOrEqual(t, a.Latency, 3*time.Hour, emp)
				assert.LessOrEqual(t, a.Latency, 3*time.Hour+window+time.Second, emp)
			} else {
				assert.LessOrEqual(t, a.Latency, window+time.Second, emp)
			}
			lats = append(lats, a.Latency)
		}
	}
	slices.Sort(breaches)
	assert.Equal(t, wantBreaches, breaches)
	slices.Sort(lats)
	require.Len(t, lats, n-1)
	assert.Equal(t, lats[len(lats)-1], rep.Max)
	assert.Equal(t, lats[(len(lats)+1)/2-1], rep.P50)
	t.Logf("leavers: p50 %s p95 %s max %s; %d breaches, %d still active", rep.P50, rep.P95, rep.Max, len(rep.Breaches), len(rep.StillActive))

	// 6. The chain holds; no password is in the store, in any form.
	v, err := st.Verify(ctx)
	require.NoError(t, err)
	assert.Nil(t, v.Break)
	assert.EqualValues(t, len(all), v.Records)
	s.mu.Lock()
	pws := slices.Clone(s.passwords)
	s.mu.Unlock()
	// At least once: a delivery whose attempt timed out on a loaded
	// machine is sent again (its record is written once).
	require.GreaterOrEqual(t, len(pws), n, "the portal received every joiner's password")
	assertNoPasswordsIn(t, dir, all, pws)
}

// assertNoPasswordsIn scans every file of the audit store (database, WAL)
// and every record for the passwords, raw, JSON-escaped and base64.
func assertNoPasswordsIn(t *testing.T, dir string, recs []audit.Record, pws []string) {
	t.Helper()
	var blob bytes.Buffer
	files, err := filepath.Glob(filepath.Join(dir, "audit.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		blob.Write(b)
	}
	js, err := json.Marshal(recs)
	require.NoError(t, err)
	blob.Write(js)
	require.True(t, bytes.Contains(blob.Bytes(), []byte("E001")), "the scan sees the records")
	found := 0
	for _, pw := range pws {
		esc, _ := json.Marshal(pw)
		for _, form := range []string{pw, strings.Trim(string(esc), `"`), base64.StdEncoding.EncodeToString([]byte(pw)), base64.RawStdEncoding.EncodeToString([]byte(pw))} {
			found += bytes.Count(blob.Bytes(), []byte(form))
		}
	}
	assert.Zero(t, found, "password occurrences in the audit store")
	t.Logf("scanned %d bytes of audit store for %d passwords", blob.Len(), len(pws))
}

// waitAll waits until every person's identity is in status with nothing
// running or pending: like stack.waitStatus, with time for 300 people on
// a busy machine, and progress in the log.
func waitAll(t *testing.T, s *stack, emps []string, status string) {
	t.Helper()
	ctx := context.Background()
	left := slices.Clone(emps)
	deadline := time.Now().Add(20 * time.Minute)
	for len(left) > 0 {
		left = slices.DeleteFunc(left, func(e string) bool {
			v, err := s.c.QueryWorkflow(ctx, contract.IdentityWorkflowID(e), "", contract.QueryCurrent)
			if err != nil {
				return false
			}
			var cr workflows.CurrentRun
			return v.Get(&cr) == nil && cr.Status == status && cr.WorkflowID == "" && len(cr.Pending) == 0
		})
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			// Say where the first one is: its identity and its current run.
			var cr workflows.CurrentRun
			if v, err := s.c.QueryWorkflow(ctx, contract.IdentityWorkflowID(left[0]), "", contract.QueryCurrent); err == nil {
				_ = v.Get(&cr)
			}
			var rows []workflows.StepInfo
			if cr.WorkflowID != "" {
				if v, err := s.c.QueryWorkflow(ctx, cr.WorkflowID, "", contract.QuerySteps); err == nil {
					_ = v.Get(&rows)
				}
			}
			t.Fatalf("%d of %d people not %s after 20 minutes, e.g. %s: %+v; steps %+v", len(left), len(emps), status, left[0], cr, rows)
		}
		t.Logf("%d of %d people not yet %s", len(left), len(emps), status)
		time.Sleep(5 * time.Second)
	}
}

// deleteAllExecutions deletes every workflow execution (open ones are
// terminated first) and waits until Temporal lists none.
func deleteAllExecutions(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	for {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000})
		require.NoError(t, err)
		if len(resp.Executions) == 0 {
			return
		}
		for _, e := range resp.Executions {
			_, err := s.c.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
				Namespace: s.ts.GetDefaultNamespace(), WorkflowExecution: e.Execution})
			if err != nil && !strings.Contains(err.Error(), "not found") {
				require.NoError(t, err, fmt.Sprintf("delete %s", e.Execution.WorkflowId))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// allAccounts reads every account of the peer, page by page (the peer
// answers at most 200 a page).
func allAccounts(ctx context.Context, sc *scim.Client) ([]connectors.Account, error) {
	var all []connectors.Account
	cursor := ""
	for {
		page, next, err := sc.ListAccounts(ctx, cursor, 200)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || len(page) == 0 {
			return all, nil
		}
		cursor = next
	}
}
