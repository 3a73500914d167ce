package workflows_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// reconcilePolicy grants everyone all-staff and their department's group
// (dept-*), keeps attributes in sync, and lists vpn as managed too.
func reconcilePolicy(target policy.Target, uid string, rec policy.Reconcile) *policy.Policy {
	attrs := map[string]string{uid: "{username}", "email": "{email}"}
	if target.Type == "okta" {
		attrs = map[string]string{"login": "{username}", "email": "{email}", "first_name": "{first}", "last_name": "{last}"}
	}
	return &policy.Policy{
		Targets: map[string]policy.Target{"app": target},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: attrs}},
			{ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"all-staff", "dept-{department | LOWER}"}}},
			{When: `department eq "D9"`, ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"vpn"}}},
		}},
		AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"app"}, PageSize: 200},
		Reconcile:     rec,
	}
}

// person i of the reconciliation population: department D0…D4.
func reconPerson(i int, domain string) activities.IdentityRecord {
	return activities.IdentityRecord{
		EmployeeID: fmt.Sprintf("E%05d", i),
		Status:     contract.StatusActive,
		Attributes: map[string]string{
			"username": fmt.Sprintf("u%05d%s", i, domain), "email": fmt.Sprintf("u%05d@example.com", i),
			"first": "Ada", "last": fmt.Sprintf("L%d", i), "department": fmt.Sprintf("D%d", i%5),
		},
	}
}

// scimTarget is the SCIM target of the reconciliation tests (the
// connector is handed to the activities; the policy needs its type).
var scimTarget = policy.Target{Type: "scim", BaseURL: "http://127.0.0.1/scim/v2", TokenEnv: "SCIM_TOKEN"}

type reconStack struct {
	c    client.Client
	peer *scimtest.Peer
	px   *hostile.SCIMProxy // nil: the worker talks to the peer directly
	ids  scimtest.Loaded
	runs int
	// audit is the worker's audit store.
	audit *memAudit
}

// newReconStack loads the SCIM peer with users, groups and the directory
// dir (nil: the identity workflows, as in production), and starts a worker
// with the real activities and SCIM connector (through a hostile proxy
// with those switches, when given).
func newReconStack(t testing.TB, pol *policy.Policy, users []scimtest.LoadUser, groups []scimtest.LoadGroup, dir activities.Directory, sw ...hostile.SCIMSwitches) *reconStack {
	t.Helper()
	s := &reconStack{peer: scimtest.Start(t), audit: &memAudit{keys: map[string]bool{}}}
	s.ids = s.peer.Load(users, groups)
	base := s.peer.BaseURL
	if len(sw) > 0 {
		s.px = hostile.StartSCIM(t, s.peer.Root(), sw[0])
		base = s.px.Rewrite(base)
	}
	conn, err := scim.New(context.Background(), scim.Config{BaseURL: base, Auth: scim.Auth{BearerToken: s.peer.Token}, PageSize: 200})
	require.NoError(t, err)
	ts := temporalServer(t)
	s.c = ts.GetDefaultClient()
	// A blocked run sets JmlState, as the worker's start-up check allows.
	require.NoError(t, temporalenv.CheckSearchAttributes(context.Background(), s.c.OperatorService(), ts.GetDefaultNamespace(), nil))
	if dir == nil {
		dir = activities.TemporalDirectory{Client: s.c}
	}
	acts := activities.New(activities.Config{
		Policy:                pol,
		Targets:               map[string]any{"app": conn},
		Directory:             dir,
		Client:                s.c,
		AllowInsecureLoopback: true, // notify steps to an httptest portal
		Audit:                 s.audit,
	})
	w := worker.New(s.c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return s
}

func (s *reconStack) start(t testing.TB) client.WorkflowRun {
	t.Helper()
	s.runs++
	s.peer.Reset()
	run, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("%s-recon-%d", contract.AttributeSyncScheduleID, s.runs), TaskQueue: contract.TaskQueue,
	}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
	require.NoError(t, err)
	return run
}

func (s *reconStack) cycle(t testing.TB) workflows.AttributeSyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var res workflows.AttributeSyncResult
	require.NoError(t, s.start(t).Get(ctx, &res))
	return res
}

// members reads a group's member user names back from the peer.
func (s *reconStack) members(t *testing.T, conn *scim.Client, group string) []string {
	t.Helper()
	ids, _, err := conn.ListMembers(context.Background(), s.ids.Groups[group], "", 0)
	require.NoError(t, err)
	byID := map[string]string{}
	for name, id := range s.ids.Users {
		byID[id] = name
	}
	var out []string
	for _, id := range ids {
		out = append(out, byID[id])
	}
	slices.Sort(out)
	return out
}

// inSync is n people, all in all-staff and their department's group.
func inSync(n int) ([]scimtest.LoadUser, map[string][]string, activities.StaticDirectory) {
	var users []scimtest.LoadUser
	groups := map[string][]string{"all-staff": nil, "vpn": nil}
	var dir activities.StaticDirectory
	for i := 1; i <= n; i++ {
		p := reconPerson(i, "")
		dir = append(dir, p)
		users = append(users, scimtest.LoadUser{UserName: p.Attributes["username"], Email: p.Attributes["email"], Active: true})
		groups["all-staff"] = append(groups["all-staff"], p.Attributes["username"])
		d := "dept-d" + fmt.Sprint(i%5)
		groups[d] = append(groups[d], p.Attributes["username"])
	}
	return users, groups, dir
}

func loadGroups(m map[string][]string) []scimtest.LoadGroup {
	var out []scimtest.LoadGroup
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, scimtest.LoadGroup{DisplayName: name, Members: m[name]})
	}
	return out
}

// TestReconcileAgainstSCIM: 1,000 people in sync, then planted drift — 10
// managed memberships removed, 5 unmanaged groups added to people, 7
// orphan accounts, 3 terminated people's accounts left active, 2 accounts
// matching two people. One cycle adds exactly the 10 memberships, disables
// the 3 leftovers, reports 7 orphans and 2 disputed accounts and touches no
// unmanaged group; the next cycle writes nothing.
func TestReconcileAgainstSCIM(t *testing.T) {
	const n = 1000
	users, groups, dir := inSync(n)
	// Drift: 10 people lose a managed membership (5 all-staff, 5 dept).
	var fromAll, fromDept []string
	for i := 0; i < 5; i++ {
		fromAll = append(fromAll, groups["all-staff"][i*97])
		fromDept = append(fromDept, groups["dept-d3"][i*13])
	}
	groups["all-staff"] = slices.DeleteFunc(groups["all-staff"], func(u string) bool { return slices.Contains(fromAll, u) })
	groups["dept-d3"] = slices.DeleteFunc(groups["dept-d3"], func(u string) bool { return slices.Contains(fromDept, u) })
	// 5 unmanaged groups, one member each.
	for i := 1; i <= 5; i++ {
		groups[fmt.Sprintf("proj-%d", i)] = []string{users[i*100].UserName}
	}
	// 7 orphans, one of them in an unmanaged group and one in a managed one
	// (an orphan's groups are not reconciled), plus a protected break-glass.
	for i := 1; i <= 7; i++ {
		users = append(users, scimtest.LoadUser{UserName: fmt.Sprintf("orphan%d", i), Active: true})
	}
	users = append(users, scimtest.LoadUser{UserName: "breakglass", Active: true})
	groups["proj-1"] = append(groups["proj-1"], "orphan1")
	groups["dept-d0"] = append(groups["dept-d0"], "orphan2", "breakglass")
	// 3 terminated people whose accounts are still active (and in groups).
	for i := n + 1; i <= n+3; i++ {
		p := reconPerson(i, "")
		p.Status = contract.StatusDeprovisioned
		dir = append(dir, p)
		users = append(users, scimtest.LoadUser{UserName: p.Attributes["username"], Email: p.Attributes["email"], Active: true})
		groups["all-staff"] = append(groups["all-staff"], p.Attributes["username"])
	}
	// A terminated person whose account is disabled: as it should be.
	gone := reconPerson(n+4, "")
	gone.Status = contract.StatusDeprovisioned
	dir = append(dir, gone)
	users = append(users, scimtest.LoadUser{UserName: gone.Attributes["username"], Email: gone.Attributes["email"], Active: false})
	// 2 accounts matching two people: two HR records rendering one user
	// name, and two records linked to one account.
	for i, name := range []string{"twin1", "twin2"} {
		users = append(users, scimtest.LoadUser{UserName: name, Email: name + "@example.com", Active: true})
		for j := 0; j < 2; j++ {
			p := reconPerson(n+10+2*i+j, "")
			p.Attributes["username"], p.Attributes["email"] = name, name+"@example.com"
			dir = append(dir, p)
		}
	}
	rec := policy.Reconcile{Leftovers: policy.ReconcileDisable,
		Targets: map[string]policy.ReconcileTarget{"app": {NeverTouch: []string{"BreakGlass"}}}}
	s := newReconStack(t, reconcilePolicy(scimTarget, "user_name", rec), users, loadGroups(groups), dir)
	// The second twin pair is linked, both to twin2's account.
	twin2 := s.ids.Users["twin2"]
	dir[len(dir)-1].Accounts = map[string]string{"app": twin2}
	dir[len(dir)-2].Accounts = map[string]string{"app": twin2}
	conn, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	projBefore := map[string][]string{}
	for i := 1; i <= 5; i++ {
		projBefore[fmt.Sprint("proj-", i)] = s.members(t, conn, fmt.Sprint("proj-", i))
	}

	res := s.cycle(t)
	r := res.Reconcile["app"]
	t.Logf("cycle 1: %+v; peer requests %d", r.Counts, s.peer.Requests())
	assert.Empty(t, r.Problems)
	assert.Equal(t, map[string]int{"PATCH": 13}, s.peer.Writes(), "10 adds and 3 disables, nothing else")
	assert.Equal(t, 10, r.Counts.MissingFound)
	assert.Equal(t, 10, r.Counts.Added)
	assert.Zero(t, r.Counts.ExtraFound)
	assert.Zero(t, r.Counts.Removed)
	assert.Equal(t, 7, r.Counts.Orphans)
	assert.Equal(t, 3, r.Counts.Leftovers)
	assert.Equal(t, 3, r.Counts.LeftoversDisabled)
	assert.Equal(t, 2, r.Counts.Disputed)
	assert.Equal(t, 1, r.Counts.Protected)
	assert.Equal(t, 1, r.Counts.Deprovisioned)
	assert.Equal(t, n, r.Counts.Linked)
	assert.Zero(t, r.Counts.Blocked)
	situations := map[string][]string{}
	for _, a := range r.Accounts {
		situations[a.Situation+"/"+a.Action] = append(situations[a.Situation+"/"+a.Action], a.Identifier)
	}
	assert.ElementsMatch(t, []string{"orphan1", "orphan2", "orphan3", "orphan4", "orphan5", "orphan6", "orphan7"}, situations["orphan/reported"])
	assert.ElementsMatch(t, []string{"u01001", "u01002", "u01003"}, situations["leftover/disabled"])
	assert.ElementsMatch(t, []string{"twin1", "twin2"}, situations["disputed/reported"])
	for _, a := range r.Accounts {
		if a.Situation == activities.SituationDisputed {
			assert.Len(t, a.EmployeeIDs, 2)
		}
	}

	// Unmanaged groups untouched; orphans and the protected account keep
	// their groups; the dropped memberships are back.
	for g, want := range projBefore {
		assert.Equal(t, want, s.members(t, conn, g), g)
	}
	assert.Contains(t, s.members(t, conn, "dept-d0"), "orphan2")
	assert.Contains(t, s.members(t, conn, "dept-d0"), "breakglass")
	assert.Len(t, s.members(t, conn, "all-staff"), n+3, "everyone, and the leftovers still (their groups are the leaver's business)")
	assert.Len(t, s.members(t, conn, "dept-d3"), n/5)
	for _, name := range []string{"u01001", "u01002", "u01003"} {
		acct, err := conn.FindAccount(context.Background(), connectors.Key{Attribute: "user_name", Value: name})
		require.NoError(t, err)
		assert.False(t, acct.Active, name)
	}

	// Second cycle: nothing to write; the report stands.
	res = s.cycle(t)
	r = res.Reconcile["app"]
	assert.Empty(t, s.peer.Writes())
	assert.Zero(t, r.Counts.Writes)
	assert.Equal(t, 7, r.Counts.Orphans)
	assert.Equal(t, 2, r.Counts.Disputed)
	assert.Zero(t, r.Counts.Leftovers)
	assert.Equal(t, 4, r.Counts.Deprovisioned)
	t.Logf("cycle 2: %+v; peer requests %d", r.Counts, s.peer.Requests())

	// Manual sync of one person fixes their groups with one membership
	// read: someone took E00005 out of all-staff by hand.
	require.NoError(t, conn.RemoveMember(context.Background(), s.ids.Groups["all-staff"], s.ids.Users["u00005"]))
	s.peer.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mr, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.ManualSyncWorkflowID("E00005", time.Now()), TaskQueue: contract.TaskQueue},
		contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{EmployeeIDs: []string{"E00005"}})
	require.NoError(t, err)
	require.NoError(t, mr.Get(ctx, &res))
	assert.Equal(t, 1, res.Reconcile["app"].Counts.Added)
	assert.Equal(t, map[string]int{"PATCH": 1}, s.peer.Writes())
	assert.LessOrEqual(t, s.peer.Requests(), 6, "lookups (the missing group's by name, never from a cache), one membership read, no paging")
	assert.Contains(t, s.members(t, conn, "all-staff"), "u00005")

	// A policy change reaches existing people: D9 people are due vpn.
	dir[0].Attributes["department"] = "D9"
	res = s.cycle(t)
	r = res.Reconcile["app"]
	assert.Equal(t, 1, r.Counts.Added, "vpn")
	assert.Equal(t, 1, r.Counts.Removed, "dept-d1")
	assert.Equal(t, []string{"u00001"}, s.members(t, conn, "vpn"))
}

// TestReconcileWritesTheTargetLoses: the target acknowledges every write
// (204) and keeps none. The cycle reports each membership and the disable
// as a problem, counts none of them done, and does not write them again;
// once the target keeps writes, the next cycle makes them.
func TestReconcileWritesTheTargetLoses(t *testing.T) {
	const n = 20
	users, groups, dir := inSync(n)
	lost := []string{groups["all-staff"][3], groups["dept-d2"][1]}
	groups["all-staff"] = slices.DeleteFunc(groups["all-staff"], func(u string) bool { return u == lost[0] })
	groups["dept-d2"] = slices.DeleteFunc(groups["dept-d2"], func(u string) bool { return u == lost[1] })
	leaver := reconPerson(n+1, "")
	leaver.Status = contract.StatusDeprovisioned
	dir = append(dir, leaver)
	users = append(users, scimtest.LoadUser{UserName: leaver.Attributes["username"], Email: leaver.Attributes["email"], Active: true})
	rec := policy.Reconcile{Leftovers: policy.ReconcileDisable}
	s := newReconStack(t, reconcilePolicy(scimTarget, "user_name", rec), users, loadGroups(groups), dir,
		hostile.SCIMSwitches{DropWrites: true})

	r := s.cycle(t).Reconcile["app"]
	assert.Equal(t, 3, s.px.Faults(hostile.FaultDropWrites), "two adds and one disable were acknowledged and lost")
	assert.Equal(t, 2, r.Counts.MissingFound)
	assert.Zero(t, r.Counts.Added, "not counted: the target does not show them")
	assert.Zero(t, r.Counts.LeftoversDisabled)
	var problems []string
	for _, p := range r.Problems {
		problems = append(problems, p.Error)
	}
	require.Len(t, problems, 3, "%v", problems)
	assert.Contains(t, strings.Join(problems, "\n"), "missing group "+s.ids.Groups["all-staff"])
	assert.Contains(t, strings.Join(problems, "\n"), "missing group "+s.ids.Groups["dept-d2"])
	assert.Contains(t, strings.Join(problems, "\n"), "disable: ")
	for _, a := range r.Accounts {
		if a.Situation == activities.SituationLeftover {
			assert.Equal(t, activities.ActionFailed, a.Action)
		}
	}

	// The audit trail: the adds the target acknowledged and lost are
	// recorded as not read back; the failed disable is no effect.
	got := s.audit.actions()
	require.Len(t, got[audit.GroupAdded], 2)
	for _, r := range got[audit.GroupAdded] {
		assert.False(t, r.Verified, "%s %s: lost by the target", r.EmployeeID, r.Group)
		assert.Contains(t, r.Detail, "not read back")
	}
	assert.Empty(t, got[audit.AccountDisabled])

	s.px.Set(hostile.SCIMSwitches{})
	r = s.cycle(t).Reconcile["app"]
	assert.Empty(t, r.Problems)
	assert.Equal(t, 2, r.Counts.Added)
	assert.Equal(t, 1, r.Counts.LeftoversDisabled)
	got = s.audit.actions()
	require.Len(t, got[audit.GroupAdded], 4)
	for _, r := range got[audit.GroupAdded][2:] {
		assert.True(t, r.Verified, "%s %s", r.EmployeeID, r.Group)
	}
	require.Len(t, got[audit.AccountDisabled], 1)
	assert.Equal(t, leaver.EmployeeID, got[audit.AccountDisabled][0].EmployeeID)
	assert.True(t, got[audit.AccountDisabled][0].Verified)
}

// TestReconcileRecordsActions: each change a reconciliation makes has one
// audit record, jml's, of kind reconcile, naming the person, the account
// and the group, read back: two memberships dropped by hand come back, a
// person moved in HR changes department group, a terminated person's
// active account is disabled; and the attribute sync's write of a stale
// e-mail address is recorded too. A cycle with nothing to do records
// nothing.
func TestReconcileRecordsActions(t *testing.T) {
	const n = 20
	users, groups, dir := inSync(n)
	groups["all-staff"] = slices.DeleteFunc(groups["all-staff"], func(u string) bool { return u == "u00004" })
	groups["dept-d2"] = slices.DeleteFunc(groups["dept-d2"], func(u string) bool { return u == "u00007" })
	dir[0].Attributes["department"] = "D3" // u00001: dept-d1 → dept-d3
	users[9].Email = "stale@example.com"   // u00010: the attribute sync writes it
	leaver := reconPerson(n+1, "")
	leaver.Status = contract.StatusDeprovisioned
	dir = append(dir, leaver)
	users = append(users, scimtest.LoadUser{UserName: leaver.Attributes["username"], Email: leaver.Attributes["email"], Active: true})
	s := newReconStack(t, reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Leftovers: policy.ReconcileDisable}), users, loadGroups(groups), dir)

	r := s.cycle(t).Reconcile["app"]
	require.Empty(t, r.Problems)
	require.Equal(t, 3, r.Counts.Added)
	require.Equal(t, 1, r.Counts.Removed)
	require.Equal(t, 1, r.Counts.LeftoversDisabled)
	assert.Empty(t, r.Effects, "the records are in the trail, not in the run's result")

	type rec struct{ action, emp, account, group string }
	var recs []rec
	for _, r := range s.audit.recs {
		if r.Kind == "attribute_sync" {
			// The attribute sync's write: the names written, no value
			// (the policy marks none auditable); read back next cycle.
			assert.Equal(t, audit.AccountUpdated, r.Action)
			assert.Equal(t, "E00010", r.EmployeeID)
			assert.Equal(t, s.ids.Users["u00010"], r.AccountID)
			assert.Equal(t, map[string]string{"email": ""}, r.Attributes)
			assert.Equal(t, "app.attribute_sync", r.Step)
			assert.False(t, r.Verified)
			recs = append(recs, rec{r.Action, r.EmployeeID, r.AccountID, r.Group})
			continue
		}
		assert.Equal(t, "reconcile", r.Kind)
		assert.Equal(t, audit.ActorJML, r.Actor)
		assert.Equal(t, "app", r.Target)
		assert.Equal(t, "app.reconcile", r.Step)
		assert.True(t, r.Verified, "%s %s: read back", r.Action, r.EmployeeID)
		assert.NotEmpty(t, r.WorkflowID)
		recs = append(recs, rec{r.Action, r.EmployeeID, r.AccountID, r.Group})
	}
	u := s.ids.Users
	assert.ElementsMatch(t, []rec{
		{audit.GroupAdded, "E00004", u["u00004"], "all-staff"},
		{audit.GroupAdded, "E00007", u["u00007"], "dept-d2"},
		{audit.GroupAdded, "E00001", u["u00001"], "dept-d3"},
		{audit.GroupRemoved, "E00001", u["u00001"], "dept-d1"},
		{audit.AccountDisabled, leaver.EmployeeID, u[leaver.Attributes["username"]], ""},
		{audit.AccountUpdated, "E00010", u["u00010"], ""},
	}, recs)

	s.cycle(t)
	assert.Len(t, s.audit.recs, len(recs), "nothing to do, nothing recorded")
}

// TestReconcileMassRemovalBlocks: 60 % of dept-d0's members moved to D1 in
// HR. Adding them to dept-d1 goes through; removing them from dept-d0 is
// more than the share (20 %) and waits for an operator: Abort keeps them,
// Release (next cycle) removes them.
func TestReconcileMassRemovalBlocks(t *testing.T) {
	const n = 500
	users, groups, dir := inSync(n)
	moved := 0
	for i := range dir {
		if dir[i].Attributes["department"] == "D0" && moved < 60 {
			dir[i].Attributes["department"] = "D1"
			moved++
		}
	}
	require.Equal(t, 60, moved, "60 of dept-d0's 100 members")
	s := newReconStack(t, reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Orphans: policy.ReconcileReport}), users, loadGroups(groups), dir)
	conn, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)

	decide := func(run client.WorkflowRun, update string) workflows.AttributeSyncResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		require.Eventually(t, func() bool {
			h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
				UpdateName: update, Args: []any{workflows.StepRequest{Step: "app", Operator: "bob", Reason: "checked with HR (" + update + ")"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
			return err == nil && h.Get(ctx, nil) == nil
		}, time.Minute, 100*time.Millisecond, "the run blocks")
		var res workflows.AttributeSyncResult
		require.NoError(t, run.Get(ctx, &res))
		return res
	}

	run := s.start(t)
	require.Eventually(t, func() bool { // starter list --blocked finds it
		resp, err := s.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = '%s' AND %s = 'app.reconcile'", contract.SAState, contract.StateBlocked, contract.SAFailedStep)})
		return err == nil && len(resp.GetExecutions()) == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == run.GetID()
	}, time.Minute, 200*time.Millisecond)
	res := decide(run, contract.UpdateAbort)
	r := res.Reconcile["app"]
	assert.Equal(t, 60, r.Counts.Added, "adds are never held")
	assert.Zero(t, r.Counts.Removed)
	assert.Equal(t, 60, r.Counts.Blocked)
	assert.Equal(t, []activities.BlockedGroup{{Group: "dept-d0", Remove: 60, Members: 100}}, r.Blocked)
	assert.Len(t, s.members(t, conn, "dept-d0"), 100, "nothing removed")
	assert.Equal(t, map[string]int{"PATCH": 60}, s.peer.Writes())

	run = s.start(t)
	res = decide(run, contract.UpdateRelease)
	// (attrsync-reconcile-released.json: the same before the audit trail.)
	saveHistory(t, s.c, run.GetID(), "attrsync-reconcile-audit.json")
	r = res.Reconcile["app"]
	assert.Equal(t, 60, r.Counts.Removed)
	assert.Zero(t, r.Counts.Added)
	assert.Len(t, s.members(t, conn, "dept-d0"), 40)

	res = s.cycle(t)
	assert.Empty(t, s.peer.Writes())
	assert.Zero(t, res.Reconcile["app"].Counts.Blocked)

	// The trail: each hold, the operator's abort and release with who and
	// why, and each membership change once.
	got := s.audit.actions()
	require.Len(t, got[audit.SafetyHold], 2)
	assert.Contains(t, got[audit.SafetyHold][0].Detail, "mass removal")
	require.Len(t, got[audit.OperatorAbort], 1)
	assert.Equal(t, "bob", got[audit.OperatorAbort][0].Actor)
	assert.Equal(t, "checked with HR (Abort)", got[audit.OperatorAbort][0].Reason)
	require.Len(t, got[audit.OperatorRelease], 1)
	assert.Equal(t, "bob", got[audit.OperatorRelease][0].Actor)
	require.Len(t, got[audit.SafetyRelease], 1)
	assert.Len(t, got[audit.GroupAdded], 60)
	assert.Len(t, got[audit.GroupRemoved], 60)
	for _, r := range got[audit.GroupRemoved] {
		assert.Equal(t, "dept-d0", r.Group)
		assert.Equal(t, audit.ActorJML, r.Actor)
	}
}

// BenchmarkReconcile10k: 10,000 people × 5 managed groups each, in sync,
// against the SCIM peer. Reported: the whole cycle's requests to the target
// (attribute sync and reconciliation) against the page floor
// (ceil(accounts/200) + ceil(groups/200)), the reconciliation's own reads
// (the attribute sync's account pages are reused) and writes (0).
func BenchmarkReconcile10k(b *testing.B) {
	const n = 10000
	pol := reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Orphans: policy.ReconcileReport})
	rules := &pol.Joiner.Steps[1].ManageRelationships.Add
	*rules = append(*rules, "loc-{location}", "level-{level}", "cc-{cost_center}")
	users, groups, dir := inSync(n)
	for i := range dir {
		a := dir[i].Attributes
		a["location"], a["level"], a["cost_center"] = fmt.Sprint(i%4), fmt.Sprint(i%3), fmt.Sprint(i%10)
		for _, g := range []string{"loc-" + a["location"], "level-" + a["level"], "cc-" + a["cost_center"]} {
			groups[g] = append(groups[g], a["username"])
		}
	}
	s := newReconStack(b, pol, users, loadGroups(groups), dir)
	floor := (n+199)/200 + (len(groups)+199)/200
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := s.cycle(b)
		b.StopTimer()
		r := res.Reconcile["app"]
		writes := 0
		for _, v := range s.peer.Writes() {
			writes += v
		}
		b.ReportMetric(float64(s.peer.Requests()), "requests/op")
		b.ReportMetric(float64(r.Counts.Reads), "reconcile-reads/op")
		b.ReportMetric(float64(floor), "page-floor")
		b.ReportMetric(float64(writes), "writes/op")
		if r.Counts.Linked != n || writes != 0 || s.peer.Requests() > floor || r.Counts.MissingFound+r.Counts.ExtraFound != 0 {
			b.Fatalf("linked %d, wrote %d, requests %d > floor %d? %+v", r.Counts.Linked, writes, s.peer.Requests(), floor, r.Problems)
		}
		b.StartTimer()
	}
}

// TestReconcileDisablesUnderSafetyLimit: orphans: disable with a safety
// limit of 2 destructive steps an hour and 5 active orphans — 2 are
// disabled, 3 held until an operator releases them; a protected account is
// never touched.
func TestReconcileDisablesUnderSafetyLimit(t *testing.T) {
	users, groups, dir := inSync(20)
	for i := 1; i <= 5; i++ {
		users = append(users, scimtest.LoadUser{UserName: fmt.Sprintf("orphan%d", i), Active: true})
	}
	users = append(users, scimtest.LoadUser{UserName: "svc-backup", Active: true})
	pol := reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Orphans: policy.ReconcileDisable,
		Targets: map[string]policy.ReconcileTarget{"app": {NeverTouch: []string{"svc-backup"}}}})
	pol.Safety.MaxDestructivePerHour = 2
	s := newReconStack(t, pol, users, loadGroups(groups), dir)
	conn, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	active := func() (n int) {
		for i := 1; i <= 5; i++ {
			acct, err := conn.FindAccount(context.Background(), connectors.Key{Attribute: "user_name", Value: fmt.Sprintf("orphan%d", i)})
			require.NoError(t, err)
			if acct.Active {
				n++
			}
		}
		return n
	}

	run := s.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.Eventually(t, func() bool {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = '%s'", contract.SAState, contract.StateBlocked)})
		return err == nil && len(resp.GetExecutions()) == 1
	}, time.Minute, 200*time.Millisecond, "the run blocks")
	assert.Equal(t, 3, active(), "two disabled, three held")
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), RunID: run.GetRunID(),
		UpdateName: contract.UpdateRelease, Args: []any{workflows.StepRequest{}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	var res workflows.AttributeSyncResult
	require.NoError(t, run.Get(ctx, &res))
	r := res.Reconcile["app"]
	assert.Equal(t, 5, r.Counts.OrphansDisabled)
	assert.Equal(t, 1, r.Counts.Protected)
	assert.Zero(t, active())
	var disabled []string
	for _, a := range r.Accounts {
		if a.Action == activities.ActionDisabled {
			disabled = append(disabled, a.Identifier)
		}
	}
	assert.ElementsMatch(t, []string{"orphan1", "orphan2", "orphan3", "orphan4", "orphan5"}, disabled,
		"the report lists each disabled orphan as disabled, before and after the release")
	acct, err := conn.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "svc-backup"})
	require.NoError(t, err)
	assert.True(t, acct.Active, "never_touch")

	// Disabled orphans stay reported, and nothing more is written.
	res = s.cycle(t)
	assert.Empty(t, s.peer.Writes())
	assert.Equal(t, 5, res.Reconcile["app"].Counts.Orphans)
}

// strictSCIM is a strict SCIM server in front of SCIMMY: no members
// filter, no groups attribute on users, PATCH answered 204, at most 100
// items a page, excludedAttributes ignored.
var strictSCIM = hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 100, IgnoreExcludedAttributes: true}

// TestReconcileLeavesWaitingJoinersAccount (issue 27, problem 1): a
// joiner creates its account, then waits in NeedsAttention at a failed
// notify step. A reconcile cycle with orphans: disable (run by the identity
// workflows' own directory, as in production) classifies the account
// linked, in flight, and leaves it active while it disables a real orphan;
// after the operator skips the step it is still active and linked.
func TestReconcileLeavesWaitingJoinersAccount(t *testing.T) {
	for _, tc := range []struct {
		name string
		sw   []hostile.SCIMSwitches
	}{
		{"scimmy", nil},
		{"strict server", []hostile.SCIMSwitches{strictSCIM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":"channel archived"}`, http.StatusBadRequest)
			}))
			t.Cleanup(portal.Close)
			pol := reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Orphans: policy.ReconcileDisable})
			pol.Joiner.Steps[2].Name = "app.vpn" // the joiner runs here: step names must be unique
			pol.Joiner.Steps = append(pol.Joiner.Steps, policy.Step{Name: "notify.done",
				Notify: &policy.RESTRequest{URL: portal.URL + "/notify", Body: `{"done":"{employee_id}"}`}})
			users := []scimtest.LoadUser{{UserName: "orphan1", Active: true}}
			groups := loadGroups(map[string][]string{"all-staff": nil, "dept-d1": nil, "vpn": nil})
			s := newReconStack(t, pol, users, groups, nil, tc.sw...)
			conn, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
			require.NoError(t, err)
			ctx := context.Background()
			account := func() *connectors.Account {
				t.Helper()
				acct, err := conn.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "new.hire"})
				require.NoError(t, err)
				return acct
			}
			identities := func(state string) int {
				resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
					Query: fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", contract.IdentityWorkflowName, contract.SAState, state)})
				require.NoError(t, err)
				return len(resp.GetExecutions())
			}
			orphaned := func(r activities.ReconcileResult) []string {
				var out []string
				for _, a := range r.Accounts {
					out = append(out, a.Identifier+"/"+a.Situation+"/"+a.Action)
				}
				return out
			}

			acc, err := intake.Submit(ctx, s.c, hr.Event{EventID: "hire-1", Type: hr.Hire, Employee: map[string]string{
				"employee_id": "E1", "username": "new.hire", "email": "new.hire@example.com", "department": "D1"}})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return identities(contract.StateNeedsAttention) == 1 },
				time.Minute, 100*time.Millisecond, "the joiner waits at notify.done")
			require.True(t, account().Active)

			r := s.cycle(t).Reconcile["app"]
			assert.True(t, account().Active, "a waiting joiner's new account is never disabled")
			assert.Equal(t, []string{"orphan1/orphan/disabled"}, orphaned(r), "the real orphan is disabled; the new hire's account is no orphan")
			assert.Equal(t, 1, r.Counts.Linked)
			assert.Equal(t, 1, r.Counts.InFlight)
			assert.Equal(t, 1, r.Counts.OrphansDisabled)

			h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: acc.WorkflowID, UpdateName: contract.UpdateSkipStep,
				Args: []any{workflows.StepRequest{Step: "notify.done", Reason: "channel archived"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
			require.NoError(t, err)
			require.NoError(t, h.Get(ctx, nil))
			require.Eventually(t, func() bool { return identities(contract.StateIdle) == 1 },
				time.Minute, 100*time.Millisecond, "the joiner completes")
			if tc.sw == nil {
				saveHistory(t, s.c, contract.IdentityWorkflowID("E1"), "identity-lean-link-waiting.json")
				saveHistory(t, s.c, acc.WorkflowID, "joiner-lean-link-waiting.json")
			}

			r = s.cycle(t).Reconcile["app"]
			assert.True(t, account().Active, "still active after the operator skipped the step")
			assert.Equal(t, []string{"orphan1/orphan/reported"}, orphaned(r))
			assert.Equal(t, 1, r.Counts.Linked)
			assert.Zero(t, r.Counts.InFlight)
			assert.Empty(t, s.peer.Writes(), "the joiner's groups are as due")
		})
	}
}

// TestReconcileRenamedGroup: a managed group (dept-d3) is renamed at the
// target ("Finance Department") between cycles. No cycle, full or manual,
// writes to the renamed group, which is outside the managed set: with
// create_missing the group is created again under its name and its people
// added there; without, the cycle reports the group missing. Either way
// the next cycle writes nothing. Against SCIMMY and behind the strict
// proxy.
func TestReconcileRenamedGroup(t *testing.T) {
	for _, server := range []struct {
		name string
		sw   []hostile.SCIMSwitches
	}{{"scimmy", nil}, {"strict", []hostile.SCIMSwitches{strictSCIM}}} {
		for _, create := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/create_missing=%v", server.name, create), func(t *testing.T) {
				const n = 20
				users, groups, dir := inSync(n)
				pol := reconcilePolicy(scimTarget, "user_name", policy.Reconcile{Orphans: policy.ReconcileReport})
				pol.Joiner.Steps[1].ManageRelationships.CreateMissing = create
				s := newReconStack(t, pol, users, loadGroups(groups), dir, server.sw...)
				conn, err := scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
				require.NoError(t, err)
				d3 := groups["dept-d3"]
				slices.Sort(d3)

				r := s.cycle(t).Reconcile["app"]
				require.Empty(t, r.Problems)
				require.Equal(t, n, r.Counts.Linked)
				require.Zero(t, r.Counts.Writes, "in sync")

				renamed := s.ids.Groups["dept-d3"]
				s.peer.RenameGroup(renamed, "Finance Department")
				manual := func() activities.ReconcileResult {
					s.peer.Reset()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.ManualSyncWorkflowID("E00003", time.Now()), TaskQueue: contract.TaskQueue},
						contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{EmployeeIDs: []string{"E00003"}})
					require.NoError(t, err)
					var res workflows.AttributeSyncResult
					require.NoError(t, run.Get(ctx, &res))
					return res.Reconcile["app"]
				}
				missing := `group "dept-d3" is due but does not exist`

				for cycle := 2; cycle <= 3; cycle++ {
					r = s.cycle(t).Reconcile["app"]
					t.Logf("cycle %d: %+v %v", cycle, r.Counts, r.Problems)
					switch {
					case create && cycle == 2:
						assert.Empty(t, r.Problems)
						assert.Equal(t, len(d3), r.Counts.Added, "dept-d3 created again, its people added")
						assert.Equal(t, map[string]int{"POST": 1, "PATCH": len(d3)}, s.peer.Writes())
					case create:
						assert.Zero(t, r.Counts.Writes, "settled")
						assert.Empty(t, s.peer.Writes())
					default:
						require.Len(t, r.Problems, 1)
						assert.Equal(t, missing, r.Problems[0].Error)
						assert.Zero(t, r.Counts.Writes)
						assert.Empty(t, s.peer.Writes())
					}
					m := manual()
					assert.Zero(t, m.Counts.Writes, "manual sync of a D3 person after cycle %d", cycle)
					assert.Empty(t, s.peer.Writes(), "manual sync after cycle %d", cycle)
					if !create {
						require.Len(t, m.Problems, 1)
						assert.Equal(t, missing, m.Problems[0].Error)
					}
				}

				// The renamed group keeps exactly its members (SCIMMY would
				// list a member added again twice); dept-d3 is a new group.
				ids, _, err := conn.ListMembers(context.Background(), renamed, "", 0)
				require.NoError(t, err)
				assert.Len(t, ids, len(d3), "nothing written to Finance Department")
				g, err := conn.FindGroup(context.Background(), "dept-d3")
				if !create {
					assert.ErrorIs(t, err, connectors.ErrNotFound)
					return
				}
				require.NoError(t, err)
				assert.NotEqual(t, renamed, g.ID)
				s.ids.Groups["dept-d3"] = g.ID
				assert.Equal(t, d3, s.members(t, conn, "dept-d3"))
			})
		}
	}
}
