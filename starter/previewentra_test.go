package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/targets"
)

// entraManagerPolicy: a joiner whose account carries its manager (HR's
// manager_id, an employee ID) and two groups granted in the create, and a
// leaver that drops the groups.
func entraManagerPolicy(graph *graphtest.Server) string {
	o := graph.Options()
	return fmt.Sprintf(`targets:
  app: {type: entra, tenant: %s, client_id_env: ENTRA_ID, client_secret_env: ENTRA_SECRET, base_url: %s, authority_url: %s}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate
        groups: ['everyone', 'dept-{department}']
        attributes:
          user_principal_name: '{first_name | LOWER}.{last_name | LOWER}@example.com'
          display_name: '{first_name} {last_name}'
          employee_id: '{employee_id}'
          manager_id: '{manager_id}'
leaver:
  steps:
    - deprovision_identity: {target: app, remove_groups: true}
`, o.Tenant, graph.GraphURL(), graph.AuthorityURL())
}

func entraHire(now time.Time) hr.Event {
	return hr.Event{EventID: "h-E0042", Type: hr.Hire, EffectiveAt: now, Employee: map[string]string{
		"employee_id": "E0042", "first_name": "Ada", "last_name": "Lovelace", "department": "Engineering", "manager_id": "E0007"}}
}

// Issue 33 item 9: an offline preview of a valid Entra joiner with a
// manager and groups, and of a leaver that drops groups, renders the
// $batch the run sends and says the steps would run (it said "would fail
// … $batch answered 0 of 2 requests", and that the disable was missing).
func TestPreviewOfflineRendersEntraBatch(t *testing.T) {
	graph := graphtest.New(t, graphtest.Options{Domains: []string{"example.com"}})
	p, err := policy.Parse("entra.yaml", []byte(entraManagerPolicy(graph)))
	require.NoError(t, err)
	o := graph.Options()
	env := map[string]string{"ENTRA_ID": o.ClientID, "ENTRA_SECRET": o.ClientSecret}
	now := time.Now().UTC()

	run := func(ev hr.Event, st known) *previewResult {
		rec := &targets.Recorder{} // offline: nothing reaches the tenant
		pv, err := newPreviewer(t.Context(), p, rec, previewOptions{getenv: getenvOf(env), insecure: true})
		require.NoError(t, err)
		res, err := pv.run(t.Context(), ev, st)
		require.NoError(t, err)
		return res
	}
	joiner := run(entraHire(now), known{})
	require.NotEmpty(t, joiner.Steps)
	s := joiner.Steps[0]
	assert.Equal(t, verdictCreate, s.Verdict, "%s %v", s.Error, s.Calls)
	var batch string
	for _, c := range s.Calls {
		if strings.HasSuffix(c.URL, "/$batch") {
			batch = c.Body
		}
	}
	require.NotEmpty(t, batch, "the manager and the groups go in one $batch: %v", s.Calls)
	assert.Contains(t, batch, "/manager/$ref")
	assert.Contains(t, batch, "Person_E0007", "the manager's linked account, not GET /users/E0007")
	assert.Equal(t, 2, strings.Count(batch, "/members/$ref"))
	assert.Equal(t, 0, graph.Requests(), "offline: nothing sent")

	leaver := run(hr.Event{EventID: "t-E0042", Type: hr.Terminate, EffectiveAt: now,
		Employee: map[string]string{"employee_id": "E0042"}}, assumeLinked(p))
	require.NotEmpty(t, leaver.Steps)
	l := leaver.Steps[0]
	assert.Equal(t, verdictRun, l.Verdict, "%s %v", l.Error, l.Calls)
	require.NotEmpty(t, l.Calls)
	// First the memberships remove_groups is about to drop (the audit names
	// each, as in the run), then the disable in the $batch with the memberOf read.
	assert.True(t, strings.HasSuffix(strings.SplitN(l.Calls[0].URL, "?", 2)[0], "/memberOf"), "%v", l.Calls[0])
	var disable string
	for _, c := range l.Calls {
		if strings.HasSuffix(c.URL, "/$batch") {
			disable = c.Body
		}
	}
	assert.Contains(t, disable, `"accountEnabled":false`, "the disable, in the $batch with the memberOf read")
}

// Issue 33 items 8 and 9: with the manager linked (the directory holds
// E0007's Entra account), the preview of a joiner with a manager and two
// groups sends exactly the requests the run sends, $batch included, and
// the manager is E0007's account, resolved through the link.
func TestPreviewEqualsRunEntraManagerAndGroups(t *testing.T) {
	graph := graphtest.New(t, graphtest.Options{Domains: []string{"example.com"}})
	p, err := policy.Parse("entra.yaml", []byte(entraManagerPolicy(graph)))
	require.NoError(t, err)
	o := graph.Options()
	boss := graph.AddUser(map[string]any{"userPrincipalName": "grace@example.com", "displayName": "Grace", "employeeId": "E0007"})
	pt := peerTarget{name: "entra", uid: "user_principal_name", entity: "EntraUser", live: http.DefaultTransport,
		env: map[string]string{"ENTRA_ID": o.ClientID, "ENTRA_SECRET": o.ClientSecret},
		dir: activities.StaticDirectory{{EmployeeID: "E0007", Accounts: map[string]string{"app": boss}}}}
	ensureGroups(t, p, pt, "everyone", "dept-Engineering")

	ev := entraHire(time.Now().UTC())
	pre := previewOf(t, p, pt, ev, known{})
	run, after := runOf(t, p, pt, ev, known{})
	require.True(t, after.found, "the joiner completed")
	assert.Equal(t, run.wire(), pre.wire(), "the preview's requests are the run's, byte for byte")
	assert.Equal(t, run.verdicts, pre.verdicts)
	wire := strings.Join(run.wire(), "\n")
	assert.Contains(t, wire, "/$batch")
	assert.NotContains(t, wire, "/users/E0007", "an employee ID is never sent as an object ID")
	assert.Equal(t, boss, graph.Manager(after.Accounts["app"]), "the manager is E0007's account")
}
