package e2e

// Proofs of the trustworthy lifecycle: linked accounts, adoption without
// password resets, no lost events, rehire during the grace period, vault
// wipe on cancel. Real Temporal (temporaltest), the real SCIM connector
// against the SCIMMY peer.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

func (s *stack) account(t *testing.T, userName string) *connectors.Account {
	t.Helper()
	a, err := s.scim(t).FindAccount(context.Background(), connectors.Key{Attribute: "user_name", Value: userName})
	require.NoError(t, err, userName)
	return a
}

// waitStep waits until the run's step table has step in state.
func (s *stack) waitStep(t *testing.T, workflowID, step, state string) workflows.StepInfo {
	t.Helper()
	var got workflows.StepInfo
	require.Eventually(t, func() bool {
		v, err := s.c.QueryWorkflow(context.Background(), workflowID, "", contract.QuerySteps)
		if err != nil {
			return false
		}
		var rows []workflows.StepInfo
		if v.Get(&rows) != nil {
			return false
		}
		for _, r := range rows {
			if r.Name == step && r.State == state {
				got = r
				return true
			}
		}
		return false
	}, time.Minute, 200*time.Millisecond, "%s: step %s never %s", workflowID, step, state)
	return got
}

func (s *stack) mustDeliver(t *testing.T, ev hr.Event) workflows.EventAccepted {
	t.Helper()
	acc, err := deliver(context.Background(), s.c, ev)
	require.NoError(t, err)
	require.False(t, acc.Duplicate, ev.EventID)
	return acc
}

func (s *stack) update(t *testing.T, workflowID, name string, arg any) {
	t.Helper()
	h, err := s.c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, h.Get(context.Background(), nil))
}

// janePolicy names accounts first.last, the second of a name first.last2.
func janePolicy(base string) *policy.Policy {
	attrs := map[string]string{
		"user_name":       "{first_name | LOWER}.{last_name | LOWER}",
		"employee_number": "{employee_id}",
		"department":      "{department}",
	}
	return &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim", BaseURL: base}},
		Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: attrs,
			Fallbacks: map[string][]string{"user_name": {"{first_name | LOWER}.{last_name | LOWER}{NEXT_NUMBER}"}}}}}},
		Mover:         policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: attrs}}}},
		Leaver:        policy.Flow{Steps: []policy.Step{{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app", RemoveGroups: true}}}},
		AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"app"}, PageSize: 100},
	}
}

// TestTwoJaneDoes: the second Jane Doe is jane.doe2; her mover and leaver
// act on jane.doe2, and attribute sync leaves both accounts alone.
func TestTwoJaneDoes(t *testing.T) {
	s := newStack(t)
	s.policy = janePolicy(s.peer.BaseURL)
	s.worker(t, nil)
	jane := func(id, dept string) map[string]string {
		return map[string]string{"employee_id": id, "first_name": "Jane", "last_name": "Doe", "department": dept}
	}
	s.mustDeliver(t, hr.Event{EventID: "a-hire", Type: hr.Hire, Employee: jane("JA", "eng")})
	s.waitStatus(t, []string{"JA"}, contract.StatusActive)
	s.mustDeliver(t, hr.Event{EventID: "b-hire", Type: hr.Hire, Employee: jane("JB", "eng")})
	s.waitStatus(t, []string{"JB"}, contract.StatusActive)
	a, b := s.account(t, "jane.doe"), s.account(t, "jane.doe2")
	assert.Equal(t, "JA", a.Attributes["employee_number"])
	assert.Equal(t, "JB", b.Attributes["employee_number"])

	mv := s.mustDeliver(t, hr.Event{EventID: "b-move", Type: hr.Change, Employee: map[string]string{"employee_id": "JB", "department": "sales"}})
	s.waitStatus(t, []string{"JB"}, contract.StatusActive)
	row := s.steps(t, mv.WorkflowID)["app.sync_identity"]
	assert.Equal(t, workflows.StepDone, row.State, row.LastError)
	assert.Contains(t, row.Note, activities.Linked)
	assert.Equal(t, "sales", s.account(t, "jane.doe2").Attributes["department"])
	assert.Equal(t, "eng", s.account(t, "jane.doe").Attributes["department"], "the other Jane untouched")

	// Ten attribute-sync cycles: nothing to write, nothing in conflict.
	s.peer.Reset()
	for i := range 10 {
		run, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: "attrsync-jane-" + string(rune('a'+i)), TaskQueue: contract.TaskQueue,
		}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
		require.NoError(t, err)
		var res workflows.AttributeSyncResult
		require.NoError(t, run.Get(context.Background(), &res))
		assert.Zero(t, res.AccountsChanged, "cycle %d", i)
		assert.Zero(t, res.Failures, "cycle %d: %+v", i, res.Problems)
		assert.Empty(t, res.Problems, "cycle %d", i)
		assert.Equal(t, 2, res.IdentitiesChecked, "cycle %d", i)
	}
	assert.Empty(t, s.peer.Writes(), "no writes at all in ten cycles")

	lv := s.mustDeliver(t, hr.Event{EventID: "b-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "JB"}})
	s.waitStatus(t, []string{"JB"}, contract.StatusDeprovisioned)
	assert.Equal(t, workflows.StepDone, s.steps(t, lv.WorkflowID)["app.deprovision_identity"].State)
	assert.False(t, s.account(t, "jane.doe2").Active, "the leaver disabled jane.doe2")
	assert.True(t, s.account(t, "jane.doe").Active, "and not the other Jane")
}

// TestImportedStaffAdopted: hires for people who already have accounts
// adopt them; the passwords they sign in with still work.
func TestImportedStaffAdopted(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2] // sync (password: generate) + groups
	s.worker(t, nil)
	ctx := context.Background()
	sc := s.scim(t)
	const n = 5
	known := map[string]string{} // account ID → sha256 of its password
	var emps []string
	for i := range n {
		p := person(100 + i)
		pw := secret.New("Existing-Pa55word-" + p["employee_id"])
		acct, err := sc.CreateAccount(ctx, connectors.Attributes{"user_name": p["email"], "given_name": p["first_name"]},
			connectors.CreateOptions{Password: &pw, Activate: true})
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(pw.Reveal()))
		known[acct.ID] = hex.EncodeToString(sum[:])
		emps = append(emps, p["employee_id"])
	}
	accs := map[string]string{}
	for i := range n {
		p := person(100 + i)
		accs[p["employee_id"]] = s.mustDeliver(t, hr.Event{EventID: p["employee_id"] + "-import", Type: hr.Hire, Employee: p}).WorkflowID
	}
	s.waitStatus(t, emps, contract.StatusActive)
	for _, wf := range accs {
		row := s.steps(t, wf)["app.sync_identity"]
		assert.Equal(t, workflows.StepDone, row.State, row.LastError)
		assert.Contains(t, row.Note, activities.Adopted+": "+activities.NoteAdopted)
	}
	accts, _, err := sc.ListAccounts(ctx, "", 100)
	require.NoError(t, err)
	assert.Len(t, accts, n, "no new accounts")
	for id, sum := range known {
		assert.Equal(t, sum, s.peer.PasswordSHA256(id), "the old password still authenticates")
	}
}

// TestTightenedPolicyWaitsForOperator: a terminate accepted under one
// policy, planned under a stricter one, waits in NeedsAttention; a retry
// with the missing attribute (starter retry --set) completes it.
func TestTightenedPolicyWaitsForOperator(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:1]
	s.policy.Joiner.Steps[0].SyncIdentity.Password = ""
	stop := s.worker(t, nil)
	p := person(200)
	emp := p["employee_id"]
	s.mustDeliver(t, hr.Event{EventID: "h", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{emp}, contract.StatusActive)

	// The policy now requires a termination reason; the worker restarts.
	stop()
	s.policy.RequiredAttributes = policy.RequiredAttributes{ByType: map[string][]string{hr.Terminate: {"termination_reason"}}}
	s.worker(t, nil)
	lv := s.mustDeliver(t, hr.Event{EventID: "t", Type: hr.Terminate, Employee: map[string]string{"employee_id": emp}})
	row := s.waitStep(t, lv.WorkflowID, "plan", workflows.StepFailed)
	assert.Contains(t, row.LastError, "termination_reason")
	assert.True(t, s.account(t, p["email"]).Active, "nothing ran")

	// A resend of the event is a duplicate, not a new event: it is still held.
	again, err := deliver(context.Background(), s.c, hr.Event{EventID: "t", Type: hr.Terminate, Employee: map[string]string{"employee_id": emp}})
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, lv.WorkflowID, again.WorkflowID)

	s.update(t, lv.WorkflowID, contract.UpdateRetryStep, workflows.RetryStepRequest{Step: "plan", Attributes: map[string]string{"termination_reason": "resigned"}})
	s.waitStatus(t, []string{emp}, contract.StatusDeprovisioned)
	assert.False(t, s.account(t, p["email"]).Active, "the leaver ran after the retry")
}

// TestResendWithOtherContentConflicts: the same event ID with different
// content is a conflict naming the run that holds the first.
func TestResendWithOtherContentConflicts(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:1]
	s.policy.Joiner.Steps[0].SyncIdentity.Password = ""
	s.worker(t, nil)
	p := person(300)
	first := s.mustDeliver(t, hr.Event{EventID: "x", Type: hr.Hire, Employee: p})
	p2 := map[string]string{"employee_id": p["employee_id"], "first_name": "Other", "email": p["email"], "department": "eng"}
	_, err := deliver(context.Background(), s.c, hr.Event{EventID: "x", Type: hr.Hire, Employee: p2})
	var conflict *intake.ConflictError
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, first.WorkflowID, conflict.WorkflowID, "names the run that holds the first")
	assert.Equal(t, "x", conflict.EventID)
}

// TestRehireDuringGracePeriod: a rehire 2 s into a 10-minute grace period
// cancels the pending delete and reactivates the same account at once.
func TestRehireDuringGracePeriod(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2]
	s.policy.Joiner.Steps[0].SyncIdentity.Password = ""
	s.policy.Leaver.Steps = append(s.policy.Leaver.Steps, policy.Step{DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: "10m"}})
	s.worker(t, nil)
	p := person(400)
	emp := p["employee_id"]
	s.mustDeliver(t, hr.Event{EventID: "h1", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{emp}, contract.StatusActive)
	id := s.account(t, p["email"]).ID

	lv := s.mustDeliver(t, hr.Event{EventID: "t1", Type: hr.Terminate, Employee: map[string]string{"employee_id": emp}})
	s.waitStep(t, lv.WorkflowID, "app.deprovision_identity", workflows.StepDone)
	assert.False(t, s.account(t, p["email"]).Active)
	time.Sleep(2 * time.Second) // into the grace period
	s.mustDeliver(t, hr.Event{EventID: "h2", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{emp}, contract.StatusActive)

	rows := s.steps(t, lv.WorkflowID)
	require.Len(t, rows, 3, "requests.revoke, deprovision, delete")
	assert.Equal(t, workflows.StepDone, rows["requests.revoke"].State)
	assert.Equal(t, workflows.StepSuperseded, rows["app.delete_identity"].State)
	acct := s.account(t, p["email"])
	assert.Equal(t, id, acct.ID, "the same account")
	assert.True(t, acct.Active, "reactivated")
	assert.Zero(t, s.peer.Writes()["DELETE"], "never deleted")
	accts, _, err := s.scim(t).ListAccounts(context.Background(), "", 100)
	require.NoError(t, err)
	assert.Len(t, accts, 1)
}

// TestCanceledRunWipesVault: a run canceled while a step that holds its
// password is in flight leaves nothing in the vault within 5 s; so does a
// terminated run, through the worker's janitor.
func TestCanceledRunWipesVault(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(c client.Client, id string) error
	}{
		{"cancel", func(c client.Client, id string) error { return c.CancelWorkflow(context.Background(), id, "") }},
		{"terminate", func(c client.Client, id string) error {
			return c.TerminateWorkflow(context.Background(), id, "", "operator")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			hang := make(chan struct{})
			portal := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(portal.Close)
			t.Cleanup(func() { close(hang) })
			s.policy.Joiner.Steps[2].SendRESTRequest.URL = portal.URL + "/accounts"
			s.vault = secret.NewVault(time.Hour)
			s.worker(t, portal.Client())
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			go activities.WipeClosedRuns(ctx, s.c, s.vault, s.log, time.Second)

			p := person(500)
			acc := s.mustDeliver(t, hr.Event{EventID: "h", Type: hr.Hire, Employee: p})
			s.waitStep(t, acc.WorkflowID, "portal.account", workflows.StepRunning)
			require.Equal(t, 1, s.vault.Len(), "the generated password is held")
			require.NoError(t, tc.stop(s.c, acc.WorkflowID))
			assert.Eventually(t, func() bool { return s.vault.Len() == 0 }, 5*time.Second, 100*time.Millisecond)
		})
	}
}

// TestAdoptionIsCareful: a hire does not take over (1) a disabled account
// no person owns — a former employee's, still in finance-admins — nor (2)
// the account of an employee ID that differs only in case (EE1 / ee1 are
// two people). Both wait for an operator with the account untouched.
func TestAdoptionIsCareful(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2] // sync + groups
	s.policy.Joiner.Steps[0].SyncIdentity.Attributes["employee_number"] = "{employee_id}"
	s.worker(t, nil)
	ctx := context.Background()
	sc := s.scim(t)

	former := person(300)
	old, err := sc.CreateAccount(ctx, connectors.Attributes{"user_name": former["email"], "given_name": "Former"},
		connectors.CreateOptions{Activate: false})
	require.NoError(t, err)
	admins, err := sc.EnsureGroup(ctx, connectors.Group{Name: "finance-admins"})
	require.NoError(t, err)
	require.NoError(t, sc.AddMember(ctx, admins.ID, old.ID))
	require.NoError(t, sc.Deprovision(ctx, old.ID, connectors.DeprovisionOptions{}))
	wf := s.mustDeliver(t, hr.Event{EventID: "former-hire", Type: hr.Hire, Employee: former}).WorkflowID
	row := s.waitStep(t, wf, "app.sync_identity", workflows.StepFailed)
	assert.Contains(t, row.LastError, "held by another person's account")
	got := s.account(t, former["email"])
	assert.False(t, got.Active, "not re-enabled")
	assert.Equal(t, "Former", got.Attributes["given_name"], "not rewritten")

	upper := person(301)
	upper["employee_id"] = "EE1"
	s.mustDeliver(t, hr.Event{EventID: "EE1-hire", Type: hr.Hire, Employee: upper})
	s.waitStatus(t, []string{"EE1"}, contract.StatusActive)
	lower := maps.Clone(upper)
	lower["employee_id"] = "ee1"
	wf = s.mustDeliver(t, hr.Event{EventID: "ee1-hire", Type: hr.Hire, Employee: lower}).WorkflowID
	row = s.waitStep(t, wf, "app.sync_identity", workflows.StepFailed)
	assert.Contains(t, row.LastError, "held by another person's account")
	assert.Equal(t, "EE1", s.account(t, upper["email"]).Attributes["employee_number"], "EE1's account stays EE1's")
}

// TestHandOffOfAdoptedAccountSendsNoEmptyPassword: the joiner adopts an
// existing account (its password kept), so the portal step has no password
// of this run to send: it waits for an operator instead of posting "".
func TestHandOffOfAdoptedAccountSendsNoEmptyPassword(t *testing.T) {
	s := newStack(t)
	s.worker(t, nil)
	ctx := context.Background()
	p := person(310)
	pw := secret.New("Existing-Pa55word-310")
	_, err := s.scim(t).CreateAccount(ctx, connectors.Attributes{"user_name": p["email"], "given_name": p["first_name"]},
		connectors.CreateOptions{Password: &pw, Activate: true})
	require.NoError(t, err)
	wf := s.mustDeliver(t, hr.Event{EventID: "adopt-hire", Type: hr.Hire, Employee: p}).WorkflowID
	row := s.waitStep(t, wf, "portal.account", workflows.StepFailed)
	assert.Contains(t, row.LastError, "NoPassword")
	assert.Contains(t, row.LastError, "keeps its own password")
	assert.Contains(t, s.steps(t, wf)["app.sync_identity"].Note, activities.NoteAdopted)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Empty(t, s.passwords, "nothing reached the portal")
	assert.Zero(t, s.rejected)
}

// TestGroupOfEmptyAttributeIsNotGranted: "dept-{department}" for a person
// without a department (or with the attribute misspelt in the policy)
// names no group: the step grants the others and says which it did not;
// no "dept-" group appears at the peer to collect everyone.
func TestGroupOfEmptyAttributeIsNotGranted(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2] // sync + groups (everyone, dept-{department})
	s.worker(t, nil)
	p := person(320)
	delete(p, "department")
	wf := s.mustDeliver(t, hr.Event{EventID: "nodept-hire", Type: hr.Hire, Employee: p}).WorkflowID
	s.waitStatus(t, []string{p["employee_id"]}, contract.StatusActive)
	row := s.steps(t, wf)["app.manage_relationships"]
	assert.Equal(t, workflows.StepDone, row.State)
	assert.Contains(t, row.Note, "1 added")
	assert.Contains(t, row.Note, "not granted, no value: dept-{department} (department empty)")
	_, err := s.scim(t).FindGroup(context.Background(), "dept-")
	assert.ErrorIs(t, err, connectors.ErrNotFound, "no group named from nothing")
}

// groupNames are the account's groups at the peer, by name.
func (s *stack) groupNames(t *testing.T, accountID string) []string {
	t.Helper()
	gs, err := s.scim(t).Memberships(context.Background(), accountID)
	require.NoError(t, err)
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	slices.Sort(out)
	return out
}

// TestMoverAfterAbortedMoverApplies: a department change stops (its new
// group is missing) and is aborted; HR sends the change again once the
// group exists. The second mover diffs from what was applied, not from
// HR's word the aborted run left behind, so the groups move. A mover also
// ensures every group it grants: one taken away by hand comes back with
// the next change.
func TestMoverAfterAbortedMoverApplies(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2]
	s.policy.Mover.Steps[1].ManageRelationships.CreateMissing = false
	s.worker(t, nil)
	ctx := context.Background()
	p := person(330)
	emp := p["employee_id"]
	s.mustDeliver(t, hr.Event{EventID: "h", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{emp}, contract.StatusActive)
	acct := s.account(t, p["email"])
	require.Equal(t, []string{"dept-eng", "everyone"}, s.groupNames(t, acct.ID))

	change := map[string]string{"employee_id": emp, "department": "qa"}
	wf := s.mustDeliver(t, hr.Event{EventID: "c1", Type: hr.Change, Employee: change}).WorkflowID
	s.waitStep(t, wf, "app.manage_relationships", workflows.StepFailed)
	require.NoError(t, s.operator(ctx, emp, contract.UpdateAbort, workflows.StepRequest{Reason: "dept-qa not set up yet"}))
	s.waitStatus(t, []string{emp}, contract.StatusActive)

	_, err := s.scim(t).EnsureGroup(ctx, connectors.Group{Name: "dept-qa"})
	require.NoError(t, err)
	wf = s.mustDeliver(t, hr.Event{EventID: "c2", Type: hr.Change, Employee: change}).WorkflowID
	s.waitStatus(t, []string{emp}, contract.StatusActive)
	assert.Equal(t, "1 added, 1 removed", s.steps(t, wf)["app.manage_relationships"].Note)
	assert.Equal(t, []string{"dept-qa", "everyone"}, s.groupNames(t, acct.ID))

	everyone, err := s.scim(t).FindGroup(ctx, "everyone")
	require.NoError(t, err)
	require.NoError(t, s.scim(t).RemoveMember(ctx, everyone.ID, acct.ID))
	wf = s.mustDeliver(t, hr.Event{EventID: "c3", Type: hr.Change, Employee: map[string]string{"employee_id": emp, "title": "lead"}}).WorkflowID
	s.waitStatus(t, []string{emp}, contract.StatusActive)
	assert.Equal(t, "1 added, 0 removed", s.steps(t, wf)["app.manage_relationships"].Note)
	assert.Equal(t, []string{"dept-qa", "everyone"}, s.groupNames(t, acct.ID))
}
