package simulate

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
)

const basePolicy = `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
  portal: {type: rest, base_url: https://portal.example.com, auth: {type: bearer, token_env: PORTAL_TOKEN}}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        attributes:
          user_name: '{first_name | ASCII | LOWER}{last_name | ASCII | LOWER}'
          external_id: '{UUID}'
          title: '{title}'
        fallbacks:
          user_name: ['e{employee_id}']
    - manage_relationships:
        target: app
        add: ['dept-{department | LOWER | LOOKUP, "depts", "group"}']
    - send_rest_request:
        target: portal
        method: POST
        url: /welcome
lookups:
  depts:
    csv: |
      key,group
      sales,sales
      eng,engineering
`

func load(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(src))
	require.NoError(t, err)
	return p
}

func rows(people ...map[string]string) func(func(Row) bool) {
	return func(yield func(Row) bool) {
		for i, e := range people {
			ev := hr.Event{Type: hr.Hire, Employee: e, EffectiveAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
			ev.Normalize()
			if !yield(Row{Line: i + 2, Event: ev}) {
				return
			}
		}
	}
}

func person(id, first, last, dept string) map[string]string {
	return map[string]string{"employee_id": id, "first_name": first, "last_name": last, "department": dept, "title": "Engineer"}
}

func TestRun(t *testing.T) {
	p := load(t, basePolicy)
	rep, err := Run(t.Context(), rows(
		person("E1", "Ann", "Lee", "eng"),
		person("E2", "Ann", "Lee", "sales"), // takes the fallback e E2
		person("E3", "Bo", "Ng", "hr"),      // no LOOKUP row: stops at the group step
		person("E1", "Ann", "Lee", "eng"),   // the same person again is no conflict
	), Options{Policy: p, Examples: 1})
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Rows)
	require.Len(t, rep.Conflicts, 1)
	c := rep.Conflicts[0]
	assert.Equal(t, RenderError, c.Kind)
	assert.Equal(t, "E3", c.EmployeeID)
	assert.Equal(t, "app.manage_relationships", c.Step)
	assert.Contains(t, c.Message, `table depts has no row with key "hr"`)
	assert.Equal(t, map[string]int{"app": 1}, rep.Resolved)
	assert.Equal(t, map[string]int{Create: 4, GroupAdd: 3, Other: 3}, rep.Totals, "E3's run stops before the REST step")
	require.Len(t, rep.Steps, 3)
	sync := rep.Steps[0]
	require.Len(t, sync.Examples, 1, "Examples per kind")
	assert.Equal(t, "user_name=annlee", sync.Examples[0].Detail)
	assert.Equal(t, map[string]int{"+dept-engineering": 2, "+dept-sales": 1}, rep.Steps[1].Groups)
}

func TestRunAgainst(t *testing.T) {
	old := load(t, basePolicy)
	cur := load(t, basePolicy+`
leaver:
  steps:
    - deprovision_identity: {target: app}
`)
	// The new policy drops the REST step, renames the title and adds a leaver.
	cur.Joiner.Steps = cur.Joiner.Steps[:2]
	cur.Joiner.Steps[0].SyncIdentity.Attributes["title"] = "{title | UPPER}"
	people := rows(person("E1", "Ann", "Lee", "eng"), person("E2", "Bo", "Ng", "sales"))
	rep, err := Run(t.Context(), people, Options{Policy: cur, Against: old})
	require.NoError(t, err)
	assert.Empty(t, rep.Conflicts)
	assert.Equal(t, map[string]int{Update: 2, Dropped: 2}, rep.Totals,
		"the UUID is the same under both policies; only the title changes")
	i := slices.IndexFunc(rep.Steps, func(s *StepReport) bool { return s.Step == "app.sync_identity" })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, map[string]int{"title": 2}, rep.Steps[i].Attributes)
	assert.Equal(t, "title=ENGINEER", rep.Steps[i].Examples[0].Detail)
}

func TestRunRejectsRows(t *testing.T) {
	p := load(t, basePolicy)
	rep, err := Run(t.Context(), func(yield func(Row) bool) {
		_ = yield(Row{Line: 2, Reject: "malformed CSV: bare quote"}) &&
			yield(Row{Line: 3, Event: hr.Event{Type: "fire", Employee: map[string]string{"employee_id": "E1"}}})
	}, Options{Policy: p})
	require.NoError(t, err)
	require.Len(t, rep.Rejected, 2)
	assert.Equal(t, "malformed CSV: bare quote", rep.Rejected[0].Reason)
	assert.Contains(t, rep.Rejected[1].Reason, `unknown event type "fire"`)
	assert.Empty(t, rep.Totals)
}

// Issue 27: identifiers servers refuse — a space before @, 65 octets before
// @, beyond Okta's and Entra's own limits — are conflicts of the dry run,
// as they are failures of the run; two employee IDs differing only by case
// are reported as one person sent twice.
func TestRunIdentifierRuleAndEmployeeIDCase(t *testing.T) {
	p := load(t, `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
  entra: {type: entra, tenant: acme.com, client_id_env: ID, client_secret_env: SECRET}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        attributes:
          user_name: '{first_name | LOWER}.{last_name | LOWER}@acme.com'
    - sync_identity:
        target: okta
        create_allowed: true
        attributes:
          login: '{first_name | LOWER}@{title}acme.com'
          email: '{$target.login}'
          first_name: '{first_name}'
          last_name: '{last_name}'
    - sync_identity:
        target: entra
        create_allowed: true
        attributes:
          user_name: '{first_name | LOWER}{department}@acme.com'
`)
	long := strings.Repeat("a", 60)
	rep, err := Run(t.Context(), rows(
		person("E1", "Sean", "O Suilleabhain", ""),
		person("E2", "Augustus", "De Morgan", ""),
		person("E3", long, "Bcdef", ""), // 66 octets before @
		map[string]string{"employee_id": "E4", "first_name": strings.Repeat("x", 50), "last_name": "y", "title": strings.Repeat("d", 45) + "."},
		map[string]string{"employee_id": "E5", "first_name": "x", "last_name": "z", "department": "+sales"},
		person("ab12345", "Ann", "Lee", ""),
		person("AB12345", "Ann", "Lee", ""),
	), Options{Policy: p})
	require.NoError(t, err)
	got := map[string]string{}
	for _, c := range rep.Conflicts {
		got[c.EmployeeID] = c.Kind + " " + c.Target + " " + c.Message
	}
	assert.Contains(t, got["E1"], InvalidIdentifier+" app ")
	assert.Contains(t, got["E1"], `"sean.o suilleabhain@acme.com": the part before @ contains white space`)
	assert.Contains(t, got["E2"], `"augustus.de morgan@acme.com": the part before @ contains white space`)
	assert.Contains(t, got["E3"], "66 octets long (at most 64)")
	assert.Contains(t, got["E4"], InvalidIdentifier+" okta ")
	assert.Contains(t, got["E4"], "okta login is 105 characters long (at most 100")
	assert.Contains(t, got["E5"], InvalidIdentifier+" entra ")
	assert.Contains(t, got["E5"], `entra user_principal_name may not contain '+' before @`)
	assert.Contains(t, got["AB12345"], EmployeeIDCase)
	assert.Contains(t, got["AB12345"], "differs from employee ab12345's only by case")
	assert.NotContains(t, got, "ab12345", "the first of them is evaluated as usual")
	assert.Equal(t, 1, rep.ConflictCounts[EmployeeIDCase])
}
