package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// count is a visibility query's count.
func (s *stack) count(t *testing.T, query string) int {
	t.Helper()
	resp, err := s.c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	require.NoError(t, err)
	return int(resp.GetCount())
}

// waitCounts waits until every visibility query counts its number.
func (s *stack) waitCounts(t *testing.T, want map[string]int) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for q, n := range want {
			assert.Equal(c, n, s.count(t, q), q)
		}
	}, 2*time.Minute, 300*time.Millisecond)
}

// operator sends an operator update to a person's current lifecycle run,
// the calls `starter retry|skip|abort|release EMPLOYEE_ID` make: ask the
// identity workflow for its running child, then update that child.
func (s *stack) operator(ctx context.Context, emp, update string, arg any) error {
	v, err := s.c.QueryWorkflow(ctx, contract.IdentityWorkflowID(emp), "", contract.QueryCurrent)
	if err != nil {
		return err
	}
	var cr workflows.CurrentRun
	if err := v.Get(&cr); err != nil {
		return err
	}
	if cr.WorkflowID == "" {
		return fmt.Errorf("employee %s has no running lifecycle workflow", emp)
	}
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: cr.WorkflowID, UpdateName: update, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, nil)
}

func (s *stack) steps(t *testing.T, workflowID string) map[string]workflows.StepInfo {
	t.Helper()
	v, err := s.c.QueryWorkflow(context.Background(), workflowID, "", contract.QuerySteps)
	require.NoError(t, err)
	var rows []workflows.StepInfo
	require.NoError(t, v.Get(&rows))
	out := map[string]workflows.StepInfo{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

func (s *stack) scim(t *testing.T) *scim.Client {
	t.Helper()
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	return sc
}

func deliverAll(t *testing.T, c client.Client, evs []hr.Event) {
	t.Helper()
	var wg sync.WaitGroup
	for _, ev := range evs {
		wg.Go(func() {
			_, err := deliver(context.Background(), c, ev)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}

// TestSafetyLimitHoldsBurstOfLeavers terminates 30 people at once with a
// limit of 25 destructive steps an hour: 25 are deprovisioned, 5 wait
// Blocked (found by visibility query) with their accounts untouched until
// an operator releases each.
func TestSafetyLimitHoldsBurstOfLeavers(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner = policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true,
		Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}"}}}}}
	s.policy.Safety.MaxDestructivePerHour = 25
	s.worker(t, nil)
	ctx := context.Background()
	const n = 30
	var emps []string
	var hires, terms []hr.Event
	for i := range n {
		p := person(i)
		emps = append(emps, p["employee_id"])
		hires = append(hires, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
		terms = append(terms, hr.Event{EventID: p["employee_id"] + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": p["employee_id"]}})
	}
	deliverAll(t, s.c, hires)
	s.waitStatus(t, emps, contract.StatusActive)

	deliverAll(t, s.c, terms)
	const blockedQ = `WorkflowType = 'Leaver' AND JmlState = 'Blocked'`
	s.waitCounts(t, map[string]int{
		blockedQ: 5,
		`WorkflowType = 'Leaver' AND JmlState = 'Completed'`:                                              25,
		`WorkflowType = 'Leaver' AND JmlState = 'Blocked' AND JmlFailedStep = 'app.deprovision_identity'`: 5,
	})
	sc := s.scim(t)
	accts, _, err := sc.ListAccounts(ctx, "", 500)
	require.NoError(t, err)
	active := 0
	for _, a := range accts {
		if a.Active {
			active++
		}
	}
	assert.Equal(t, 5, active, "blocked leavers changed nothing")

	resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: blockedQ})
	require.NoError(t, err)
	require.Len(t, resp.Executions, 5)
	for _, e := range resp.Executions {
		emp := strings.Split(e.Execution.WorkflowId, "/")[1]
		require.Equal(t, workflows.StepBlocked, s.steps(t, e.Execution.WorkflowId)["app.deprovision_identity"].State)
		require.NoError(t, s.operator(ctx, emp, contract.UpdateRelease, workflows.StepRequest{Reason: "confirmed with HR"}))
	}
	s.waitStatus(t, emps, contract.StatusDeprovisioned)
	accts, _, err = sc.ListAccounts(ctx, "", 500)
	require.NoError(t, err)
	require.Len(t, accts, n)
	for _, a := range accts {
		assert.False(t, a.Active)
	}
	assert.Zero(t, s.count(t, blockedQ))
}

// TestNeedsAttentionRetrySkipAbort fails step 3 of 5 for good on the SCIM
// peer (the role group does not exist there) for three joiners, then an
// operator retries one after creating the group, skips one and aborts one.
func TestNeedsAttentionRetrySkipAbort(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner = policy.Flow{Steps: []policy.Step{
		{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Password: "generate",
			Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}"}}},
		{Name: "app.groups", ManageRelationships: &policy.ManageRelationships{Target: "app", CreateMissing: true, Add: []string{"everyone"}}},
		{Name: "app.role", ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"role-{title}"}}},
		{Name: "portal.account", SendRESTRequest: &policy.RESTRequest{URL: s.portal.URL + "/accounts",
			Body: `{"id":"{ScimUser.id}","login":"{ScimUser.user_name}","password":"{ScimUser.password}"}`}},
		{Name: "ops.notify", Notify: &policy.RESTRequest{URL: s.portal.URL + "/notify", On: []string{"completed", "needs_attention"},
			Body: `{"kind":"{Run.kind}","run":"{Run.workflow_id}","step":"{Run.failed_step}"}`}},
	}}
	s.worker(t, nil)
	ctx := context.Background()
	emps := []string{"E001", "E002", "E003"}
	var hires []hr.Event
	for i := range emps {
		p := person(i + 1)
		p["title"] = "analyst"
		hires = append(hires, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
	}
	deliverAll(t, s.c, hires)
	s.waitCounts(t, map[string]int{`WorkflowType = 'Joiner' AND JmlState = 'NeedsAttention' AND JmlFailedStep = 'app.role'`: 3})
	joiner := func(emp string) string { return contract.LifecycleWorkflowID("joiner", emp, emp+"-hire") }
	row := s.steps(t, joiner("E001"))["app.role"]
	assert.Equal(t, workflows.StepFailed, row.State)
	assert.Contains(t, row.LastError, "GroupNotFound")

	err := s.operator(ctx, "E001", contract.UpdateRetryStep, workflows.RetryStepRequest{Step: "app.groups"})
	assert.ErrorContains(t, err, "is not the failed step")
	err = s.operator(ctx, "E001", contract.UpdateRelease, workflows.StepRequest{})
	assert.ErrorContains(t, err, "nothing blocked")

	// The operator fixes the target, then acts.
	sc := s.scim(t)
	role, err := sc.EnsureGroup(ctx, connectors.Group{Name: "role-analyst"})
	require.NoError(t, err)
	require.NoError(t, s.operator(ctx, "E001", contract.UpdateRetryStep, workflows.RetryStepRequest{Step: "app.role"}))
	require.NoError(t, s.operator(ctx, "E002", contract.UpdateSkipStep, workflows.StepRequest{Step: "app.role"}))
	require.NoError(t, s.operator(ctx, "E003", contract.UpdateAbort, workflows.StepRequest{Step: "app.role", Reason: "hire withdrawn"}))
	s.waitStatus(t, emps[:2], contract.StatusActive)
	s.waitStatus(t, emps[2:], "")
	s.waitCounts(t, map[string]int{
		`WorkflowType = 'Joiner' AND JmlState = 'Completed'`:          1,
		`WorkflowType = 'Joiner' AND JmlState = 'CompletedWithSkips'`: 1, // E002: app.role skipped
		`WorkflowType = 'Joiner' AND JmlState = 'Aborted'`:            1,
		`WorkflowType = 'Joiner' AND JmlState = 'NeedsAttention'`:     0,
	})

	want := map[string]map[string]string{
		"E001": {"app.role": workflows.StepDone, "portal.account": workflows.StepDone, "ops.notify": workflows.StepDone},
		"E002": {"app.role": workflows.StepSkipped, "portal.account": workflows.StepDone, "ops.notify": workflows.StepDone},
		"E003": {"app.role": workflows.StepAborted, "portal.account": workflows.StepPending, "ops.notify": workflows.StepPending},
	}
	for emp, rows := range want {
		got := s.steps(t, joiner(emp))
		require.Len(t, got, 5)
		for name, state := range rows {
			assert.Equal(t, state, got[name].State, "%s %s", emp, name)
		}
	}
	for i, emp := range emps {
		acct, err := sc.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: person(i + 1)["email"]})
		require.NoError(t, err, emp)
		gs, err := sc.Memberships(ctx, acct.ID)
		require.NoError(t, err)
		var ids []string
		for _, g := range gs {
			ids = append(ids, g.ID)
		}
		assert.Equal(t, emp == "E001", slices.Contains(ids, role.ID), "%s in the role group", emp)
	}

	s.mu.Lock()
	pws, rejected, notices := append([]string(nil), s.passwords...), s.rejected, strings.Join(s.notices, "\n")
	s.mu.Unlock()
	assert.Len(t, pws, 2, "the retried and the skipped joiner sent a password that logs in")
	assert.Zero(t, rejected)
	assert.Equal(t, 3, strings.Count(notices, `"kind":"needs_attention"`))
	assert.Equal(t, 3, strings.Count(notices, `"step":"app.role"`))
	assert.Equal(t, 2, strings.Count(notices, `"kind":"completed"`))
	s.assertNoSecrets(t, pws)
}

// TestResetPasswordNeverInHistory runs RESET_PASSWORD and a later Send REST
// Request that posts the temporary password over HTTPS; the portal logs
// in with it. The password is then looked for in every history, every
// description and the logs. (No real peer implements RESET_PASSWORD: the
// Okta stand-ins lack expire_password, so the in-memory target serves;
// the point here is history hygiene.)
func TestResetPasswordNeverInHistory(t *testing.T) {
	s := newStack(t)
	mt := memtarget.New()
	s.check = func(_, login, pw string) bool { return mt.CheckPassword(login, pw) }
	s.policy.Joiner = policy.Flow{Steps: []policy.Step{
		{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: map[string]string{"user_name": "{email}"}}},
		{ResetPassword: &policy.ResetPassword{Target: "app"}},
		{Name: "portal.account", SendRESTRequest: &policy.RESTRequest{URL: s.portal.URL + "/accounts",
			Body: `{"id":"{ScimUser.id}","login":"{ScimUser.user_name}","password":"{ScimUser.password}"}`}},
	}}
	s.workerWith(t, map[string]any{"app": mt}, nil)
	const n = 5
	var emps []string
	var hires []hr.Event
	for i := range n {
		p := person(i)
		emps = append(emps, p["employee_id"])
		hires = append(hires, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
	}
	deliverAll(t, s.c, hires)
	s.waitStatus(t, emps, contract.StatusActive)

	s.mu.Lock()
	pws, rejected := append([]string(nil), s.passwords...), s.rejected
	s.mu.Unlock()
	require.Len(t, pws, n, "every temporary password logs in")
	assert.Zero(t, rejected)
	for _, pw := range pws {
		assert.True(t, strings.HasPrefix(pw, "Tmp-"), "the reset password, not a generated one")
	}
	assert.Equal(t, n, countOf(mt.Calls(), "reset_password"))
	s.assertNoSecrets(t, pws)
}

func countOf(xs []string, x string) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// TestTerminationSupersedesWaitingRun: a joiner waits for an operator (its
// role group does not exist) when the person's termination arrives. The
// termination does not queue behind it: the joiner gives way (aborted by
// jml, reason recorded) and the leaver disables the account it made.
func TestTerminationSupersedesWaitingRun(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner = policy.Flow{Steps: []policy.Step{
		{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true,
			Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}"}}},
		{Name: "app.role", ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"role-{title}"}}},
	}}
	s.worker(t, nil)
	ctx := context.Background()
	p := person(1)
	p["title"] = "analyst"
	emp := p["employee_id"]
	_, err := deliver(ctx, s.c, hr.Event{EventID: emp + "-hire", Type: hr.Hire, Employee: p})
	require.NoError(t, err)
	joinerID := contract.LifecycleWorkflowID("joiner", emp, emp+"-hire")
	s.waitCounts(t, map[string]int{`WorkflowType = 'Joiner' AND JmlState = 'NeedsAttention'`: 1})
	acct, err := s.scim(t).FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: p["email"]})
	require.NoError(t, err)
	require.True(t, acct.Active, "the joiner made the account before it stopped")

	_, err = deliver(ctx, s.c, hr.Event{EventID: emp + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": emp}})
	require.NoError(t, err)
	s.waitStatus(t, []string{emp}, contract.StatusDeprovisioned)

	rows := s.steps(t, joinerID)
	assert.Equal(t, workflows.StepAborted, rows["app.role"].State)
	require.NotNil(t, rows["app.role"].Decision)
	assert.Equal(t, "jml", rows["app.role"].Decision.Operator)
	assert.Contains(t, rows["app.role"].Decision.Reason, "superseded")
	acct, err = s.scim(t).ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.False(t, acct.Active, "the leaver ran: the account reads back disabled")
	assert.Zero(t, s.count(t, `WorkflowType = 'Joiner' AND JmlState = 'NeedsAttention'`))
}
