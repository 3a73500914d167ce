package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/workflows"
)

// TestMoverSkipsRenamedGroup: dept-eng is renamed at the target
// ("Engineering Department") after a joiner granted it; a mover into eng
// then never adds to the renamed group. With create_missing the step
// creates dept-eng again and grants that; without, it stops in
// NeedsAttention with GroupNotFound and writes nothing. One worker runs
// both flows, so anything it remembered from the joiner is in play.
// Against SCIMMY and behind the strict proxy.
func TestMoverSkipsRenamedGroup(t *testing.T) {
	strict := hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 5, IgnoreExcludedAttributes: true}
	for _, tc := range []struct {
		name   string
		sw     *hostile.SCIMSwitches
		create bool
	}{
		{name: "scimmy/create_missing", create: true},
		{name: "scimmy"},
		{name: "strict/create_missing", sw: &strict, create: true},
		{name: "strict", sw: &strict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStack(t)
			s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2] // sync + groups (everyone, dept-{department})
			s.policy.Mover.Steps[1].ManageRelationships.CreateMissing = tc.create
			if tc.sw == nil {
				s.worker(t, nil)
			} else {
				px := hostile.StartSCIM(t, s.peer.Root(), *tc.sw)
				sc, err := scim.New(ctx, scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL), Auth: scim.Auth{BearerToken: s.peer.Token}})
				require.NoError(t, err)
				s.workerWith(t, map[string]any{"app": sc}, nil)
			}
			eng, qa := person(340), person(341)
			qa["department"] = "qa"
			s.mustDeliver(t, hr.Event{EventID: "eng-hire", Type: hr.Hire, Employee: eng})
			s.mustDeliver(t, hr.Event{EventID: "qa-hire", Type: hr.Hire, Employee: qa})
			s.waitStatus(t, []string{eng["employee_id"], qa["employee_id"]}, contract.StatusActive)
			engAcct, qaAcct := s.account(t, eng["email"]), s.account(t, qa["email"])
			require.Equal(t, []string{"dept-qa", "everyone"}, s.groupNames(t, qaAcct.ID))

			direct := s.scim(t)
			renamed, err := direct.FindGroup(ctx, "dept-eng")
			require.NoError(t, err)
			s.peer.RenameGroup(renamed.ID, "Engineering Department")

			change := map[string]string{"employee_id": qa["employee_id"], "department": "eng"}
			wf := s.mustDeliver(t, hr.Event{EventID: "qa-move", Type: hr.Change, Employee: change}).WorkflowID
			if tc.create {
				s.waitStatus(t, []string{qa["employee_id"]}, contract.StatusActive)
				assert.Equal(t, "1 added, 1 removed", s.steps(t, wf)["app.manage_relationships"].Note)
				assert.Equal(t, []string{"dept-eng", "everyone"}, s.groupNames(t, qaAcct.ID))
				again, err := direct.FindGroup(ctx, "dept-eng")
				require.NoError(t, err)
				assert.NotEqual(t, renamed.ID, again.ID, "dept-eng created again")
			} else {
				row := s.waitStep(t, wf, "app.manage_relationships", workflows.StepFailed)
				assert.Contains(t, row.LastError, "GroupNotFound")
				assert.Contains(t, row.LastError, `group "dept-eng" does not exist`)
				assert.Equal(t, []string{"dept-qa", "everyone"}, s.groupNames(t, qaAcct.ID), "nothing written")
			}
			members, _, err := direct.ListMembers(ctx, renamed.ID, "", 0)
			require.NoError(t, err)
			assert.Equal(t, []string{engAcct.ID}, members, "nothing written to Engineering Department")
		})
	}
}

// A department that changes only in case renders a group name the target
// resolves to the group the person is already in: the mover keeps it rather
// than removing it as the old name and skipping it as the new one.
func TestMoverKeepsGroupRenamedOnlyInCase(t *testing.T) {
	s := newStack(t)
	s.policy.Joiner.Steps = s.policy.Joiner.Steps[:2] // sync + groups (everyone, dept-{department})
	s.worker(t, nil)
	p := person(342)
	p["department"] = "sales"
	s.mustDeliver(t, hr.Event{EventID: "sales-hire", Type: hr.Hire, Employee: p})
	s.waitStatus(t, []string{p["employee_id"]}, contract.StatusActive)
	acct := s.account(t, p["email"])
	require.Equal(t, []string{"dept-sales", "everyone"}, s.groupNames(t, acct.ID))

	change := map[string]string{"employee_id": p["employee_id"], "department": "Sales"}
	wf := s.mustDeliver(t, hr.Event{EventID: "sales-case", Type: hr.Change, Employee: change}).WorkflowID
	row := s.waitStep(t, wf, "app.manage_relationships", workflows.StepDone)
	assert.Equal(t, "0 added, 0 removed", row.Note)
	assert.Equal(t, []string{"dept-sales", "everyone"}, s.groupNames(t, acct.ID))
}
