package simulate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/hr"
)

// scopedPolicy has two scoped joiner flows: contractors get a contractors
// group, employees the staff group; everyone else (interns) the joiner's.
const scopedPolicy = `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
flows:
  - name: contractors
    kind: joiner
    scope: 'employee_type eq "contractor"'
    steps:
      - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'c{employee_id}'}}
      - manage_relationships: {target: app, add: [contractors]}
  - name: employees
    kind: joiner
    scope: 'employee_type eq "employee"'
    steps:
      - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'e{employee_id}'}}
      - manage_relationships: {target: app, add: [staff]}
joiner:
  - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'x{employee_id}'}}
mover:
  - when: 'changed(department)'
    notify: {url: https://hooks.example.com/moved}
`

// mixed is n people: every third a contractor, every third an intern.
func mixed(n int) (func(func(Row) bool), map[string]int) {
	want := map[string]int{}
	kinds := []string{"employee", "contractor", "intern"}
	flows := map[string]string{"employee": "employees", "contractor": "contractors", "intern": "joiner"}
	var people []map[string]string
	for i := range n {
		k := kinds[i%3]
		want[flows[k]]++
		people = append(people, map[string]string{"employee_id": fmt.Sprintf("E%04d", i), "employee_type": k})
	}
	return rows(people...), want
}

func TestScopedFlowsPopulation(t *testing.T) {
	p := load(t, scopedPolicy)
	people, want := mixed(1000)
	rep, err := Run(t.Context(), people, Options{Policy: p})
	require.NoError(t, err)
	assert.Empty(t, rep.Conflicts)
	assert.Equal(t, want, rep.Flows)
	groups := map[string]int{}
	for _, s := range rep.Steps {
		for g, n := range s.Groups {
			groups[s.Flow+" "+g] = n
		}
	}
	assert.Equal(t, map[string]int{"contractors +contractors": want["contractors"], "employees +staff": want["employees"]}, groups)
	assert.Equal(t, 1000, rep.Totals[Create])
}

// TestAgainstMoves: narrowing the contractors' scope to one country moves
// the others out of it (into the joiner flow); a changed when moves
// people into or out of a step.
func TestAgainstMoves(t *testing.T) {
	old := load(t, scopedPolicy)
	narrowed := load(t, `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
flows:
  - name: contractors
    kind: joiner
    scope: 'employee_type eq "contractor" and country_code eq "DE"'
    steps:
      - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'c{employee_id}'}}
      - manage_relationships: {target: app, add: [contractors]}
  - name: employees
    kind: joiner
    scope: 'employee_type eq "employee"'
    steps:
      - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'e{employee_id}'}}
      - manage_relationships: {target: app, add: [staff]}
joiner:
  - sync_identity: {target: app, create_allowed: true, attributes: {user_name: 'x{employee_id}'}}
mover:
  - when: 'changed(department) and department eq "Sales"'
    notify: {url: https://hooks.example.com/moved}
`)
	var people []map[string]string
	for i := range 30 {
		country := "US"
		if i%2 == 0 {
			country = "DE"
		}
		people = append(people, map[string]string{"employee_id": fmt.Sprintf("C%02d", i), "employee_type": "contractor", "country_code": country})
	}
	rep, err := Run(t.Context(), rows(people...), Options{Policy: narrowed, Against: old})
	require.NoError(t, err)
	assert.Equal(t, []Move{
		{Flow: "joiner", In: 15},
		{Flow: "joiner", Step: "app.sync_identity", In: 15},
		{Flow: "contractors", Out: 15},
		{Flow: "contractors", Step: "app.sync_identity", Out: 15},
		{Flow: "contractors", Step: "app.manage_relationships", Out: 15},
	}, rep.Moves)

	// Movers: previous_<attr> columns are the values before the change.
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	changes := func(yield func(Row) bool) {
		for i, prev := range []string{"Eng", "Sales", "Eng", "Ops"} {
			ev := hr.Event{Type: hr.Change, EffectiveAt: at, Employee: map[string]string{
				"employee_id": fmt.Sprintf("M%d", i), "department": "Sales", "previous_department": prev}}
			ev.Normalize()
			if !yield(Row{Line: i + 2, Event: ev}) {
				return
			}
		}
	}
	rep, err = Run(t.Context(), changes, Options{Policy: narrowed, Against: old})
	require.NoError(t, err)
	assert.Empty(t, rep.Moves, "moving into Sales: changed(department) held before, and department eq Sales holds too")
	rep, err = Run(t.Context(), changes, Options{Policy: old})
	require.NoError(t, err)
	require.Len(t, rep.Steps, 1)
	assert.Equal(t, 3, rep.Steps[0].Counts[Other], "the one already in Sales did not change department")
}
