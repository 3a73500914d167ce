package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/hr"
)

func TestChangeConditions(t *testing.T) {
	prev := map[string]string{"department": "Engineering", "title": "Engineer"}
	now := map[string]string{"department": "sales", "title": "Engineer"}
	for _, tt := range []struct {
		when string
		want bool
	}{
		{`changed(department)`, true},
		{`changed(title)`, false},
		{`changed(department) and department eq "Sales"`, true},
		{`changed(title) and department eq "Sales"`, false},
		{`previous.department eq "Engineering"`, true},
		{`previous.department ne "Sales" and department eq "Sales"`, true},
		{`not changed(department)`, false},
		{`CHANGED(department)`, true},
		{`changed(middle_name)`, false},
	} {
		got, err := EvalChange(tt.when, now, prev)
		require.NoError(t, err, tt.when)
		assert.Equal(t, tt.want, got, tt.when)
		c, err := CompileCondition(tt.when)
		require.NoError(t, err)
		assert.True(t, c.ReadsChange(), tt.when)
	}
	// No change: previous.x is x, changed(x) false (a state).
	ok, err := EvalCondition(`changed(department) or previous.department ne "sales"`, now)
	require.NoError(t, err)
	assert.False(t, ok)
	// A person jml knew nothing of: every previous value is empty.
	ok, err = EvalChange(`changed(department) and previous.department eq ""`, now, nil)
	require.NoError(t, err)
	assert.True(t, ok)

	for when, want := range map[string]string{
		`chnged(department)`:            "column 1: unknown function chnged (want changed) (did you mean changed?)",
		`lower(department) eq "x"`:      "column 1: unknown function lower",
		`changed("department")`:         "column 9: changed: want one attribute name",
		`changed(department`:            "missing )",
		`changed(previous.department)`:  "want one attribute name",
		`previous. eq "x"`:              "want previous.<attribute>",
		`manager.department eq "x"`:     "a dotted name must be previous.<attribute>",
		`previous.a.b eq "x"`:           "want previous.<attribute>",
		`changed(department) eq "true"`: `unexpected "eq"`,
	} {
		_, err := CompileCondition(when)
		assert.ErrorContains(t, err, want, when)
	}
}

func TestConditionAttributesChecked(t *testing.T) {
	for _, tt := range []struct {
		name, extra string
		want        []string
	}{
		{"typo in when", `
mover:
  - when: 'departmnt eq "Sales"'
    notify: {url: https://hooks.acme.com/x}`,
			[]string{`mover.steps[0].when: departmnt eq "Sales": no HR field, required_attributes, import column or source provides attribute departmnt (did you mean department?); if your HR system sends it, declare it: optional: [departmnt]`}},
		{"typo in previous", `
mover:
  - when: 'previous.departmnt ne "Sales"'
    notify: {url: https://hooks.acme.com/x}`,
			[]string{`mover.steps[0].when: previous.departmnt ne "Sales": no HR field, required_attributes, import column or source provides attribute departmnt (did you mean department?)`}},
		{"typo in changed", `
mover:
  - when: 'changed(departmnt)'
    notify: {url: https://hooks.acme.com/x}`,
			[]string{`provides attribute departmnt (did you mean department?)`}},
		{"typo in a template", `
mover:
  - notify: {url: 'https://hooks.acme.com/{departmnt}'}`,
			[]string{`mover.steps[0].notify.url: {departmnt}: no HR field, required_attributes, import column or source provides attribute departmnt (did you mean department?)`}},
		{"change in a joiner", `
flows:
  - {name: sales, kind: joiner, scope: 'changed(department)', steps: [{notify: {url: https://hooks.acme.com/x}}]}`,
			[]string{`flows[0].scope: changed() and previous.* read the attributes before a change: only mover flows have one (a joiner has no earlier values)`}},
		{"change on a grant", `
mover:
  - when: 'changed(department) and department eq "Sales"'
    manage_relationships: {target: okta, add: [sales]}`,
			[]string{`mover.steps[0].when: manage_relationships add follows its condition`}},
		{"grant in a change-scoped flow", `
flows:
  - name: dept-moves
    kind: mover
    scope: changed(department)
    steps: [{manage_relationships: {target: okta, add: [movers]}}]`,
			[]string{`flows[0].steps[0]: manage_relationships add: a grant follows its condition, and this flow's scope reads the change`}},
		{"bad flows", `
flows:
  - {kind: joinr, steps: []}
  - {name: joiner, kind: joiner}
  - {name: a, kind: mover}
  - {name: a, kind: mover}`,
			[]string{`flows[0]: name: required`, `flows[0].kind: kind "joinr": want one of joiner, mover, leaver, rehire (did you mean joiner?)`,
				`flows[1].name: flow name "joiner" is a kind's own flow`, `flows[3].name: flow name "a" is also flows[2]'s`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(goodPolicy+tt.extra))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	// Declared, required or mapped: accepted.
	for _, extra := range []string{
		"optional: [departmnt]\nmover:\n  - {when: 'changed(departmnt)', notify: {url: https://hooks.acme.com/x}}",
		"required_attributes: {change: [squad]}\nmover:\n  - {when: 'previous.squad ne \"a\"', notify: {url: https://hooks.acme.com/x}}",
		"import: {columns: {Squad: squad}}\nmover:\n  - {when: 'squad pr', notify: {url: 'https://hooks.acme.com/{squad}'}}",
	} {
		_, err := Parse("p.yaml", []byte(goodPolicy+"\n"+extra))
		assert.NoError(t, err, extra)
	}
}

const scopedPolicy = goodPolicy + `
flows:
  - name: contractors
    kind: joiner
    scope: 'employee_type eq "contractor"'
    offset: -1d
    steps:
      - manage_relationships: {target: okta, add: [contractors]}
  - name: sales-moves
    kind: mover
    scope: 'changed(department) and department eq "Sales"'
    steps:
      - notify: {url: https://hooks.acme.com/welcome-to-sales}
mover:
  - when: 'employee_type eq "contractor"'
    manage_relationships: {target: okta, add: [contractors, vpn]}
  - name: eng
    when: 'department eq "Engineering"'
    manage_relationships: {target: okta, add: [vpn, 'eng-{employee_type}']}
  - when: 'changed(department)'
    notify: {url: https://hooks.acme.com/moved}
`

func TestSelectFlow(t *testing.T) {
	p, err := Parse("p.yaml", []byte(scopedPolicy))
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	plan := func(typ string, now, prev map[string]string) *Plan {
		now["employee_id"] = "E1"
		pl, err := p.Plan(hr.Event{EventID: "e", Type: typ, EffectiveAt: at, Employee: now}, prev)
		require.NoError(t, err)
		return pl
	}
	c := plan(hr.Hire, map[string]string{"employee_type": "Contractor", "department": "x"}, nil)
	assert.Equal(t, "contractors", c.Flow)
	assert.Equal(t, at.Add(-24*time.Hour), c.RunAt, "the scoped flow's offset")
	require.Len(t, c.Steps, 1)
	e := plan(hr.Hire, map[string]string{"employee_type": "employee", "department": "x"}, nil)
	assert.Equal(t, "joiner", e.Flow, "the kind's own flow is tried last")
	assert.Len(t, e.Steps, 3)
	assert.Equal(t, "joiner", plan(hr.Rehire, map[string]string{"employee_type": "employee"}, nil).Flow, "no rehire flow: the joiner's")

	// A title change runs no department-triggered step; a move into Sales
	// runs the sales flow (first match), any other department move the
	// mover's changed(department) step.
	title := plan(hr.Change, map[string]string{"department": "Engineering", "title": "Lead"}, map[string]string{"department": "Engineering", "title": "Eng"})
	assert.Equal(t, "mover", title.Flow)
	assert.Equal(t, "condition is false: changed(department)", title.Steps[2].SkipReason)
	sales := plan(hr.Change, map[string]string{"department": "Sales"}, map[string]string{"department": "Engineering"})
	assert.Equal(t, "sales-moves", sales.Flow)
	assert.Equal(t, `changed(department) and department eq "Sales"`, sales.Scope)
	again := plan(hr.Change, map[string]string{"department": "Sales", "title": "VP"}, map[string]string{"department": "Sales", "title": "Lead"})
	assert.Equal(t, "mover", again.Flow, "already in Sales: the sales flow does not run again")

	// Grant rules carry their flow's scope.
	assert.Contains(t, p.GroupRules("okta"), GroupRule{When: `employee_type eq "contractor"`, Group: "contractors"})
}

func TestRevocations(t *testing.T) {
	p, err := Parse("p.yaml", []byte(scopedPolicy))
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	move := func(now, prev map[string]string) []PlannedStep {
		now["employee_id"], prev["employee_id"] = "E1", "E1"
		pl, err := p.Plan(hr.Event{EventID: "e", Type: hr.Change, EffectiveAt: at, Employee: now}, prev)
		require.NoError(t, err)
		var out []PlannedStep
		for _, s := range pl.Steps {
			if len(s.Revokes) > 0 {
				out = append(out, s)
			}
		}
		return out
	}
	// Contractor → employee: contractors and vpn go; everyone and
	// dept-sales (unconditional) are not conditional grants.
	rs := move(map[string]string{"employee_type": "employee", "department": "Sales"}, map[string]string{"employee_type": "contractor", "department": "Sales"})
	require.Len(t, rs, 1)
	assert.Equal(t, "okta.revoke", rs[0].Name)
	assert.Equal(t, []string{"contractors", "vpn"}, rs[0].Revokes)
	assert.Equal(t, []string{"contractors", "vpn"}, rs[0].Step.ManageRelationships.Remove)
	assert.Equal(t, ActionManageRelationships, rs[0].Action)

	// In Engineering vpn is still granted (by the eng rule): it stays.
	// The eng group was rendered from the old employee type: it goes.
	rs = move(map[string]string{"employee_type": "employee", "department": "Engineering"}, map[string]string{"employee_type": "contractor", "department": "Engineering"})
	require.Len(t, rs, 1)
	assert.Equal(t, []string{"contractors"}, rs[0].Revokes, "vpn is still granted; eng-{employee_type} is the eng step's own diff")

	// Leaving Engineering as an employee: vpn and eng-employee go.
	rs = move(map[string]string{"employee_type": "employee", "department": "Sales"}, map[string]string{"employee_type": "employee", "department": "Engineering"})
	require.Len(t, rs, 1)
	assert.Equal(t, []string{"vpn", "eng-employee"}, rs[0].Revokes)

	// Nothing turned false: no revoke step.
	assert.Empty(t, move(map[string]string{"employee_type": "contractor", "title": "b"}, map[string]string{"employee_type": "contractor", "title": "a"}))
}
