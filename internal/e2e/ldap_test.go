package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/ldap"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/ldappeer"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
	"github.com/jml-dev/jml/workflows"
)

const bindPasswordEnv = "JML_E2E_LDAP_BIND_PASSWORD"

// ldapPolicy is a joiner (account with a generated password in the
// department's container, groups, the password handed to the portal), a
// mover, and a leaver (disable, drop groups, move; delete after a grace
// period) on one directory target "dir".
func ldapPolicy(typ string, d *ldappeer.Directory, portal, ou string) *policy.Policy {
	entity := "ADUser"
	login := "{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | FIRST_N, 19}"
	next := "{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | FIRST_N, 17}{NEXT_NUMBER}"
	attrs := map[string]string{
		"login": login, "first_name": "{first_name}", "last_name": "{last_name}",
		"display_name": "{first_name} {last_name}", "title": "{title}", "department": "{department}",
		"employee_id": "{employee_id}", "manager": "{manager_id}",
	}
	if typ == ldap.TypeAD {
		attrs["user_principal_name"] = "{$target.login}@jml.test"
	} else {
		entity = "LDAPUser"
	}
	t := policy.Target{Type: typ, URL: d.URL, CAFile: d.CAFile, BindDN: d.AdminDN, BindPasswordEnv: bindPasswordEnv,
		BaseDN: d.BaseDN, UserContainer: ou + "={department}," + d.StaffDN, GroupsContainer: d.GroupsDN,
		DisabledContainer: d.DisabledDN, MustChangePassword: typ == ldap.TypeAD, PageSize: 100}
	sync := func(create bool) *policy.SyncIdentity {
		s := &policy.SyncIdentity{Target: "dir", CreateAllowed: create, Attributes: attrs}
		if create {
			s.Password = "generate"
			s.Fallbacks = map[string][]string{"login": {next}}
		}
		return s
	}
	return &policy.Policy{
		Targets: map[string]policy.Target{"dir": t},
		// 12 characters: a domain policy of 14 (Samba's most) refuses them.
		Password: policy.PasswordPolicy{Length: 12, Lower: true, Upper: true, Digits: true, Symbols: true},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: sync(true)},
			{ManageRelationships: &policy.ManageRelationships{Target: "dir", CreateMissing: true, Add: []string{"staff", "dept-{department}"}}},
			// A rehire keeps the account and its password: nothing to hand over.
			{Name: "portal.account", When: `rehired ne "yes"`, SendRESTRequest: &policy.RESTRequest{URL: portal + "/accounts",
				Body: `{"id":"{` + entity + `.id}","login":"{` + entity + `.login}","password":"{` + entity + `.password}"}`}},
		}},
		Mover: policy.Flow{Steps: []policy.Step{{SyncIdentity: sync(false)},
			{ManageRelationships: &policy.ManageRelationships{Target: "dir", CreateMissing: true, Add: []string{"staff", "dept-{department}"}}}}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "dir", RemoveGroups: true}},
			{DeleteIdentity: &policy.DeleteIdentity{Target: "dir", After: "10m"}},
		}},
		AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"dir"}, PageSize: 100},
		Reconcile: policy.Reconcile{Orphans: "report", Leftovers: "report",
			Targets: map[string]policy.ReconcileTarget{"dir": {NeverTouch: []string{"Administrator", "krbtgt", "Guest"}}}},
	}
}

// ldapRig is the stack, the directory, the connector the worker uses and
// the recorder under it (Wire: everything sent, everything counted).
type ldapRig struct {
	*stack
	dir  *ldappeer.Directory
	conn *ldap.Connector
	ops  *targets.Recorder
	// audit is the worker's audit store (SQLite).
	audit *auditdb.Store
}

// newLDAPRig binds as the directory's least-privileged service account
// (docs/active-directory.md).
func newLDAPRig(t *testing.T, typ string, d *ldappeer.Directory, svc ldappeer.Account, ou string) *ldapRig {
	t.Helper()
	s := newBareStack(t, nil)
	s.policy = ldapPolicy(typ, d, s.portal.URL, ou)
	dir := s.policy.Targets["dir"]
	dir.BindDN = svc.DN
	s.policy.Targets["dir"] = dir
	r := &ldapRig{stack: s, dir: d, ops: &targets.Recorder{Live: http.DefaultTransport, Wire: true}}
	st, err := auditdb.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	r.audit, s.audit = st, st
	c, err := targets.BuildOne(context.Background(), "dir", s.policy.Targets["dir"], targets.Options{
		Getenv: func(k string) string {
			if k == bindPasswordEnv {
				return svc.Password
			}
			return ""
		}, Operations: r.ops})
	require.NoError(t, err)
	r.conn = c.(*ldap.Connector)
	t.Cleanup(func() { r.conn.Close() })
	s.workerWith(t, map[string]any{"dir": r.conn}, nil)
	return r
}

// run delivers ev, waits for the person's status and returns the LDAP
// operations the run sent, by method.
func (r *ldapRig) run(t *testing.T, ev hr.Event, status string) (workflows.EventAccepted, map[string]int) {
	t.Helper()
	r.ops.Reset()
	acc := r.mustDeliver(t, ev)
	emp := ev.Employee["employee_id"]
	ok := assert.Eventually(t, func() bool {
		v, err := r.c.QueryWorkflow(context.Background(), contract.IdentityWorkflowID(emp), "", contract.QueryCurrent)
		if err != nil {
			return false
		}
		var cr workflows.CurrentRun
		return v.Get(&cr) == nil && cr.Status == status && cr.WorkflowID == "" && len(cr.Pending) == 0
	}, time.Minute, 200*time.Millisecond)
	if !ok {
		for name, row := range r.steps(t, acc.WorkflowID) {
			t.Logf("%s: %s %s %s", name, row.State, row.Note, row.LastError)
		}
		t.FailNow()
	}
	return acc, r.count()
}

// count is the LDAP operations recorded since the last Reset, by method.
func (r *ldapRig) count() map[string]int {
	ops := map[string]int{}
	for _, c := range r.ops.Calls() {
		ops[c.Method]++
		ops["total"]++
	}
	return ops
}

// audited waits for emp's record of action from run workflowID (a step's
// effects land in one write) and returns the run's records of emp.
func (r *ldapRig) audited(t *testing.T, emp, workflowID, action string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	require.Eventually(t, func() bool {
		all, err := r.audit.Records(context.Background(), auditdb.Filter{EmployeeID: emp})
		if err != nil {
			return false
		}
		recs = recs[:0]
		found := false
		for _, rec := range all {
			if rec.WorkflowID == workflowID {
				recs = append(recs, rec)
				found = found || rec.Action == action
			}
		}
		return found
	}, time.Minute, 100*time.Millisecond, "%s: %s", emp, action)
	return recs
}

// assertMoved asserts that run workflowID has one account.moved record
// of emp, from one DN to the other, verified, once its step's record of
// action is in.
func (r *ldapRig) assertMoved(t *testing.T, emp, workflowID, action, from, to string) {
	t.Helper()
	var mvs []audit.Record
	for _, rec := range r.audited(t, emp, workflowID, action) {
		if rec.Action == audit.AccountMoved {
			mvs = append(mvs, rec)
		}
	}
	if assert.Len(t, mvs, 1, "%s: one move in %s", emp, workflowID) {
		assert.Equal(t, "from "+from+" to "+to, mvs[0].Detail)
		assert.True(t, mvs[0].Verified, "read back at the new DN")
	}
}

func (r *ldapRig) account(t *testing.T, employeeID string) *connectors.Account {
	t.Helper()
	a, err := r.conn.Correlate(context.Background(), connectors.Attributes{"employee_id": employeeID})
	require.NoError(t, err, employeeID)
	return a
}

func staff(id, first, last, dept, manager string) map[string]string {
	return map[string]string{"employee_id": id, "first_name": first, "last_name": last, "department": dept,
		"title": "Associate", "manager_id": manager}
}

// TestActiveDirectoryJoinerMoverLeaver runs the worker against a Samba AD
// DC: joiners in their department's OU whose delivered password is the
// one AD holds (and must be changed: pwdLastSet=0), two John Smiths, a
// mover that moves the object and keeps the link, a leaver disabled,
// without groups, in the disabled OU and unable to bind, a rehire in the
// grace period re-enabling the same object, a password the domain refuses
// ending in NeedsAttention naming the rule, no password in any history,
// and a reconciliation of 1,000 users in pages without a write.
func TestActiveDirectoryJoinerMoverLeaver(t *testing.T) {
	sb := ldappeer.StartSamba(t)
	for _, ou := range []string{"Sales", "Engineering"} {
		sb.CreateOU(t, "OU="+ou+","+sb.StaffDN)
	}
	r := newLDAPRig(t, ldap.TypeAD, &sb.Directory, sb.ServiceAccount(t), "OU")
	r.check = func(_, login, password string) bool {
		// AD checks the password before it says it must be changed (773).
		err := sb.Bind(login+"@jml.test", password)
		return err == nil || strings.Contains(err.Error(), "data 773")
	}
	ctx := context.Background()

	_, bossOps := r.run(t, hr.Event{EventID: "boss-hire", Type: hr.Hire, Employee: staff("E0007", "Big", "Boss", "Sales", "")}, contract.StatusActive)
	_, joinOps := r.run(t, hr.Event{EventID: "j1-hire", Type: hr.Hire, Employee: staff("E0100", "John", "Smith", "Sales", "E0007")}, contract.StatusActive)
	r.run(t, hr.Event{EventID: "j2-hire", Type: hr.Hire, Employee: staff("E0101", "John", "Smith", "Sales", "E0007")}, contract.StatusActive)

	j1, j2 := r.account(t, "E0100"), r.account(t, "E0101")
	assert.Equal(t, "jsmith", j1.Attributes["login"])
	assert.Equal(t, "jsmith2", j2.Attributes["login"], "the second John Smith")
	assert.LessOrEqual(t, len(j2.Attributes["login"]), 20)
	assert.Equal(t, "CN=John Smith,OU=Sales,"+sb.StaffDN, j1.Attributes["dn"])
	assert.Equal(t, "CN=John Smith (jsmith2),OU=Sales,"+sb.StaffDN, j2.Attributes["dn"], "a namesake's CN is unique in the OU")
	assert.True(t, j1.Active)
	assert.Equal(t, "E0007", j1.Attributes["manager"])
	e := sb.SearchAll(t, j1.Attributes["dn"], "(objectClass=user)", "pwdLastSet", "userAccountControl", "manager")[0]
	assert.Equal(t, "0", e.GetAttributeValue("pwdLastSet"), "must change the password at first logon")
	assert.Equal(t, "512", e.GetAttributeValue("userAccountControl"))
	assert.Equal(t, "CN=Big Boss,OU=Sales,"+sb.StaffDN, e.GetAttributeValue("manager"))
	r.mu.Lock()
	assert.Len(t, r.passwords, 3, "every delivered password is the one AD holds")
	assert.Zero(t, r.rejected)
	r.mu.Unlock()
	gs, err := r.conn.Memberships(ctx, j1.ID)
	require.NoError(t, err)
	assert.Len(t, gs, 2, "staff and dept-Sales")

	// Mover: to Engineering; the object moves, the link (objectGUID) holds.
	mv, moveOps := r.run(t, hr.Event{EventID: "j1-move", Type: hr.Change, Employee: map[string]string{"employee_id": "E0100", "department": "Engineering"}}, contract.StatusActive)
	row := r.steps(t, mv.WorkflowID)["dir.sync_identity"]
	assert.Equal(t, workflows.StepDone, row.State, row.LastError)
	assert.Contains(t, row.Note, activities.Linked)
	moved := r.account(t, "E0100")
	assert.Equal(t, j1.ID, moved.ID)
	assert.Equal(t, "CN=John Smith,OU=Engineering,"+sb.StaffDN, moved.Attributes["dn"])
	// One account.moved record, naming both DNs, read back at the new one.
	r.assertMoved(t, "E0100", mv.WorkflowID, audit.AccountUpdated, j1.Attributes["dn"], moved.Attributes["dn"])

	// Leaver: disabled, no groups, in the disabled OU, and the bind fails
	// because the account is disabled (533), not for its password.
	r.mu.Lock()
	j2pw := r.passwords[2]
	r.mu.Unlock()
	r.ops.Reset()
	lv := r.mustDeliver(t, hr.Event{EventID: "j2-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "E0101"}})
	r.waitStep(t, lv.WorkflowID, "dir.deprovision_identity", workflows.StepDone) // the delete waits 10 minutes
	leaveOps := r.count()
	left := r.account(t, "E0101")
	assert.Equal(t, j2.ID, left.ID)
	assert.False(t, left.Active)
	assert.Equal(t, "CN=John Smith (jsmith2),"+sb.DisabledDN, left.Attributes["dn"])
	r.assertMoved(t, "E0101", lv.WorkflowID, audit.AccountDisabled, j2.Attributes["dn"], left.Attributes["dn"])
	gs, err = r.conn.Memberships(ctx, left.ID)
	require.NoError(t, err)
	assert.Empty(t, gs)
	err = sb.Bind("jsmith2@jml.test", j2pw)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "data 533", "AD: account disabled")

	// Rehire in the grace period: the same object, enabled, back in Sales,
	// never deleted.
	rehire := staff("E0101", "John", "Smith", "Sales", "E0007")
	rehire["rehired"] = "yes"
	rh, _ := r.run(t, hr.Event{EventID: "j2-rehire", Type: hr.Rehire, Employee: rehire}, contract.StatusActive)
	back := r.account(t, "E0101")
	assert.Equal(t, j2.ID, back.ID, "the same object")
	assert.True(t, back.Active)
	assert.Equal(t, "CN=John Smith (jsmith2),OU=Sales,"+sb.StaffDN, back.Attributes["dn"])
	r.assertMoved(t, "E0101", rh.WorkflowID, audit.AccountEnabled, left.Attributes["dn"], back.Attributes["dn"])
	assert.Equal(t, workflows.StepSuperseded, r.steps(t, lv.WorkflowID)["dir.delete_identity"].State)

	// A password the domain refuses (14 characters wanted, 12 generated):
	// NeedsAttention, the rule named, no account left behind.
	sb.SetPasswordPolicy(t, ldappeer.PasswordPolicy{Complexity: true, MinLength: 14})
	refused := r.mustDeliver(t, hr.Event{EventID: "r-hire", Type: hr.Hire, Employee: staff("E0200", "Rita", "Refused", "Sales", "")})
	row = r.waitStep(t, refused.WorkflowID, "dir.sync_identity", workflows.StepFailed)
	assert.Equal(t, contract.StateNeedsAttention, hostileNeedsAttention(t, r.stack, refused.WorkflowID))
	assert.Contains(t, row.LastError, ldap.TypePasswordPolicy)
	assert.Contains(t, row.LastError, "the password is too short. It should be equal or longer than 14 characters")
	_, err = r.conn.Correlate(ctx, connectors.Attributes{"employee_id": "E0200"})
	require.ErrorIs(t, err, connectors.ErrNotFound, "nothing half-created")
	assert.Empty(t, sb.SearchAll(t, sb.BaseDN, "(sAMAccountName=rrefused)"))

	r.mu.Lock()
	pws := append([]string(nil), r.passwords...)
	r.mu.Unlock()
	r.assertNoSecrets(t, pws)

	// Reconciliation over 1,000 more users: read in pages, nothing written.
	sb.LoadUsers(t, sb.StaffDN, ldappeer.GenerateUsers(1000))
	r.ops.Reset()
	res := r.attributeSync(t)
	rec := res.Reconcile["dir"]
	assert.GreaterOrEqual(t, rec.Counts.AccountsRead, 1003)
	assert.GreaterOrEqual(t, res.PagesRead, 11, "1,007 accounts in pages of 100, read once by the attribute sync and reused")
	assert.Equal(t, 3, rec.Counts.Linked)
	assert.GreaterOrEqual(t, rec.Counts.Orphans, 1000, "the bulk users are nobody's: reported")
	assert.Zero(t, rec.Counts.Writes, "in sync: no write")
	assert.Zero(t, res.AccountsChanged, "%+v", res.Problems)
	writes := 0
	searches := 0
	for _, c := range r.ops.Calls() {
		if c.Method == "SEARCH" {
			searches++
		} else {
			writes++
			t.Logf("write in the cycle: %s %s %s", c.Method, c.URL, c.Body)
		}
	}
	assert.Zero(t, writes, "no LDAP write in the cycle")
	assert.Less(t, searches, 100, "pages, not one read per person")

	t.Logf("LDAP operations: first joiner (no manager) %v; joiner %v; mover %v; leaver %v; reconcile+attribute sync of %d accounts: %d searches, %d writes",
		bossOps, joinOps, moveOps, leaveOps, rec.Counts.AccountsRead, searches, writes)
}

// attributeSync runs one attribute-sync cycle (with reconciliation).
func (r *ldapRig) attributeSync(t *testing.T) workflows.AttributeSyncResult {
	t.Helper()
	run, err := r.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "attrsync-ldap", TaskQueue: contract.TaskQueue,
	}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
	require.NoError(t, err)
	var res workflows.AttributeSyncResult
	require.NoError(t, run.Get(context.Background(), &res))
	return res
}

// TestOpenLDAPJoinerMoverLeaver is the same joiner, mover, leaver and
// rehire against OpenLDAP: the delivered password binds, the leaver is
// locked by ppolicy, without groups, in the disabled ou, and cannot bind.
func TestOpenLDAPJoinerMoverLeaver(t *testing.T) {
	sl := ldappeer.StartSlapd(t)
	for _, ou := range []string{"Sales", "Engineering"} {
		sl.CreateOU(t, "ou="+ou+","+sl.StaffDN)
	}
	r := newLDAPRig(t, ldap.TypeOpenLDAP, &sl.Directory, sl.ServiceAccount(t), "ou")
	pool, err := ldap.LoadCAFile(sl.CAFile)
	require.NoError(t, err)
	reader, err := ldap.New(ldap.Config{Flavour: ldap.OpenLDAP, URL: sl.URL, RootCAs: pool, BindDN: sl.AdminDN,
		BindPassword: secret.New(sl.AdminPassword), BaseDN: sl.BaseDN, UserContainer: sl.StaffDN})
	require.NoError(t, err)
	t.Cleanup(func() { reader.Close() })
	r.check = func(id, _, password string) bool {
		a, err := reader.ReadAccount(context.Background(), id)
		return err == nil && sl.Bind(a.Attributes["dn"], password) == nil
	}
	ctx := context.Background()

	r.run(t, hr.Event{EventID: "boss-hire", Type: hr.Hire, Employee: staff("E0007", "Big", "Boss", "Sales", "")}, contract.StatusActive)
	_, joinOps := r.run(t, hr.Event{EventID: "j1-hire", Type: hr.Hire, Employee: staff("E0100", "John", "Smith", "Sales", "E0007")}, contract.StatusActive)
	j1 := r.account(t, "E0100")
	assert.Equal(t, "uid=jsmith,ou=Sales,"+sl.StaffDN, j1.Attributes["dn"])
	assert.Equal(t, "E0007", j1.Attributes["manager"])
	r.mu.Lock()
	require.Len(t, r.passwords, 2, "the delivered passwords bind")
	pw := r.passwords[1]
	r.mu.Unlock()

	mv, moveOps := r.run(t, hr.Event{EventID: "j1-move", Type: hr.Change, Employee: map[string]string{"employee_id": "E0100", "department": "Engineering"}}, contract.StatusActive)
	moved := r.account(t, "E0100")
	assert.Equal(t, j1.ID, moved.ID, "entryUUID: the link holds")
	assert.Equal(t, "uid=jsmith,ou=Engineering,"+sl.StaffDN, moved.Attributes["dn"])
	r.assertMoved(t, "E0100", mv.WorkflowID, audit.AccountUpdated, j1.Attributes["dn"], moved.Attributes["dn"])
	gs, err := reader.Memberships(ctx, j1.ID)
	require.NoError(t, err)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	assert.ElementsMatch(t, []string{"staff", "dept-Engineering"}, names)

	r.ops.Reset()
	lv := r.mustDeliver(t, hr.Event{EventID: "j1-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "E0100"}})
	r.waitStep(t, lv.WorkflowID, "dir.deprovision_identity", workflows.StepDone)
	leaveOps := r.count()
	left := r.account(t, "E0100")
	assert.False(t, left.Active)
	assert.Equal(t, "uid=jsmith,"+sl.DisabledDN, left.Attributes["dn"])
	r.assertMoved(t, "E0100", lv.WorkflowID, audit.AccountDisabled, moved.Attributes["dn"], left.Attributes["dn"])
	gs, err = reader.Memberships(ctx, j1.ID)
	require.NoError(t, err)
	assert.Empty(t, gs)
	assert.Error(t, sl.Bind(left.Attributes["dn"], pw), "locked by ppolicy")

	rehire := staff("E0100", "John", "Smith", "Engineering", "E0007")
	rehire["rehired"] = "yes"
	r.run(t, hr.Event{EventID: "j1-rehire", Type: hr.Rehire, Employee: rehire}, contract.StatusActive)
	back := r.account(t, "E0100")
	assert.Equal(t, j1.ID, back.ID)
	assert.True(t, back.Active)
	assert.Equal(t, "uid=jsmith,ou=Engineering,"+sl.StaffDN, back.Attributes["dn"])
	assert.NoError(t, sl.Bind(back.Attributes["dn"], pw), "the same account, its password again usable")

	r.mu.Lock()
	pws := append([]string(nil), r.passwords...)
	r.mu.Unlock()
	r.assertNoSecrets(t, pws)
	t.Logf("LDAP operations (OpenLDAP): joiner %v; mover %v; leaver %v", joinOps, moveOps, leaveOps)
}
