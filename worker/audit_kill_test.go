package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/workflows"
)

const killPolicy = `targets:
  app: {type: scim, base_url: {{BASE_URL}}, token_env: APP_SCIM_TOKEN}
required_attributes: [first_name, last_name, department]
common_attributes:
  user_name: '{first_name | LOWER}.{last_name | LOWER}@example.com'
  given_name: '{first_name}'
  family_name: '{last_name}'
  department: '{department}'
password: {length: 20, lower: true, upper: true, digits: true}
joiner:
  steps:
    - sync_identity: {target: app, create_allowed: true, password: generate, attributes: {employee_number: '{employee_id}'}}
    - manage_relationships: {target: app, create_missing: true, add: ['everyone', 'dept-{department | LOWER}']}
mover:
  steps:
    - sync_identity: {target: app, attributes: {employee_number: '{employee_id}'}}
    - manage_relationships: {target: app, create_missing: true, add: ['everyone', 'dept-{department | LOWER}']}
leaver:
  steps:
    - deprovision_identity: {target: app}
`

// TestAuditKillNine: the --dev worker (its Temporal server, its audit
// store) is killed with SIGKILL twice while joiners, movers and leavers
// run against the SCIM peer, and started again on the same data
// directory each time; the second time, the changes in flight were made
// at the peer and their answers lost, so the steps' retries find them
// done. Then every account the peer holds has exactly one
// record of each effect it shows: created (or adopted by the retry of a
// create whose attempt the kill lost), disabled when it is, each group it
// is in added once and not removed, each group it left added and removed
// once, the mover's update once; 0 missing, 0 duplicated. The chain
// verifies.
func TestAuditKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the dev stack (skipped with -short)")
	}
	peer := scimtest.Start(t)
	// The worker talks to the peer through a proxy that, in phase 2, lets
	// every PATCH through and loses its answer: the kill finds changes
	// made whose steps never heard of them.
	px := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{})
	work := t.TempDir()
	policyPath := filepath.Join(work, "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(strings.ReplaceAll(killPolicy, "{{BASE_URL}}", px.Rewrite(peer.BaseURL))), 0o600))
	dataDir := filepath.Join(work, "data")
	start := func() (*devProc, client.Client) {
		t.Helper()
		// A short step timeout: the steps the killed worker held are
		// retried soon after the restart. Fresh ports each time: the data
		// directory is what the restart keeps.
		p, addr, _ := startDevOnEnv(t, dataDir, peertest.FreePort(t), peertest.FreePort(t), []string{"APP_SCIM_TOKEN=" + peer.Token},
			"--intake-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0", "--policy", policyPath, "--step-timeout", "10s")
		c, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
		require.NoError(t, err)
		return p, c
	}
	sc, err := scim.New(context.Background(), scim.Config{BaseURL: peer.BaseURL, Auth: scim.Auth{BearerToken: peer.Token}})
	require.NoError(t, err)
	ctx := context.Background()
	accounts := func() []connectors.Account {
		t.Helper()
		var all []connectors.Account
		for cursor := ""; ; {
			page, next, err := sc.ListAccounts(ctx, cursor, 200)
			require.NoError(t, err)
			all = append(all, page...)
			if next == "" {
				return all
			}
			cursor = next
		}
	}
	// killWhen SIGKILLs the worker once cond holds.
	killWhen := func(p *devProc, c client.Client, what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 5*time.Minute, 50*time.Millisecond, what)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		p.waitExit(t)
		c.Close()
		t.Logf("SIGKILL %s", what)
	}
	person := func(i int) map[string]string {
		return map[string]string{"employee_id": fmt.Sprintf("K%03d", i), "first_name": fmt.Sprintf("kay%03d", i), "last_name": "Nine", "department": "Eng"}
	}
	submit := func(c client.Client, ev hr.Event) {
		t.Helper()
		_, err := intake.Submit(ctx, c, ev)
		require.NoError(t, err, ev.EventID)
	}
	const hires, movers, leavers = 30, 10, 10

	// 1. Hires; killed once a third of the accounts exist.
	p, c := start()
	for i := range hires {
		submit(c, hr.Event{EventID: fmt.Sprintf("K%03d-hire", i), Type: hr.Hire, Employee: person(i)})
	}
	killWhen(p, c, "with hires in flight", func() bool { return len(accounts()) >= hires/3 })

	// 2. After the restart: changes and terminations, and more hires;
	// every change the peer makes answered to nobody; killed once many
	// such changes (movers' updates, leavers' disables, groups) are made.
	px.Set(hostile.SCIMSwitches{LoseWriteAnswers: true})
	p, c = start()
	for i := range movers {
		submit(c, hr.Event{EventID: fmt.Sprintf("K%03d-chg", i), Type: hr.Change,
			Employee: map[string]string{"employee_id": person(i)["employee_id"], "department": "Sales"}})
	}
	for i := movers; i < movers+leavers; i++ {
		submit(c, hr.Event{EventID: fmt.Sprintf("K%03d-term", i), Type: hr.Terminate, Employee: map[string]string{"employee_id": person(i)["employee_id"]}})
	}
	for i := hires; i < hires+10; i++ {
		submit(c, hr.Event{EventID: fmt.Sprintf("K%03d-hire", i), Type: hr.Hire, Employee: person(i)})
	}
	killWhen(p, c, "with movers, leavers and hires in flight, their changes made and unanswered", func() bool {
		return px.Faults(hostile.FaultLoseWriteAnswers) >= movers+leavers
	})
	t.Logf("%d changes made and their answers lost", px.Faults(hostile.FaultLoseWriteAnswers))

	// 3. The last restart finishes every run.
	px.Set(hostile.SCIMSwitches{})
	p, c = start()
	want := map[string]string{}
	for i := range hires + 10 {
		want[person(i)["employee_id"]] = contract.StatusActive
		if i >= movers && i < movers+leavers {
			want[person(i)["employee_id"]] = contract.StatusDeprovisioned
		}
	}
	require.Eventually(t, func() bool {
		for emp, status := range want {
			v, err := c.QueryWorkflow(ctx, contract.IdentityWorkflowID(emp), "", contract.QueryCurrent)
			var cr workflows.CurrentRun
			if err != nil || v.Get(&cr) != nil || cr.Status != status || cr.WorkflowID != "" || len(cr.Pending) > 0 {
				return false
			}
		}
		return true
	}, 10*time.Minute, time.Second, "every run done after the restarts")
	c.Close()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.waitExit(t)

	// 4. The records against the peer.
	st, err := auditdb.Open(ctx, filepath.Join(dataDir, "audit.db"))
	require.NoError(t, err)
	defer st.Close()
	recs, err := st.Records(ctx, auditdb.Filter{})
	require.NoError(t, err)
	byAccount := map[string][]audit.Record{}
	lost := 0
	for _, r := range recs {
		if r.AccountID != "" {
			byAccount[r.AccountID] = append(byAccount[r.AccountID], r)
		}
		if r.Action == audit.AccountAdopted || strings.Contains(r.Detail, activities.NoteEarlierAttempt) {
			lost++
		}
	}
	accts := accounts()
	require.Len(t, accts, hires+10)
	missing, duplicated, effects := 0, 0, 0
	check := func(acct connectors.Account, what string, got, want int) {
		t.Helper()
		effects += want
		switch {
		case got < want:
			missing += want - got
			t.Errorf("%s (%s): %s: %d records, want %d", acct.Attributes["user_name"], acct.ID, what, got, want)
		case got > want:
			duplicated += got - want
			t.Errorf("%s (%s): %s: %d records, want %d", acct.Attributes["user_name"], acct.ID, what, got, want)
		}
	}
	for _, acct := range accts {
		n := map[string]int{}
		for _, r := range byAccount[acct.ID] {
			action := r.Action
			if action == audit.AccountAdopted && strings.Contains(r.Detail, activities.NotePasswordSet) {
				action = audit.AccountCreated // the retry of a create the kill lost
			}
			n[action+" "+strings.ToLower(r.Group)]++
		}
		check(acct, "created", n[audit.AccountCreated+" "], 1)
		check(acct, "disabled", n[audit.AccountDisabled+" "], map[bool]int{true: 0, false: 1}[acct.Active])
		gs, err := sc.Memberships(ctx, acct.ID)
		require.NoError(t, err)
		in := map[string]bool{}
		for _, g := range gs {
			in[strings.ToLower(g.Name)] = true
			check(acct, "added to "+g.Name, n[audit.GroupAdded+" "+strings.ToLower(g.Name)], 1)
			check(acct, "removed from "+g.Name, n[audit.GroupRemoved+" "+strings.ToLower(g.Name)], 0)
		}
		moved := acct.Attributes["department"] == "Sales"
		check(acct, "updated", n[audit.AccountUpdated+" "], map[bool]int{true: 1, false: 0}[moved])
		if moved {
			assert.False(t, in["dept-eng"], acct.Attributes["user_name"])
			check(acct, "added to dept-eng", n[audit.GroupAdded+" dept-eng"], 1)
			check(acct, "removed from dept-eng", n[audit.GroupRemoved+" dept-eng"], 1)
		}
		delete(byAccount, acct.ID)
	}
	assert.Empty(t, byAccount, "records name accounts the peer does not hold")
	t.Logf("%d effects on %d accounts: %d missing, %d duplicated; %d records name an attempt the kill lost", effects, len(accts), missing, duplicated, lost)
	v, err := st.Verify(ctx)
	require.NoError(t, err)
	assert.Nil(t, v.Break)
}
