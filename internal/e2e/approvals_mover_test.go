package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// grantAll requests each group for Ada and has Grace approve each.
func (s *approvalStack) grantAll(t *testing.T, ids, groups []string) {
	t.Helper()
	for i, id := range ids {
		s.request(t, id, "group:"+groups[i]+"@app", "1h")
		s.waitRequest(t, id, func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
		s.decide(t, id, "grace@acme.test", true)
		s.waitRequest(t, id, func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
		require.True(t, s.memberOf(t, "E1", groups[i]))
	}
}

// move delivers Ada's move to sales under Alan and returns the mover's
// requests.review row once it is done.
func (s *approvalStack) move(t *testing.T, attrs map[string]string) workflows.StepInfo {
	t.Helper()
	attrs["employee_id"] = "E1"
	s.mustDeliver(t, hr.Event{EventID: "E1-move", Type: hr.Change, Employee: attrs})
	var row workflows.StepInfo
	require.Eventually(t, func() bool {
		v, err := s.c.QueryWorkflow(context.Background(), contract.LifecycleWorkflowID("mover", "E1", "E1-move"), "", contract.QuerySteps)
		if err != nil {
			return false
		}
		var steps []workflows.StepInfo
		require.NoError(t, v.Get(&steps))
		row = stepByName(steps, "requests.review")
		return row.State == workflows.StepDone || row.State == workflows.StepFailed
	}, time.Minute, 100*time.Millisecond)
	return row
}

// TestMoverReapprovesGrants: with the default approvals.on_move, Ada's
// move to another department under another manager asks the new manager
// again for each of her grants in force (the grants stay meanwhile): his
// link's approval keeps one, his denial revokes the other at SCIMMY. A
// request still waiting for approval is left to its approvers.
func TestMoverReapprovesGrants(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.startWorker(t)
	s.people(t, "prod-admin", "prod-db", "prod-ro")
	s.grantAll(t, []string{"keep", "lose"}, []string{"prod-admin", "prod-db"})
	s.request(t, "waiting", "group:prod-ro@app", "1h")
	s.waitRequest(t, "waiting", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })

	row := s.move(t, map[string]string{"department": "sales", "manager_id": "M2"})
	require.Equal(t, workflows.StepDone, row.State, row.LastError)
	assert.Equal(t, `2 access request(s) asked for approval again (moved: department "eng" → "sales", manager_id "M1" → "M2")`, row.Note)

	asks := s.waitMail(t, "alan@acme.test", "Approve again after a move", 2)
	assert.Empty(t, s.mails(t, "grace@acme.test", "Approve again"), "the old manager is not asked")
	assert.Contains(t, asks[0].Text, `department "eng" → "sales"`)
	for _, id := range []string{"keep", "lose"} {
		st := s.waitRequest(t, id, func(st workflows.RequestStatus) bool { return st.Review != "" })
		assert.Equal(t, contract.StateGranted, st.State, "the grant stays while the new manager decides")
		assert.Equal(t, 2, st.Round)
		require.Len(t, st.Asked, 1)
		assert.Equal(t, "alan@acme.test", st.Asked[0].Email)
	}
	assert.True(t, s.memberOf(t, "E1", "prod-admin"))
	assert.True(t, s.memberOf(t, "E1", "prod-db"))

	links := map[string]string{}
	for _, m := range asks {
		for _, g := range []string{"prod-admin", "prod-db"} {
			if subj := m.Header.Get("Subject"); strings.Contains(subj, g+" in app") {
				links[g] = link(t, m)
			}
		}
	}
	require.Len(t, links, 2)
	code, page := s.open(t, links["prod-admin"])
	require.Equal(t, http.StatusOK, code, page)
	assert.Contains(t, page, "Approve again after a move?")
	code, page = s.answer(t, tokenOf(t, links["prod-admin"]), "approve", "still on call")
	require.Equal(t, http.StatusOK, code, page)
	code, page = s.answer(t, tokenOf(t, links["prod-db"]), "deny", "not in sales")
	require.Equal(t, http.StatusOK, code, page)

	st := s.waitRequest(t, "lose", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeRevoked, st.Outcome)
	assert.Contains(t, st.Note, "after a move")
	assert.Contains(t, st.Note, "removed from prod-db (read back)")
	assert.False(t, s.memberOf(t, "E1", "prod-db"), "revoked at SCIMMY")

	st = s.waitRequest(t, "keep", func(st workflows.RequestStatus) bool { return st.Review == "" })
	assert.Equal(t, contract.StateGranted, st.State)
	last := st.Decisions[len(st.Decisions)-1]
	assert.Equal(t, "alan@acme.test", last.Approver)
	assert.True(t, last.Approve)
	assert.True(t, s.memberOf(t, "E1", "prod-admin"), "kept until its expiry")

	w := s.status(t, "waiting")
	assert.Equal(t, contract.StateWaiting, w.State)
	assert.Equal(t, 1, w.Round, "a request still waiting is not asked twice")
	writeHistory(t, s.c, "request/lose", "request-move-denied.json")
	writeHistory(t, s.c, contract.LifecycleWorkflowID("mover", "E1", "E1-move"), "mover-review-grants.json")
}

// TestMoverRevokesGrants: with approvals.on_move action revoke, a
// department change revokes every grant (read back at SCIMMY) and
// withdraws the waiting request before the mover's own steps; a change
// of a field the policy does not watch leaves the grants alone.
func TestMoverRevokesGrants(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.policy.Approvals.OnMove = policy.OnMove{Action: policy.OnMoveRevoke, Attributes: []string{"department"}}
	s.startWorker(t)
	s.people(t, "prod-admin", "prod-db")
	s.grantAll(t, []string{"a", "b"}, []string{"prod-admin", "prod-db"})
	s.request(t, "waiting", "group:prod-db@app", "2h")
	s.waitRequest(t, "waiting", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })

	s.mustDeliver(t, hr.Event{EventID: "E1-boss", Type: hr.Change, Employee: map[string]string{"employee_id": "E1", "manager_id": "M2"}})
	s.waitMoverDone(t, "E1-boss")
	assert.True(t, s.memberOf(t, "E1", "prod-admin"), "manager_id is not watched here: nothing revoked")
	assert.Equal(t, contract.StateGranted, s.status(t, "a").State)

	row := s.move(t, map[string]string{"department": "sales"})
	require.Equal(t, workflows.StepDone, row.State, row.LastError)
	assert.Equal(t, `3 access request(s) revoked (moved: department "eng" → "sales")`, row.Note)
	for _, id := range []string{"a", "b", "waiting"} {
		st := s.status(t, id)
		assert.Equal(t, contract.StateCompleted, st.State, "ended before the mover's step was done: %s", id)
		assert.Equal(t, workflows.OutcomeRevoked, st.Outcome, id)
		assert.Contains(t, st.Note, "moved: department", id)
	}
	assert.False(t, s.memberOf(t, "E1", "prod-admin"))
	assert.False(t, s.memberOf(t, "E1", "prod-db"))
}

func (s *approvalStack) waitMoverDone(t *testing.T, eventID string) {
	t.Helper()
	require.Eventually(t, func() bool {
		d, err := s.c.DescribeWorkflowExecution(context.Background(), contract.LifecycleWorkflowID("mover", "E1", eventID), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetCloseTime() != nil
	}, time.Minute, 100*time.Millisecond)
}
