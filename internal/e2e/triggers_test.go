package e2e

import (
	"context"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/simulate"
	"github.com/jml-dev/jml/workflows"
)

// strictSCIM is a SCIM server as strict as the strictest seen: no members
// filter, no groups on the User, PATCH answered 204, small pages.
var strictSCIM = hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 5, IgnoreExcludedAttributes: true}

// workerFor starts the stack's worker against SCIMMY, or behind the strict
// proxy when sw is set.
func (s *stack) workerFor(t *testing.T, sw *hostile.SCIMSwitches) {
	t.Helper()
	if sw == nil {
		s.worker(t, nil)
		return
	}
	px := hostile.StartSCIM(t, s.peer.Root(), *sw)
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL), Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	s.workerWith(t, map[string]any{"app": sc}, nil)
}

func (s *stack) noticeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.notices)
}

// TestDepartmentTrigger: a mover step with when: changed(department) runs
// once for a department change and never for a title-only change (before,
// a department condition ran again on every later change, and
// changed(department) was no condition at all).
func TestDepartmentTrigger(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2]
	s.policy.Mover.Steps = append(s.policy.Mover.Steps, policy.Step{Name: "tell.new-manager", When: "changed(department)",
		SendRESTRequest: &policy.RESTRequest{URL: s.portal.URL + "/notify", Body: `{"moved":"{employee_id}","to":"{department}"}`}})
	s.worker(t, nil)
	p := person(500)
	emp := p["employee_id"]
	s.mustDeliver(t, hr.Event{EventID: "hire", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{emp}, contract.StatusActive)

	move := func(id string, attrs map[string]string) map[string]workflows.StepInfo {
		attrs["employee_id"] = emp
		wf := s.mustDeliver(t, hr.Event{EventID: id, Type: hr.Change, Employee: attrs}).WorkflowID
		s.waitStatus(t, []string{emp}, contract.StatusActive)
		return s.steps(t, wf)
	}
	rows := move("title-1", map[string]string{"title": "Lead"})
	assert.Equal(t, workflows.StepSkipped, rows["tell.new-manager"].State)
	assert.Equal(t, "condition is false: changed(department)", rows["tell.new-manager"].Note)
	assert.Zero(t, s.noticeCount(), "a title change runs no department-triggered step")

	rows = move("dept-1", map[string]string{"department": "sales"})
	assert.Equal(t, workflows.StepDone, rows["tell.new-manager"].State)
	assert.Equal(t, 1, s.noticeCount())

	rows = move("title-2", map[string]string{"title": "Head of Sales"})
	assert.Equal(t, workflows.StepSkipped, rows["tell.new-manager"].State)
	move("same-dept", map[string]string{"department": "sales", "title": "VP"})
	s.mu.Lock()
	assert.Equal(t, []string{`{"moved":"E500","to":"sales"}`}, s.notices, "the department change ran it once")
	s.mu.Unlock()
	assert.Equal(t, []string{"dept-sales", "everyone"}, s.groupNames(t, s.account(t, p["email"]).ID))
}

// TestGrantsFollowCondition: a contractor who becomes an employee loses the
// group only the contractor step granted, keeps the birthright groups and
// a group another rule (the eng step) still grants; read back at the
// target, against SCIMMY and the strict server.
func TestGrantsFollowCondition(t *testing.T) {
	for _, tc := range []struct {
		name string
		sw   *hostile.SCIMSwitches
	}{{name: "scimmy"}, {name: "strict", sw: &strictSCIM}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			s.policy.Joiner.Steps = append(s.policy.Joiner.Steps[:2],
				policy.Step{Name: "contractor.groups", When: `employee_type eq "contractor"`,
					ManageRelationships: &policy.ManageRelationships{Target: "app", CreateMissing: true, Add: []string{"contractors", "vpn"}}},
				policy.Step{Name: "eng.vpn", When: `department eq "eng"`,
					ManageRelationships: &policy.ManageRelationships{Target: "app", CreateMissing: true, Add: []string{"vpn"}}})
			s.workerFor(t, tc.sw)
			eng, sales := person(510), person(511)
			sales["department"] = "sales"
			for _, p := range []map[string]string{eng, sales} {
				p["employee_type"] = "contractor"
				s.mustDeliver(t, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
			}
			s.waitStatus(t, []string{eng["employee_id"], sales["employee_id"]}, contract.StatusActive)
			engAcct, salesAcct := s.account(t, eng["email"]), s.account(t, sales["email"])
			require.Equal(t, []string{"contractors", "dept-eng", "everyone", "vpn"}, s.groupNames(t, engAcct.ID))
			require.Equal(t, []string{"contractors", "dept-sales", "everyone", "vpn"}, s.groupNames(t, salesAcct.ID))

			var wfs []string
			for _, p := range []map[string]string{eng, sales} {
				ch := map[string]string{"employee_id": p["employee_id"], "employee_type": "employee"}
				wfs = append(wfs, s.mustDeliver(t, hr.Event{EventID: p["employee_id"] + "-perm", Type: hr.Change, Employee: ch}).WorkflowID)
			}
			s.waitStatus(t, []string{eng["employee_id"], sales["employee_id"]}, contract.StatusActive)
			assert.Equal(t, []string{"dept-eng", "everyone", "vpn"}, s.groupNames(t, engAcct.ID), "vpn: the eng step still grants it")
			assert.Equal(t, []string{"dept-sales", "everyone"}, s.groupNames(t, salesAcct.ID))
			engRow, salesRow := s.steps(t, wfs[0])["app.revoke"], s.steps(t, wfs[1])["app.revoke"]
			assert.Equal(t, workflows.StepDone, engRow.State)
			assert.Equal(t, "taken back, their condition no longer holds: contractors; 0 added, 1 removed", engRow.Note)
			assert.Equal(t, "taken back, their condition no longer holds: contractors, vpn; 0 added, 2 removed", salesRow.Note)

			// A change that turns no condition false has no revoke step.
			wf := s.mustDeliver(t, hr.Event{EventID: "title", Type: hr.Change,
				Employee: map[string]string{"employee_id": eng["employee_id"], "title": "Lead"}}).WorkflowID
			s.waitStatus(t, []string{eng["employee_id"]}, contract.StatusActive)
			assert.NotContains(t, s.steps(t, wf), "app.revoke")
			assert.Equal(t, []string{"dept-eng", "everyone", "vpn"}, s.groupNames(t, engAcct.ID))
		})
	}
}

// TestScopedJoinerFlows: two scoped joiner flows (contractors, employees)
// and the joiner flow for everyone else, for 200 mixed people (1,000 with JML_SCOPED_PEOPLE): the
// population dry run counts each flow's people, and the runs (real
// Temporal, SCIMMY) create each account by its flow, read back at the
// target.
func TestScopedJoinerFlows(t *testing.T) {
	// 200 keeps the e2e package inside CI's budget; the 1,000:
	// JML_SCOPED_PEOPLE=1000.
	n := 200
	if v, err := strconv.Atoi(os.Getenv("JML_SCOPED_PEOPLE")); err == nil && v > 0 {
		n = v
	}
	s := newStack(t)
	flowStep := func(flow string) []policy.Step {
		return []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true,
			Attributes: map[string]string{"user_name": "{email}", "title": flow}}}}
	}
	s.policy.ScopedFlows = []policy.Flow{
		{Name: "contractors", Kind: policy.KindJoiner, Scope: `employee_type eq "contractor"`, Steps: flowStep("contractors")},
		{Name: "employees", Kind: policy.KindJoiner, Scope: `employee_type eq "employee"`, Steps: flowStep("employees")},
	}
	s.policy.Joiner = policy.Flow{Steps: flowStep("joiner")}
	s.worker(t, nil)
	kinds := []string{"employee", "contractor", "intern", "employee"}
	flowOf := map[string]string{"employee": "employees", "contractor": "contractors", "intern": "joiner"}
	people := make([]map[string]string, n)
	want := map[string]int{}
	for i := range n {
		p := person(1000 + i)
		p["employee_type"] = kinds[i%len(kinds)]
		people[i] = p
		want[flowOf[p["employee_type"]]]++
	}

	var rows iter.Seq[simulate.Row] = func(yield func(simulate.Row) bool) {
		for i, p := range people {
			ev := hr.Event{EventID: p["employee_id"], Type: hr.Hire, Employee: p, EffectiveAt: time.Now()}
			if !yield(simulate.Row{Line: i + 2, Event: ev}) {
				return
			}
		}
	}
	rep, err := simulate.Run(t.Context(), rows, simulate.Options{Policy: s.policy})
	require.NoError(t, err)
	assert.Equal(t, want, rep.Flows, "the dry run")

	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, p := range people {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := deliver(context.Background(), s.c, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	// Counted by visibility: asking 1,000 identities on every poll would
	// load the server more than the runs do.
	done := `WorkflowType = 'Joiner' AND JmlState = 'Completed'`
	require.Eventually(t, func() bool { return s.count(t, done) == n }, 10*time.Minute, 2*time.Second,
		"joiners completed: %d of %d; waiting on an operator: %d", s.count(t, done), n, s.count(t, `JmlState = 'NeedsAttention'`))

	got := map[string]int{}
	wrong := 0
	sc := s.scim(t)
	byUser := map[string]string{}
	for cursor := ""; ; {
		accts, next, err := sc.ListAccounts(context.Background(), cursor, 200)
		require.NoError(t, err)
		for _, a := range accts {
			byUser[strings.ToLower(a.Attributes["user_name"])] = a.Attributes["title"]
		}
		if cursor = next; next == "" {
			break
		}
	}
	for _, p := range people {
		flow := byUser[strings.ToLower(p["email"])]
		got[flow]++
		if flow != flowOf[p["employee_type"]] {
			wrong++
		}
	}
	assert.Equal(t, want, got, "the runs, read back at the target")
	assert.Zero(t, wrong, fmt.Sprintf("people whose account another flow made (of %d)", n))
}
