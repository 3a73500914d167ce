package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// hostileDeleteAfter is the leaver's grace period before the delete: long
// enough to read the disabled account at the peer in between.
const hostileDeleteAfter = 4 * time.Second

// hostileCase is one hostile SCIM server in front of the SCIMMY peer.
type hostileCase struct {
	name string
	sw   hostile.SCIMSwitches
	// faults must each have fired at least once during the flows.
	faults []string
	// noGroups: the server has no /Groups, so every group step must stop
	// in NeedsAttention naming ScimUnsupported and /Groups.
	noGroups bool
}

// TestHostileSCIMLifecycle runs joiner → mover (department change) →
// leaver (deprovision with remove_groups, then delete after a short grace
// period) through the real workflows on a real Temporal server, with the
// worker's SCIM connector behind a hostile proxy, one stack and proxy per
// case. The peer is read directly (never through the proxy): no step says
// done while the peer disagrees, the account is disabled before it is
// deleted, and group steps either work or stop naming the missing
// capability.
func TestHostileSCIMLifecycle(t *testing.T) {
	cases := []hostileCase{
		// Users carry no groups attribute, so memberships must come from
		// /Groups, and the members.value filter is refused there: the
		// connector has to list the groups (without the stripped
		// attribute the filter would never be needed and could not fire).
		{name: "reject members filter", sw: hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true},
			faults: []string{hostile.FaultRejectMembersFilter, hostile.FaultNoUserGroupsAttr}},
		{name: "no groups endpoint", sw: hostile.SCIMSwitches{NoGroups: true},
			faults: []string{hostile.FaultNoGroups}, noGroups: true},
		{name: "no user groups attribute", sw: hostile.SCIMSwitches{NoUserGroupsAttr: true},
			faults: []string{hostile.FaultNoUserGroupsAttr}},
		// Users never carry groups though /Schemas declares them, and the
		// members filter is refused: absent is not "none" (a leaver left
		// its groups in place and reported done this way).
		{name: "users omit declared groups", sw: hostile.SCIMSwitches{OmitUserGroups: true, RejectMembersFilter: true},
			faults: []string{hostile.FaultOmitUserGroups, hostile.FaultRejectMembersFilter}},
		{name: "patch 204", sw: hostile.SCIMSwitches{Patch204: true},
			faults: []string{hostile.FaultPatch204}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hostileLifecycle(t, tc)
		})
	}
}

// hostileRun is one person's view of the flows for the cross-checks.
type hostileRun struct {
	t      *testing.T
	s      *stack
	direct *scim.Client // the peer, not the proxy
	email  string
	id     string // the account's SCIM id at the peer
	dept   string // the department the account must be in now
	old    string // the department it must have left ("" none)
	// deleted: the delete step ran; the account must be absent.
	deleted bool
	// seeded: the account was put in a group directly at the peer.
	seeded bool
	tc     hostileCase
}

func hostileLifecycle(t *testing.T, tc hostileCase) {
	ctx := context.Background()
	s := newStack(t)
	s.policy.Leaver.Steps = append(s.policy.Leaver.Steps,
		policy.Step{DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: hostileDeleteAfter.String()}})
	px := hostile.StartSCIM(t, s.peer.Root(), tc.sw)
	sc, err := scim.New(ctx, scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL), Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	s.workerWith(t, map[string]any{"app": sc}, nil)

	names := map[string]string{} // action → step name
	for _, f := range []policy.Flow{s.policy.Joiner, s.policy.Mover, s.policy.Leaver} {
		for _, st := range f.Steps {
			names[policy.StepAction(st)] = policy.StepName(st)
		}
	}
	groupStep, deprovStep, deleteStep := names[policy.ActionManageRelationships], names[policy.ActionDeprovisionIdentity], names[policy.ActionDeleteIdentity]

	p := person(1)
	emp := p["employee_id"]
	r := &hostileRun{t: t, s: s, direct: s.scim(t), email: p["email"], dept: "eng", tc: tc}

	// Joiner.
	wf := hostileDeliver(t, s, hr.Event{EventID: emp + "-hire", Type: hr.Hire, Employee: p}, "joiner")
	rows := hostileSettle(t, s, wf)
	acct, err := r.direct.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: r.email})
	require.NoError(t, err, "the joiner created the account at the peer")
	r.id = acct.ID
	accts, _, err := r.direct.ListAccounts(ctx, "", 100)
	require.NoError(t, err)
	require.Len(t, accts, 1, "exactly one account")
	if tc.noGroups {
		r.needsGroups(wf, rows, groupStep)
		r.check(wf, rows) // what is done before the failed step holds
		hostileSkip(t, s, wf, groupStep)
		rows = hostileSettle(t, s, wf)
		assert.Equal(t, workflows.StepSkipped, hostileRow(t, rows, groupStep).State)
	}
	r.allFinished(wf, rows)
	r.check(wf, rows)
	s.mu.Lock()
	assert.Len(t, s.passwords, 1, "the portal logged in with the password the peer holds")
	s.mu.Unlock()

	// Mover: the department changes, so the groups do.
	wf = hostileDeliver(t, s, hr.Event{EventID: emp + "-chg", Type: hr.Change,
		Employee: map[string]string{"employee_id": emp, "department": "sales"}}, "mover")
	r.dept, r.old = "sales", "eng"
	rows = hostileSettle(t, s, wf)
	if tc.noGroups {
		r.needsGroups(wf, rows, groupStep)
		r.check(wf, rows)
		hostileSkip(t, s, wf, groupStep)
		rows = hostileSettle(t, s, wf)
		assert.Equal(t, workflows.StepSkipped, hostileRow(t, rows, groupStep).State)
	}
	r.allFinished(wf, rows)
	r.check(wf, rows)

	// An administrator put the account in a group at the peer, outside
	// jml: the leaver's remove_groups must take it away too, or (without
	// /Groups) say that it could not.
	legacy, err := r.direct.EnsureGroup(ctx, connectors.Group{Name: "legacy-admins"})
	require.NoError(t, err)
	require.NoError(t, r.direct.AddMember(ctx, legacy.ID, r.id))
	r.seeded = true

	// Leaver: deprovision (remove_groups), then the delete after the
	// grace period.
	wf = hostileDeliver(t, s, hr.Event{EventID: emp + "-term", Type: hr.Terminate,
		Employee: map[string]string{"employee_id": emp}}, "leaver")
	rows = hostileWait(t, s, wf, "the deprovision step to finish or fail", func(rows []workflows.StepInfo) bool {
		st := hostileRow(t, rows, deprovStep).State
		return st == workflows.StepDone || st == workflows.StepFailed
	})
	if tc.noGroups {
		row := hostileRow(t, rows, deprovStep)
		require.Equal(t, workflows.StepFailed, row.State, "the group removal cannot have worked: %+v", row)
		t.Logf("%s: %s needs attention: %s", wf, deprovStep, row.LastError)
		assert.Contains(t, row.LastError, "ScimUnsupported")
		assert.Contains(t, row.LastError, "/Groups")
		assert.Contains(t, row.LastError, "disabled", "the error says the account is disabled")
		assert.Equal(t, contract.StateNeedsAttention, hostileNeedsAttention(t, s, wf))
		got, err := r.direct.ReadAccount(ctx, r.id)
		require.NoError(t, err)
		assert.False(t, got.Active, "the account is disabled at the peer although the group removal failed")
		assert.Equal(t, []string{legacy.ID}, r.memberships(), "the membership the step could not remove is still at the peer")
		hostileSkip(t, s, wf, deprovStep)
		rows = hostileWait(t, s, wf, "the skipped deprovision", func(rows []workflows.StepInfo) bool {
			return hostileRow(t, rows, deprovStep).State == workflows.StepSkipped
		})
	}
	// Between the deprovision and the delete: the account is at the peer,
	// disabled, and (when the step says done) without groups.
	require.Equal(t, workflows.StepPending, hostileRow(t, rows, deleteStep).State, "the delete waits for its grace period")
	got, err := r.direct.ReadAccount(ctx, r.id)
	require.NoError(t, err, "the account is still at the peer before the delete")
	assert.False(t, got.Active, "deprovisioned: the account reads back disabled at the peer")
	r.check(wf, rows)
	require.Equal(t, workflows.StepPending, hostileRow(t, hostileRows(t, s, wf), deleteStep).State,
		"the peer was read before the delete ran (grace period %s too short?)", hostileDeleteAfter)

	rows = hostileSettle(t, s, wf)
	r.allFinished(wf, rows)
	assert.Equal(t, workflows.StepDone, hostileRow(t, rows, deleteStep).State)
	r.deleted = true
	r.check(wf, rows)
	_, err = r.direct.ReadAccount(ctx, r.id)
	assert.ErrorIs(t, err, connectors.ErrNotFound, "the account is gone from the peer")
	s.waitStatus(t, []string{emp}, contract.StatusDeprovisioned)

	for _, f := range tc.faults {
		assert.Positive(t, px.Faults(f), "fault %s fired", f)
	}
	t.Logf("%s: faults %v, requests through the proxy %d", tc.name, hostileFaults(px), px.Requests(""))
}

// needsGroups asserts the run stopped in NeedsAttention on the group step,
// naming the missing /Groups endpoint.
func (r *hostileRun) needsGroups(wf string, rows []workflows.StepInfo, step string) {
	t := r.t
	t.Helper()
	row := hostileRow(t, rows, step)
	require.Equal(t, workflows.StepFailed, row.State, "%s: %s without /Groups: %+v", wf, step, rows)
	t.Logf("%s: %s needs attention: %s", wf, step, row.LastError)
	assert.Contains(t, row.LastError, "ScimUnsupported", wf)
	assert.Contains(t, row.LastError, "/Groups", wf)
	assert.Equal(t, contract.StateNeedsAttention, hostileNeedsAttention(t, r.s, wf), wf)
}

// allFinished asserts no row failed and none is left pending or running.
func (r *hostileRun) allFinished(wf string, rows []workflows.StepInfo) {
	r.t.Helper()
	for _, row := range rows {
		assert.Contains(r.t, []string{workflows.StepDone, workflows.StepSkipped}, row.State,
			"%s: %s: %s (%s)", wf, row.Name, row.State, row.LastError)
	}
}

// check reads the peer directly for every row in state done and asserts
// what the step claims.
func (r *hostileRun) check(wf string, rows []workflows.StepInfo) {
	t := r.t
	t.Helper()
	ctx := context.Background()
	read := func() *connectors.Account {
		a, err := r.direct.ReadAccount(ctx, r.id)
		if r.deleted {
			assert.ErrorIs(t, err, connectors.ErrNotFound, "%s: deleted account at the peer", wf)
			return nil
		}
		require.NoError(t, err, "%s: account %s at the peer", wf, r.id)
		return a
	}
	for _, row := range rows {
		if row.State != workflows.StepDone {
			continue
		}
		what := fmt.Sprintf("%s: step %s says done (%s)", wf, row.Name, row.Note)
		switch row.Action {
		case policy.ActionSyncIdentity:
			if a := read(); a != nil && !strings.HasPrefix(wf, "leaver/") {
				assert.True(t, a.Active, "%s: the peer has the account disabled", what)
				assert.Equal(t, r.email, a.Attributes["user_name"], what)
				assert.Equal(t, r.dept, a.Attributes["department"], what)
			}
		case policy.ActionManageRelationships:
			if read() != nil && !strings.HasPrefix(wf, "leaver/") {
				want := []string{"everyone", "dept-" + r.dept}
				assert.ElementsMatch(t, r.groupIDs(want), r.memberships(), "%s: peer memberships, want %v", what, want)
			}
		case policy.ActionDeprovisionIdentity:
			if a := read(); a != nil {
				assert.False(t, a.Active, "%s: the peer has the account active", what)
				assert.Empty(t, r.memberships(), "%s: the peer still has memberships", what)
			}
		case policy.ActionDeleteIdentity:
			_, err := r.direct.ReadAccount(ctx, r.id)
			assert.ErrorIs(t, err, connectors.ErrNotFound, "%s: the peer still has the account", what)
		}
	}
	if r.tc.noGroups && !r.deleted && !r.seeded {
		// Nothing can have reached the peer's groups through the proxy.
		assert.Empty(t, r.memberships(), "%s: memberships without /Groups", wf)
	}
}

// memberships are the account's group IDs at the peer.
func (r *hostileRun) memberships() []string {
	r.t.Helper()
	gs, err := r.direct.Memberships(context.Background(), r.id)
	require.NoError(r.t, err)
	ids := []string{}
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}

// groupIDs are the peer's IDs of the named groups (each must exist).
func (r *hostileRun) groupIDs(names []string) []string {
	r.t.Helper()
	ids := []string{}
	for _, n := range names {
		g, err := r.direct.FindGroup(context.Background(), n)
		if errors.Is(err, connectors.ErrNotFound) {
			ids = append(ids, "(missing group "+n+")")
			continue
		}
		require.NoError(r.t, err)
		ids = append(ids, g.ID)
	}
	return ids
}

// hostileDeliver sends an HR event and returns the lifecycle run's ID.
func hostileDeliver(t *testing.T, s *stack, ev hr.Event, kind string) string {
	t.Helper()
	acc, err := deliver(context.Background(), s.c, ev)
	require.NoError(t, err)
	require.False(t, acc.Duplicate)
	want := contract.LifecycleWorkflowID(kind, ev.EmployeeID(), ev.EventID)
	if acc.WorkflowID != "" {
		require.Equal(t, want, acc.WorkflowID)
	}
	return want
}

func hostileRows(t *testing.T, s *stack, wf string) []workflows.StepInfo {
	t.Helper()
	v, err := s.c.QueryWorkflow(context.Background(), wf, "", contract.QuerySteps)
	require.NoError(t, err)
	var rows []workflows.StepInfo
	require.NoError(t, v.Get(&rows))
	return rows
}

func hostileRow(t *testing.T, rows []workflows.StepInfo, name string) workflows.StepInfo {
	t.Helper()
	i := slices.IndexFunc(rows, func(r workflows.StepInfo) bool { return r.Name == name })
	require.GreaterOrEqual(t, i, 0, "no step %s in %+v", name, rows)
	return rows[i]
}

// hostileWait polls the run's step table until cond holds.
func hostileWait(t *testing.T, s *stack, wf, what string, cond func([]workflows.StepInfo) bool) []workflows.StepInfo {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var rows []workflows.StepInfo
	var qerr error
	for time.Now().Before(deadline) {
		v, err := s.c.QueryWorkflow(context.Background(), wf, "", contract.QuerySteps)
		if qerr = err; err == nil {
			rows = nil
			if qerr = v.Get(&rows); qerr == nil && len(rows) > 0 && cond(rows) {
				return rows
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: waiting for %s: rows %+v (query error %v)", wf, what, rows, qerr)
	return nil
}

// hostileSettle waits until a step failed or every step finished.
func hostileSettle(t *testing.T, s *stack, wf string) []workflows.StepInfo {
	t.Helper()
	return hostileWait(t, s, wf, "a failed step or the end of the run", func(rows []workflows.StepInfo) bool {
		for _, r := range rows {
			switch r.State {
			case workflows.StepFailed:
				return true
			case workflows.StepDone, workflows.StepSkipped, workflows.StepSuperseded, workflows.StepAborted:
			default:
				return false
			}
		}
		return true
	})
}

// hostileNeedsAttention waits for the run's JmlState search attribute to
// say NeedsAttention and returns it.
func hostileNeedsAttention(t *testing.T, s *stack, wf string) string {
	t.Helper()
	var state string
	require.Eventually(t, func() bool {
		d, err := s.c.DescribeWorkflowExecution(context.Background(), wf, "")
		if err != nil {
			return false
		}
		p := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[contract.SAState]
		if p == nil {
			return false
		}
		state = strings.Trim(string(p.GetData()), `"`)
		return state == contract.StateNeedsAttention
	}, 10*time.Second, 100*time.Millisecond, "%s: state %q", wf, state)
	return state
}

// hostileSkip is the operator's SkipStep on the failed step.
func hostileSkip(t *testing.T, s *stack, wf, step string) {
	t.Helper()
	ctx := context.Background()
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: wf, UpdateName: contract.UpdateSkipStep,
		Args:         []any{workflows.StepRequest{Step: step, Reason: "target has no /Groups"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	// The update answers once the run took the decision: the step table
	// shows it at once.
	v, err := s.c.QueryWorkflow(ctx, wf, "", contract.QuerySteps)
	require.NoError(t, err)
	var rows []workflows.StepInfo
	require.NoError(t, v.Get(&rows))
	assert.Equal(t, workflows.StepSkipped, hostileRow(t, rows, step).State, "the step table when SkipStep answered")
}

func hostileFaults(px *hostile.SCIMProxy) map[string]int {
	out := map[string]int{}
	for _, k := range []string{hostile.FaultRejectMembersFilter, hostile.FaultNoGroups, hostile.FaultNoUserGroupsAttr,
		hostile.FaultPatch204, hostile.FaultMaxCount, hostile.FaultIgnoreExcluded, hostile.FaultOmitUserGroups} {
		if n := px.Faults(k); n > 0 {
			out[k] = n
		}
	}
	return out
}
