package sources_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// admin is someone changing users directly at the Okta stand-in.
type admin struct {
	t  *testing.T
	c  *okta.Client
	id map[string]string // login → Okta user ID
}

func newAdmin(t *testing.T, peer *oktatest.Peer) *admin {
	c, err := okta.New(context.Background(), okta.Config{OrgURL: peer.OrgURL, Token: secret.New(peer.Token), AllowInsecure: true})
	require.NoError(t, err)
	return &admin{t: t, c: c, id: map[string]string{}}
}

func (a *admin) create(login, first, last string) {
	acct, err := a.c.CreateAccount(context.Background(), connectors.Attributes{"login": login, "email": login, "first_name": first, "last_name": last},
		connectors.CreateOptions{Activate: true})
	require.NoError(a.t, err)
	a.id[login] = acct.ID
}

func (a *admin) update(login string, d connectors.Diff) {
	require.NoError(a.t, a.c.UpdateAccount(context.Background(), a.id[login], d))
}

func (a *admin) suspend(login string) {
	require.NoError(a.t, a.c.Deprovision(context.Background(), a.id[login], connectors.DeprovisionOptions{Mode: okta.ModeSuspend}))
}

func (a *admin) delete(login string) {
	require.NoError(a.t, a.c.Delete(context.Background(), a.id[login]))
}

func (a *admin) reactivate(login string) {
	require.NoError(a.t, a.c.Reactivate(context.Background(), a.id[login]))
}

// scimAccount reads a person's SCIM account by user name.
func scimAccount(t *testing.T, c *scim.Client, userName string) *connectors.Account {
	t.Helper()
	acct, err := c.FindAccount(context.Background(), connectors.Key{Attribute: "user_name", Value: userName})
	require.NoError(t, err)
	return acct
}

// TestOktaSourceToSCIM: users created, updated, suspended and reactivated
// directly at the Okta stand-in (emulate) become, within one poll, the
// matching joiner, mover, leaver and rehire runs against the SCIM peer;
// a worker restart between polls neither misses nor repeats a change.
func TestOktaSourceToSCIM(t *testing.T) {
	peer := oktatest.Start(t)
	app := scimtest.Start(t)
	s := newStack(t)
	s.env["OKTA_SOURCE_TOKEN"] = peer.Token
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: app.BaseURL, Auth: scim.Auth{BearerToken: app.Token}})
	require.NoError(t, err)
	attrs := map[string]string{"user_name": "{email}", "given_name": "{first_name}", "family_name": "{last_name}"}
	s.pol = &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim", BaseURL: app.BaseURL, TokenEnv: "APP_TOKEN"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Attributes: attrs}}, s.hookStep("joiner")}},
		Mover: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", Attributes: attrs}}, s.hookStep("mover")}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app"}}, s.hookStep("leaver")}},
		Sources: map[string]policy.Source{"okta": {
			Type: "okta", OrgURL: peer.OrgURL, TokenEnv: "OKTA_SOURCE_TOKEN", Every: "1h", MaxTerminatePercent: 100,
			// emulate keeps no custom profile attributes (employeeNumber):
			// the login is the employee ID here.
			EmployeeID: "{login}",
			Attributes: map[string]string{"email": "{email}", "first_name": "{firstName}", "last_name": "{lastName}"},
		}},
	}
	targets := map[string]any{"app": sc}
	adm := newAdmin(t, peer)
	adm.create("ada@acme.test", "Ada", "Lovelace")
	adm.create("bob@acme.test", "Bob", "Kahn")
	adm.create("cy@acme.test", "Cy", "Young")
	adm.create("staged@acme.test", "Sta", "Ged")
	adm.suspend("staged@acme.test") // never active while jml watched: nothing to undo

	stop := s.worker(t, targets)
	s.startPollers(t)
	st := s.status(t, "okta")
	require.Empty(t, st.LastError)
	// emulate's seed user testuser@okta.local is active too.
	assert.Equal(t, map[string]int{hr.Hire: 4}, st.Emitted, "the first poll hires everyone active")
	assert.NotEmpty(t, st.Cursor)
	s.waitRuns(t, 4)
	s.waitCount(t, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'", 4)
	assert.True(t, scimAccount(t, sc, "cy@acme.test").Active)

	adm.suspend("cy@acme.test")
	st = s.pollNow(t, "okta")
	assert.Equal(t, 1, st.Emitted[hr.Terminate])
	s.waitRuns(t, 5)
	s.waitCount(t, "WorkflowType = 'Leaver' AND ExecutionStatus = 'Completed'", 1)
	assert.False(t, scimAccount(t, sc, "cy@acme.test").Active)

	// The worker is down while people change at Okta.
	stop()
	adm.create("dee@acme.test", "Dee", "Ramos")
	adm.update("ada@acme.test", connectors.Diff{"first_name": "Adele"})
	adm.suspend("bob@acme.test")
	adm.reactivate("cy@acme.test")
	stop = s.worker(t, targets)

	// One poll: joiner, mover, leaver and rehire.
	st = s.pollNow(t, "okta")
	require.Empty(t, st.LastError)
	assert.Equal(t, map[string]int{hr.Hire: 5, hr.Change: 1, hr.Terminate: 2, hr.Rehire: 1}, st.Emitted)
	got := byKind(s.waitRuns(t, 9)[5:])
	assert.Equal(t, map[string][]string{"joiner": {"cy@acme.test", "dee@acme.test"}, "mover": {"ada@acme.test"}, "leaver": {"bob@acme.test"}}, got)
	s.waitCount(t, "ExecutionStatus = 'Completed' AND WorkflowType IN ('Joiner', 'Mover', 'Leaver')", 9)
	assert.True(t, scimAccount(t, sc, "dee@acme.test").Active)
	assert.Equal(t, "Adele", scimAccount(t, sc, "ada@acme.test").Attributes["given_name"])
	assert.False(t, scimAccount(t, sc, "bob@acme.test").Active)
	assert.True(t, scimAccount(t, sc, "cy@acme.test").Active, "rehired: reactivated")
	assert.Equal(t, 2, s.count(t, "WorkflowType = 'Joiner' AND JmlEmployeeId = 'cy@acme.test'"), "a rehire runs the joiner again")

	// Another restart, then polls with nothing new: nothing repeats.
	stop()
	s.worker(t, targets)
	for range 2 {
		st = s.pollNow(t, "okta")
		require.Empty(t, st.LastError)
	}
	assert.Equal(t, map[string]int{hr.Hire: 5, hr.Change: 1, hr.Terminate: 2, hr.Rehire: 1}, st.Emitted)
	assert.Len(t, s.runsSoFar(), 9)
	assert.Equal(t, 9, s.count(t, "WorkflowType IN ('Joiner', 'Mover', 'Leaver')"))

	// Deactivated and deleted between two polls: the changes miss it, a
	// full read finds the user gone.
	adm.delete("dee@acme.test")
	st = s.pollNow(t, "okta")
	assert.Equal(t, 2, st.Emitted[hr.Terminate], "deleted users are not in the changes")
	st, err = s.update(t, "okta", contract.UpdateSourcePoll, workflows.SourcePollRequest{Full: true})
	require.NoError(t, err)
	assert.Equal(t, 3, st.Emitted[hr.Terminate])
	assert.Equal(t, run{"leaver", "dee@acme.test"}, s.waitRuns(t, 10)[9])
	s.waitCount(t, "WorkflowType = 'Leaver' AND ExecutionStatus = 'Completed'", 3)
	assert.False(t, scimAccount(t, sc, "dee@acme.test").Active)
}

// TestOktaSourceAndTarget: with Okta as both source and target, what jml
// writes to Okta (a managed display name on every account it adopts) is
// not read back as an HR change: 10 polls, 0 events caused by jml.
func TestOktaSourceAndTarget(t *testing.T) {
	peer := oktatest.Start(t)
	s := newStack(t)
	s.env["OKTA_TOKEN"] = peer.Token
	write := map[string]string{"login": "{employee_id}", "email": "{email}", "first_name": "{first_name}",
		"last_name": "{last_name}", "display_name": "{first_name} {last_name} (managed by jml)"}
	s.pol = &policy.Policy{
		Targets: map[string]policy.Target{"okta": {Type: "okta", OrgURL: peer.OrgURL, TokenEnv: "OKTA_TOKEN"}},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "okta", CreateAllowed: true, Attributes: write}}, s.hookStep("joiner")}},
		Mover: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "okta", Attributes: write}}, s.hookStep("mover")}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "okta"}}, s.hookStep("leaver")}},
		Sources: map[string]policy.Source{"okta": {
			Type: "okta", OrgURL: peer.OrgURL, TokenEnv: "OKTA_TOKEN", Every: "1h", EmployeeID: "{login}", MaxTerminatePercent: 100,
			Attributes: map[string]string{"email": "{email}", "first_name": "{firstName}", "last_name": "{lastName}",
				"display_name": "{displayName}"},
		}},
	}
	oc, err := okta.New(context.Background(), okta.Config{OrgURL: peer.OrgURL, Token: secret.New(peer.Token), AllowInsecure: true})
	require.NoError(t, err)
	adm := newAdmin(t, peer)
	for _, p := range [][3]string{{"ada@acme.test", "Ada", "Lovelace"}, {"bob@acme.test", "Bob", "Kahn"}, {"cy@acme.test", "Cy", "Young"}} {
		adm.create(p[0], p[1], p[2])
	}
	s.worker(t, map[string]any{"okta": oc})
	s.startPollers(t)
	s.waitRuns(t, 4) // and emulate's seed user
	s.waitCount(t, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'", 4)
	acct, err := oc.FindAccount(context.Background(), connectors.Key{Attribute: "login", Value: "ada@acme.test"})
	require.NoError(t, err)
	require.Equal(t, "Ada Lovelace (managed by jml)", acct.Attributes["display_name"], "jml wrote to Okta")

	var st workflows.SourceStatus
	for range 10 {
		st = s.pollNow(t, "okta")
		require.Empty(t, st.LastError)
	}
	assert.Equal(t, 11, st.Polls)
	assert.Equal(t, map[string]int{hr.Hire: 4}, st.Emitted, "0 events from jml's own writes")
	assert.Equal(t, 0, s.count(t, "WorkflowType = 'Mover'"))

	// An HR change made in Okta is still seen.
	adm.update("bob@acme.test", connectors.Diff{"last_name": "Cerf"})
	st = s.pollNow(t, "okta")
	assert.Equal(t, 1, st.Emitted[hr.Change])
	runs := s.waitRuns(t, 5)
	assert.Equal(t, run{"mover", "bob@acme.test"}, runs[4])
}
