package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// The flows added after the hostile lifecycle test (access requests,
// password sync, the audit trail), each proven with the worker reaching
// SCIMMY only through a hostile.Strict proxy, and the peer read directly
// (never through the proxy) for what the flows claim.

// strictClient puts a strict hostile proxy in front of the stack's peer
// and returns a SCIM client that reaches the peer only through it. Its
// page size (500) is above the proxy's cap (100), so paging by what the
// provider returned is exercised too.
func strictClient(t *testing.T, s *stack) (*hostile.SCIMProxy, *scim.Client) {
	t.Helper()
	px := hostile.StartSCIM(t, s.peer.Root(), hostile.Strict())
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL),
		Auth: scim.Auth{BearerToken: s.peer.Token}, PageSize: 500})
	require.NoError(t, err)
	return px, sc
}

// assertFired asserts each fault kind changed at least one answer.
func assertFired(t *testing.T, px *hostile.SCIMProxy, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		assert.Positive(t, px.Faults(k), "fault %s fired", k)
	}
	t.Logf("faults %v, %d requests through the proxy", hostileFaults(px), px.Requests(""))
}

// after is the proxy's log from index from on.
func after(px *hostile.SCIMProxy, from int) []string {
	return px.Log()[from:]
}

// readsAfter asserts that log has the write (a prefix such as
// "PATCH /scim/v2/Groups/ID") and, after it, each of reads (prefixes):
// the write was read back through the proxy.
func readsAfter(t *testing.T, log []string, write string, reads ...string) {
	t.Helper()
	i := slices.IndexFunc(log, func(l string) bool { return strings.HasPrefix(l, write) })
	require.GreaterOrEqual(t, i, 0, "no %q through the proxy in %q", write, log)
	for _, r := range reads {
		assert.True(t, slices.ContainsFunc(log[i+1:], func(l string) bool { return strings.HasPrefix(l, r) }),
			"no %q through the proxy after %q: %q", r, write, log[i:])
	}
}

// hostileRequestStack is the approval stack (real Temporal, SCIMMY, SMTP,
// the intake) with an audit store, whose worker reaches SCIMMY through a
// strict proxy; direct reads SCIMMY.
func hostileRequestStack(t *testing.T) (s *approvalStack, px *hostile.SCIMProxy, direct *scim.Client, store *auditdb.Store) {
	t.Helper()
	s = newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	store, err := auditdb.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	s.audit = store
	direct = s.scim
	px, s.scim = strictClient(t, s.stack)
	return s, px, direct, store
}

// memberAtPeer reads at SCIMMY, not through the proxy, whether the
// account is in the group.
func memberAtPeer(t *testing.T, direct *scim.Client, acct, gid string) bool {
	t.Helper()
	gs, err := direct.Memberships(context.Background(), acct)
	require.NoError(t, err)
	return slices.ContainsFunc(gs, func(g connectors.Group) bool { return g.ID == gid })
}

// grantParts are E1's account and the group's ID at SCIMMY.
func grantParts(t *testing.T, s *approvalStack, direct *scim.Client, group string) (acct, gid string) {
	t.Helper()
	rec, err := activities.TemporalDirectory{Client: s.c}.Identity(context.Background(), "E1")
	require.NoError(t, err)
	g, err := direct.FindGroup(context.Background(), group)
	require.NoError(t, err)
	require.NotEmpty(t, rec.Accounts["app"])
	return rec.Accounts["app"], g.ID
}

// grantedStopped approves the request, waits for it to be granted and its
// mail sent, and stops the worker: with no worker, the expiry's revoke
// cannot run while the test reads the peer.
func grantedStopped(t *testing.T, s *approvalStack, id string, stop func()) workflows.RequestStatus {
	t.Helper()
	s.waitRequest(t, id, func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
	s.decide(t, id, "grace@acme.test", true)
	st := s.waitRequest(t, id, func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
	s.waitMail(t, "ada@acme.test", "granted until", 1)
	stop()
	// The run leaves Granted (its search attribute) before the revoke:
	// still Granted with no worker, nothing can revoke until one starts.
	d, err := s.c.DescribeWorkflowExecution(context.Background(), contract.RequestWorkflowID(id), "")
	require.NoError(t, err)
	p := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[contract.SAState]
	require.NotNil(t, p)
	require.Equal(t, contract.StateGranted, strings.Trim(string(p.GetData()), `"`),
		"the expiry passed before the worker stopped: the grant's duration is too short for this machine")
	return st
}

// requestRecords are the audit records of request id, as "action
// verified".
func requestRecords(t *testing.T, store *auditdb.Store, id string) []string {
	t.Helper()
	recs, err := store.Records(context.Background(), auditdb.Filter{EmployeeID: "E1"})
	require.NoError(t, err)
	var out []string
	for _, r := range recs {
		if r.WorkflowID == contract.RequestWorkflowID(id) {
			out = append(out, fmt.Sprintf("%s %v", r.Action, r.Verified))
		}
	}
	return out
}

// TestHostileAccessRequest: request → approve → grant → expiry → revoke
// with the worker behind the strict proxy. The grant and the revoke are
// each read back through the proxy after their write (its request log
// says so) and hold at SCIMMY; the audit trail has both, verified.
func TestHostileAccessRequest(t *testing.T) {
	s, px, direct, store := hostileRequestStack(t)
	stop := s.startWorker(t)
	s.people(t, "prod-admin")
	acct, gid := grantParts(t, s, direct, "prod-admin")

	s.request(t, "h1", "group:prod-admin@app", "10s")
	mark := len(px.Log())
	st := grantedStopped(t, s, "h1", stop)
	assert.Equal(t, workflows.OutcomeGranted, st.Outcome)
	assert.Equal(t, "added to prod-admin (read back)", st.Note)
	assert.True(t, memberAtPeer(t, direct, acct, gid), "granted: a member at SCIMMY")
	// The grant's read-back went through the proxy: the user (which
	// carries no groups here) and then the groups, listed (the members
	// filter is refused), after the PATCH.
	readsAfter(t, after(px, mark), "PATCH /scim/v2/Groups/"+gid, "GET /scim/v2/Users/"+acct, "GET /scim/v2/Groups?")

	mark = len(px.Log())
	s.startWorker(t)
	st = s.waitRequest(t, "h1", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
	assert.Equal(t, "removed from prod-admin (read back)", st.Note)
	assert.False(t, memberAtPeer(t, direct, acct, gid), "revoked at SCIMMY")
	readsAfter(t, after(px, mark), "PATCH /scim/v2/Groups/"+gid, "GET /scim/v2/Users/"+acct, "GET /scim/v2/Groups?")

	assert.Equal(t, []string{"approval.approved true", "group.added true", "group.removed true"}, requestRecords(t, store, "h1"))
	assertFired(t, px, hostile.FaultRejectMembersFilter, hostile.FaultOmitUserGroups, hostile.FaultPatch204, hostile.FaultIgnoreExcluded, hostile.FaultMaxCount)
}

// TestHostileAccessRequestDroppedWrites: the target answers the
// membership PATCH 204 and does not apply it. A grant it dropped is never
// reported granted: the request ends failed, naming the read-back, with
// no group.added in the audit trail. A revoke it dropped is retried (the
// grant stays reported in force, the attempts show) until the target
// takes it, then read back. A target without /Groups fails the grant
// naming the endpoint.
func TestHostileAccessRequestDroppedWrites(t *testing.T) {
	s, px, direct, store := hostileRequestStack(t)
	stop := s.startWorker(t)
	s.people(t, "prod-admin", "prod-db")
	acct, admin := grantParts(t, s, direct, "prod-admin")
	_, db := grantParts(t, s, direct, "prod-db")
	drop := hostile.Strict()
	drop.DropWrites = true

	t.Run("grant dropped", func(t *testing.T) {
		s.request(t, "d1", "group:prod-admin@app", "1h")
		s.waitRequest(t, "d1", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
		px.Set(drop)
		dropped := px.Faults(hostile.FaultDropWrites)
		s.decide(t, "d1", "grace@acme.test", true)
		st := s.waitRequest(t, "d1", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
		px.Set(hostile.Strict())
		assert.Greater(t, px.Faults(hostile.FaultDropWrites), dropped, "the proxy dropped the membership write")
		assert.Equal(t, workflows.OutcomeFailed, st.Outcome, "never granted: %+v", st)
		t.Logf("d1: %s: %s", st.Outcome, st.Note)
		assert.Contains(t, st.Note, "read back missing group "+admin)
		assert.True(t, st.GrantedAt.IsZero() && st.Until.IsZero(), "no grant in force: %+v", st)
		assert.False(t, memberAtPeer(t, direct, acct, admin))
		assert.NotEmpty(t, s.mails(t, "ada@acme.test", "failed"), "the person is told it failed")
		assert.Equal(t, []string{"approval.approved true"}, requestRecords(t, store, "d1"), "no group.added")
	})

	t.Run("no /Groups", func(t *testing.T) {
		// A server without /Groups answers 404 with an HTML page.
		s.request(t, "d3", "group:prod-admin@app", "1h")
		s.waitRequest(t, "d3", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
		sw := hostile.Strict()
		sw.NoGroups = true
		px.Set(sw)
		s.decide(t, "d3", "grace@acme.test", true)
		st := s.waitRequest(t, "d3", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
		px.Set(hostile.Strict())
		assert.Positive(t, px.Faults(hostile.FaultNoGroups))
		assert.Equal(t, workflows.OutcomeFailed, st.Outcome, "never granted: %+v", st)
		t.Logf("d3: %s: %s", st.Outcome, st.Note)
		assert.Contains(t, st.Note, "/Groups")
		assert.False(t, memberAtPeer(t, direct, acct, admin))
		assert.Equal(t, []string{"approval.approved true"}, requestRecords(t, store, "d3"), "no group.added")
	})

	t.Run("revoke dropped", func(t *testing.T) {
		s.request(t, "d2", "group:prod-db@app", "10s")
		grantedStopped(t, s, "d2", stop)
		require.True(t, memberAtPeer(t, direct, acct, db))
		px.Set(drop)
		dropped := px.Faults(hostile.FaultDropWrites)
		stop = s.startWorker(t)
		// The expiry passed: the revoke runs, the target drops it, the
		// read-back finds the member: retried, not given up.
		var pending string
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "the revoke is not retried: %s", pending)
			d, err := s.c.DescribeWorkflowExecution(context.Background(), contract.RequestWorkflowID("d2"), "")
			require.NoError(t, err)
			require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus(),
				"the request's run ended with the grant in place (last: %s)", pending)
			i := slices.IndexFunc(d.GetPendingActivities(), func(a *workflowpb.PendingActivityInfo) bool { return a.GetActivityId() == "revoke" })
			if i < 0 {
				continue
			}
			a := d.GetPendingActivities()[i]
			pending = fmt.Sprintf("attempt %d: %s", a.GetAttempt(), a.GetLastFailure().GetMessage())
			if a.GetAttempt() >= 3 {
				break
			}
		}
		t.Logf("d2 revoke: %s", pending)
		assert.Contains(t, pending, "still in group "+db)
		assert.Greater(t, px.Faults(hostile.FaultDropWrites), dropped, "the proxy dropped the removal")
		st := s.status(t, "d2")
		assert.Equal(t, contract.StateRunning, st.State, "the grant has not ended")
		assert.Equal(t, workflows.OutcomeGranted, st.Outcome)
		assert.True(t, memberAtPeer(t, direct, acct, db), "the target kept the member")

		px.Set(hostile.Strict())
		st = s.waitRequest(t, "d2", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
		assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
		assert.Equal(t, "removed from prod-db (read back)", st.Note)
		assert.False(t, memberAtPeer(t, direct, acct, db))
		assert.Equal(t, []string{"approval.approved true", "group.added true", "group.removed true"}, requestRecords(t, store, "d2"))
	})
}

// TestHostileAuditTrail: joiners and leavers through the strict proxy
// with an audit store. Every record that says verified is checked at
// SCIMMY; a deprovision the target answers 204 without applying leaves
// the account active, and its record says so: no verified
// account.disabled, a step.failed naming the read-back, and the leavers
// report lists the account still active.
func TestHostileAuditTrail(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	store, err := auditdb.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	s.audit = store
	px, sc := strictClient(t, s)
	s.workerWith(t, map[string]any{"app": sc}, nil)
	direct := s.scim(t)
	start := time.Now()

	emps := []string{"E001", "E002"}
	for i := range 2 {
		s.hire(t, person(i+1))
	}
	s.waitStatus(t, emps, contract.StatusActive)
	accts := map[string]string{}
	for _, e := range emps {
		rec, err := activities.TemporalDirectory{Client: s.c}.Identity(ctx, e)
		require.NoError(t, err)
		accts[e] = rec.Accounts["app"]
	}

	// E001 leaves through the strict proxy; E002's deprovision is
	// answered and dropped.
	_, err = deliver(ctx, s.c, hr.Event{EventID: "E001-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "E001"}})
	require.NoError(t, err)
	s.waitStatus(t, emps[:1], contract.StatusDeprovisioned)
	drop := hostile.Strict()
	drop.DropWrites = true
	px.Set(drop)
	wf := hostileDeliver(t, s, hr.Event{EventID: "E002-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "E002"}}, "leaver")
	rows := hostileSettle(t, s, wf)
	row := hostileRow(t, rows, "app.deprovision_identity")
	require.Equal(t, workflows.StepFailed, row.State, "%+v", rows)
	assert.Contains(t, row.LastError, "expected disabled")
	assert.Equal(t, contract.StateNeedsAttention, hostileNeedsAttention(t, s, wf))
	assert.Positive(t, px.Faults(hostile.FaultDropWrites), "the proxy dropped the deprovision")
	got, err := direct.ReadAccount(ctx, accts["E002"])
	require.NoError(t, err)
	require.True(t, got.Active, "the account is still active at SCIMMY")

	var recs []audit.Record
	require.Eventually(t, func() bool {
		recs, err = store.Records(ctx, auditdb.Filter{EmployeeID: "E002", Actions: []string{audit.StepFailed}})
		return err == nil && len(recs) == 1
	}, time.Minute, 100*time.Millisecond, "the failure's record lands")
	assert.Contains(t, recs[0].Detail, "expected disabled")
	assert.False(t, recs[0].Verified)

	// Every record that says the target read back in the intended state
	// is checked at SCIMMY.
	all, err := store.Records(ctx, auditdb.Filter{})
	require.NoError(t, err)
	checked := map[string]int{}
	for _, r := range all {
		if !r.Verified || r.Target != "app" {
			continue
		}
		what := fmt.Sprintf("%s %s %s (%s)", r.EmployeeID, r.Kind, r.Action, r.Detail)
		if !slices.Contains([]string{audit.AccountCreated, audit.AccountDisabled, audit.GroupAdded}, r.Action) {
			continue
		}
		assert.Equal(t, accts[r.EmployeeID], r.AccountID, what)
		a, err := direct.ReadAccount(ctx, r.AccountID)
		require.NoError(t, err, what)
		switch r.Action {
		case audit.AccountCreated:
			assert.Equal(t, person(slices.Index(emps, r.EmployeeID) + 1)["email"], a.Attributes["user_name"], what)
		case audit.AccountDisabled:
			assert.False(t, a.Active, what)
			assert.Equal(t, "E001", r.EmployeeID, "only E001 was disabled: %s", what)
		case audit.GroupAdded:
			g, err := direct.FindGroup(ctx, r.Group)
			require.NoError(t, err, what)
			// E001's groups went with its deprovision (remove_groups).
			assert.Equal(t, r.EmployeeID == "E002", memberAtPeer(t, direct, r.AccountID, g.ID), what)
		}
		checked[r.Action]++
	}
	assert.Equal(t, map[string]int{audit.AccountCreated: 2, audit.GroupAdded: 4, audit.AccountDisabled: 1}, checked)

	rep := audit.Leavers(all, start.Add(-time.Minute), time.Hour, time.Now())
	require.Len(t, rep.Terminations, 2)
	require.Len(t, rep.StillActive, 1, "%+v", rep)
	assert.Equal(t, "E002", rep.StillActive[0].EmployeeID)
	assert.Equal(t, 1, rep.Done)
	assertFired(t, px, hostile.FaultRejectMembersFilter, hostile.FaultOmitUserGroups, hostile.FaultPatch204, hostile.FaultMaxCount)
}

// pwWorker starts a worker (as workerWith) and returns its vault and host
// queue, which a password change needs.
func (s *stack) pwWorker(t *testing.T, targets map[string]any) (*secret.Vault, string) {
	t.Helper()
	c := s.ts.NewClientWithOptions(client.Options{Logger: logging.Temporal(s.log)})
	vault := secret.NewVault(time.Hour)
	host := contract.HostTaskQueue(fmt.Sprintf("e2e-pw-%d", time.Now().UnixNano()))
	a := activities.New(activities.Config{
		Policy: s.policy, Targets: targets, Vault: vault, HostQueue: host, HostTimeout: 5 * time.Second,
		HTTPClient: s.portal.Client(), Client: c, Logger: s.log, Directory: activities.TemporalDirectory{Client: c},
		StepTimeout: 10 * time.Second, SessionHeartbeat: 2 * time.Second,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true, WorkflowPanicPolicy: worker.FailWorkflow})
	workflows.Register(w, a)
	require.NoError(t, w.Start())
	hw := worker.New(c, host, worker.Options{})
	hw.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	require.NoError(t, hw.Start())
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { hw.Stop(); w.Stop(); c.Close() }) })
	return vault, host
}

// TestHostilePasswordSync: a password change through the strict proxy
// reads the account (the disabled check) through it before the PATCH,
// and the new password is the one SCIMMY holds. A target that answers the
// password PATCH 204 without applying it cannot be caught: a password is
// never read back, so jml reports the account changed — "changed" means
// the target accepted the write of an account read back active
// (docs/password-sync.md); the user's next login is what finds it.
func TestHostilePasswordSync(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	// A second SCIMMY (wiki) behind its own strict proxy; the joiner
	// creates the person's account there too.
	wiki := &stack{peer: scimtest.Start(t)}
	s.policy.Targets["wiki"] = policy.Target{Type: "scim", BaseURL: wiki.peer.BaseURL}
	s.policy.Joiner.Steps = append(s.policy.Joiner.Steps, policy.Step{SyncIdentity: &policy.SyncIdentity{Target: "wiki",
		CreateAllowed: true, Attributes: map[string]string{"user_name": "{email}"}}})
	s.policy.PasswordSyncGroups = []policy.PasswordSyncGroup{{Name: "corp", Auth: "app", Members: []string{"wiki"},
		Rules: policy.PasswordRules{MinLength: 12, RequireLower: true, RequireUpper: true, RequireDigit: true}}}
	px, sc := strictClient(t, s)
	wpx, wsc := strictClient(t, wiki)
	vault, host := s.pwWorker(t, map[string]any{"app": sc, "wiki": wsc})
	s.hire(t, person(1))
	s.waitStatus(t, []string{"E001"}, contract.StatusActive)
	rec, err := activities.TemporalDirectory{Client: s.c}.Identity(ctx, "E001")
	require.NoError(t, err)
	peers := []struct {
		target string
		peer   *scimtest.Peer
		px     *hostile.SCIMProxy
	}{{"app", s.peer, px}, {"wiki", wiki.peer, wpx}}
	sum := func(pw string) string { h := sha256.Sum256([]byte(pw)); return hex.EncodeToString(h[:]) }

	change := func(pw string) workflows.PasswordSyncResult {
		t.Helper()
		run, err := workflows.StartPasswordSync(ctx, s.c, vault, host, activities.PasswordSyncRequest{Group: "corp", EmployeeID: "E001"}, secret.New(pw))
		require.NoError(t, err)
		var res workflows.PasswordSyncResult
		require.NoError(t, run.Get(ctx, &res))
		return res
	}

	const first, second = "Correct-Horse-42", "Battery-Staple-43"
	var marks []int
	for _, p := range peers {
		marks = append(marks, len(p.px.Log()))
	}
	res := change(first)
	require.Equal(t, workflows.PasswordChanged, res.State, "%+v", res)
	require.Len(t, res.Targets, 2)
	for i, p := range peers {
		acct := rec.Accounts[p.target]
		require.NotEmpty(t, acct, p.target)
		assert.Equal(t, workflows.PasswordOutcome{Target: p.target, AccountID: acct, Auth: i == 0, Outcome: workflows.AccountChanged}, res.Targets[i])
		assert.Equal(t, sum(first), p.peer.PasswordSHA256(acct), "%s holds the new password", p.target)
		log := after(p.px, marks[i])
		read := slices.IndexFunc(log, func(l string) bool { return strings.HasPrefix(l, "GET /scim/v2/Users/"+acct) })
		write := slices.IndexFunc(log, func(l string) bool { return strings.HasPrefix(l, "PATCH /scim/v2/Users/"+acct) })
		require.GreaterOrEqual(t, read, 0, "%s: the disabled check read the account through the proxy: %q", p.target, log)
		assert.Less(t, read, write, "%s: read before the write: %q", p.target, log)
		assertFired(t, p.px, hostile.FaultPatch204)
	}

	// The auth target acknowledges the new password and drops it.
	drop := hostile.Strict()
	drop.DropWrites = true
	px.Set(drop)
	dropped := px.Faults(hostile.FaultDropWrites)
	res = change(second)
	assert.Equal(t, dropped+1, px.Faults(hostile.FaultDropWrites), "the proxy dropped the password write")
	assert.Equal(t, sum(first), s.peer.PasswordSHA256(rec.Accounts["app"]), "app still holds the old password")
	assert.Equal(t, sum(second), wiki.peer.PasswordSHA256(rec.Accounts["wiki"]), "wiki took the new one")
	// What jml can know: each target answered the write of an account
	// read back active with success. A dropped password is not
	// detectable by reading back.
	assert.Equal(t, workflows.PasswordChanged, res.State, "%+v", res)
	s.assertNoSecrets(t, []string{first, second})
}
