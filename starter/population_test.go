package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/simulate"
)

// populationPolicy: okta for employees (logins without fallbacks), a SCIM
// app for everyone (user names with three NEXT_NUMBER values).
const populationPolicy = `
targets:
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
  app:  {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
required_attributes: [first_name, last_name, department]
joiner:
  steps:
    - when: department ne "Contractors"
      sync_identity:
        target: okta
        create_allowed: true
        attributes:
          login: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com'
          email: '{$target.login}'
          first_name: '{first_name}'
          last_name: '{last_name}'
          department: '{department}'
        groups: [everyone]
    - sync_identity:
        target: app
        create_allowed: true
        attributes:
          user_name: '{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER}'
          employee_id: '{employee_id}'
        fallbacks:
          user_name: ['{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | NEXT_NUMBER, 2, 3}']
    - when: department ne "Contractors"
      manage_relationships:
        target: okta
        add: ['dept-{department | LOWER}']
mover:
  steps:
    - sync_identity:
        target: okta
        attributes:
          login: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com'
          department: '{department}'
    - manage_relationships:
        target: okta
        add: ['dept-{department | LOWER}']
leaver:
  steps:
    - deprovision_identity: {target: okta, remove_groups: true}
    - delete_identity: {target: app, after: 30d}
`

// planted is what genPopulation put into the file.
type planted struct {
	rows, hires, changes, terminates int
	// conflicts: kind → employee IDs.
	conflicts map[string][]string
	// exhaustedGroups × (group size - 4) people find no user name; the
	// others of each group take zexhaust, zexhaust2, 3, 4.
	contractors, contractorsCreated, resolved int
}

// genPopulation writes an HR export of n rows with planted conflicts.
func genPopulation(tb testing.TB, path string, n int) planted {
	f, err := os.Create(path)
	require.NoError(tb, err)
	defer f.Close()
	w := csv.NewWriter(f)
	p := planted{rows: n, conflicts: map[string][]string{}}
	write := func(id, first, last, dept, typ string) {
		require.NoError(tb, w.Write([]string{id, first, last, dept, typ, "2026-12-01"}))
	}
	require.NoError(tb, w.Write([]string{"employee_id", "first_name", "last_name", "department", "type", "start_date"}))
	plant := func(kind, id string) { p.conflicts[kind] = append(p.conflicts[kind], id) }
	row := 0
	next := func() string { row++; return fmt.Sprintf("E%06d", row) }

	// Two groups of six contractors with one name: user names zexhaust,
	// zexhaust2, zexhaust3, zexhaust4, then NEXT_NUMBER is exhausted.
	for _, last := range []string{"Exhaust", "Xhaust"} {
		for i := range 6 {
			id := next()
			write(id, "Zed", last, "Contractors", "hire")
			p.contractors++
			switch {
			case i >= 4:
				plant(simulate.NextNumberExhausted, id)
			default:
				p.contractorsCreated++
				if i > 0 {
					p.resolved++
				}
			}
		}
	}
	// Names ASCII empties, quotes, backslashes: identifiers no account can have.
	for _, name := range [][2]string{{"小明", "王"}, {"美咲", "佐藤"}, {"지훈", "김"}, {"Анна", "Иванова"},
		{"Sean", `O"Neil`}, {"Mary", "Lee\tKim"}, {"Ann", `Lee\`}, {"Bo", "Ng\x01"}} {
		id := next()
		write(id, name[0], name[1], "Sales", "hire")
		plant(simulate.InvalidIdentifier, id)
	}
	// Required department missing.
	for range 7 {
		id := next()
		write(id, "Req", fmt.Sprintf("Missing%d", row), "", "hire")
		plant(simulate.MissingRequired, id)
	}
	var dupOf []string // names of ordinary hires, reused below
	ordinary := n - row - 10
	every := max(ordinary/10/25*25, 25) // spread the reused names over the file
	for i := range ordinary {
		id := next()
		first, last := "Ann", fmt.Sprintf("Person%d", row)
		switch {
		case i%25 == 3:
			write(id, first, last, "Sales", "terminate")
			p.terminates++
		case i%25 == 7:
			write(id, first, last, "Engineering", "change")
			p.changes++
		default:
			write(id, first, last, []string{"Sales", "Engineering", "Support"}[i%3], "hire")
			p.hires++
			if len(dupOf) < 10 && i%every == 0 {
				dupOf = append(dupOf, last)
			}
		}
	}
	// Ten people whose login an earlier hire already renders (no fallback).
	for _, last := range dupOf {
		id := next()
		write(id, "Ann", last, "Support", "hire")
		plant(simulate.DuplicateIdentifier, id)
	}
	require.Len(tb, dupOf, 10)
	w.Flush()
	require.NoError(tb, w.Error())
	require.Equal(tb, n, row)
	return p
}

func writePolicy(tb testing.TB, dir, name, body string) string {
	path := filepath.Join(dir, name)
	require.NoError(tb, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// Every planted conflict is reported and every count is exact.
func TestPopulationDryRun50k(t *testing.T) {
	dir := t.TempDir()
	pol := writePolicy(t, dir, "policy.yaml", populationPolicy)
	csvPath := filepath.Join(dir, "people.csv")
	p := genPopulation(t, csvPath, 50_000)

	code, out, errs := runCmd(t, "preview", "--json", "--policy", pol, "--population", csvPath)
	require.Equal(t, 1, code, "conflicts exit 1: %s", errs)
	assert.Empty(t, errs, "no progress bar when stderr is not a terminal")
	var res populationResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, p.rows, res.Rows)
	assert.Empty(t, res.Rejected)

	got := map[string][]string{}
	for _, c := range res.Conflicts {
		got[c.Kind] = append(got[c.Kind], c.EmployeeID)
		assert.Contains(t, c.Message, c.EmployeeID, "a conflict names the person")
	}
	for kind, ids := range p.conflicts {
		assert.ElementsMatch(t, ids, got[kind], kind)
		assert.Equal(t, len(ids), res.ConflictCounts[kind], kind)
	}
	assert.Len(t, res.Conflicts, 10+4+8+7)
	for _, c := range res.Conflicts {
		switch c.Kind {
		case simulate.DuplicateIdentifier:
			assert.Equal(t, "okta", c.Target)
			assert.Equal(t, "login", c.Attribute)
			assert.NotEmpty(t, c.Other, "names who holds it")
		case simulate.InvalidIdentifier:
			assert.Equal(t, "login", c.Attribute)
		case simulate.MissingRequired:
			assert.Equal(t, "department", c.Attribute)
		case simulate.NextNumberExhausted:
			assert.Equal(t, "app", c.Target)
			assert.Equal(t, "user_name", c.Attribute)
		}
	}

	step := func(flow, name string) *simulate.StepReport {
		i := slices.IndexFunc(res.Steps, func(s *simulate.StepReport) bool { return s.Flow == flow && s.Step == name })
		require.GreaterOrEqual(t, i, 0, "%s %s", flow, name)
		return res.Steps[i]
	}
	hires := p.hires // ordinary hires: no conflict
	assert.Equal(t, map[string]int{"create": hires, "group_add": hires}, step("joiner", "okta.sync_identity").Counts)
	assert.Equal(t, map[string]int{"+everyone": hires}, step("joiner", "okta.sync_identity").Groups)
	assert.Equal(t, map[string]int{"create": hires + p.contractorsCreated}, step("joiner", "app.sync_identity").Counts)
	assert.Equal(t, map[string]int{"group_add": hires}, step("joiner", "okta.manage_relationships").Counts)
	assert.Equal(t, map[string]int{"update": p.changes}, step("mover", "okta.sync_identity").Counts)
	assert.Equal(t, map[string]int{"department": p.changes}, step("mover", "okta.sync_identity").Attributes,
		"the login is the unique identifier: a linked account keeps it")
	assert.Equal(t, map[string]int{"group_add": p.changes}, step("mover", "okta.manage_relationships").Counts)
	assert.Equal(t, map[string]int{"disable": p.terminates, "group_remove": p.terminates}, step("leaver", "okta.deprovision_identity").Counts)
	assert.Equal(t, map[string]int{"delete": p.terminates}, step("leaver", "app.delete_identity").Counts)
	assert.Equal(t, map[string]int{"create": 2*hires + p.contractorsCreated, "group_add": 2*hires + p.changes,
		"update": p.changes, "disable": p.terminates, "group_remove": p.terminates, "delete": p.terminates}, res.Totals)
	assert.Equal(t, map[string]int{"app": p.resolved}, res.Resolved)
	ex := step("joiner", "okta.sync_identity").Examples
	require.NotEmpty(t, ex)
	assert.Equal(t, "create", ex[0].Kind)
	assert.Contains(t, ex[0].Detail, "login=ann.person")
}

// With --against only what the change alters is reported, and conflicts
// both policies have are counted, not listed.
func TestPopulationAgainst(t *testing.T) {
	dir := t.TempDir()
	old := writePolicy(t, dir, "old.yaml", populationPolicy)
	changed := writePolicy(t, dir, "new.yaml", replaceOnce(t, populationPolicy,
		"          department: '{department}'\n        groups: [everyone]",
		"          department: '{department | UPPER}'\n        groups: [everyone, staff]"))
	csvPath := filepath.Join(dir, "people.csv")
	p := genPopulation(t, csvPath, 2_000)

	code, out, errs := runCmd(t, "preview", "--json", "--policy", changed, "--against", old, "--population", csvPath)
	require.Equal(t, 0, code, "no new conflict: %s", errs)
	var res populationResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Empty(t, res.Conflicts)
	assert.Equal(t, 10+4+8+7, res.PreExisting)
	require.Len(t, res.Steps, 1, "only the joiner's okta step changes")
	s := res.Steps[0]
	assert.Equal(t, map[string]int{"update": p.hires, "group_add": p.hires}, s.Counts)
	assert.Equal(t, map[string]int{"department": p.hires}, s.Attributes)
	assert.Equal(t, map[string]int{"+staff": p.hires}, s.Groups)

	// The same file without --against: the conflicts are the policy's own.
	code, _, _ = runCmd(t, "preview", "--json", "--policy", changed, "--population", csvPath)
	assert.Equal(t, 1, code)

	// A change that introduces a conflict fails the gate: logins without
	// the first name collide for everyone named Person….
	clash := writePolicy(t, dir, "clash.yaml", replaceOnce(t, populationPolicy,
		"          login: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com'\n          email",
		"          login: 'staff@acme.com'\n          email"))
	code, out, _ = runCmd(t, "preview", "--json", "--policy", clash, "--against", old, "--population", csvPath)
	require.Equal(t, 1, code)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	// Everyone after the first with an okta account: the ordinary hires and
	// seven of the eight whose names gave invalid logins before; the ten
	// planted duplicates were conflicts already.
	assert.Equal(t, p.hires+7, res.ConflictCounts[simulate.DuplicateIdentifier])
	assert.Equal(t, 10+4+7, res.PreExisting)
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	i := indexOnce(t, s, old)
	return s[:i] + new + s[i+len(old):]
}

func indexOnce(t *testing.T, s, sub string) int {
	t.Helper()
	first := -1
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			require.Equal(t, -1, first, "%q occurs once", sub)
			first = i
		}
	}
	require.GreaterOrEqual(t, first, 0, "%q occurs", sub)
	return first
}

func TestPopulationBadInput(t *testing.T) {
	dir := t.TempDir()
	pol := writePolicy(t, dir, "policy.yaml", populationPolicy)
	people := filepath.Join(dir, "people.csv")
	require.NoError(t, os.WriteFile(people, []byte("employee_id,first_name,last_name,department,type\nE1,Ann,Lee,Sales,hire\n,No,Id,Sales,hire\nE3,Bo,Ng,Sales,fire\n"), 0o600))
	code, out, errs := runCmd(t, "preview", "--policy", pol, "--population", people)
	assert.Equal(t, 2, code, errs)
	assert.Contains(t, out, "line 3: invalid event: employee.employee_id: required")
	assert.Contains(t, out, `line 4: invalid event: type: unknown event type "fire"`)

	bad := writePolicy(t, dir, "bad.yaml", "targets: {okta: {type: octa}}\n")
	code, _, errs = runCmd(t, "preview", "--policy", bad, "--population", people)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "is not valid")
	code, _, errs = runCmd(t, "preview", "--policy", pol, "--population", filepath.Join(dir, "missing.csv"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "missing.csv")
	code, _, errs = runCmd(t, "preview", "--policy", pol, "--population", people, "--event", "x.json")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "not both")

	// Clean input, no conflict: exit 0, and the text report.
	require.NoError(t, os.WriteFile(people, []byte("employee_id,first_name,last_name,department,type\nE1,Ann,Lee,Sales,hire\n"), 0o600))
	code, out, errs = runCmd(t, "preview", "--policy", pol, "--population", people)
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "joiner okta.sync_identity (sync_identity → okta): create 1, group_add 1")
	assert.Contains(t, out, "e.g. E1 (line 2) create: login=ann.lee@acme.com")
	assert.Contains(t, out, "Conflicts: none")
}

// BenchmarkPopulation50k is the population dry run of 50,000 rows through
// the CLI path (CSV reading, policy evaluation, JSON report).
func BenchmarkPopulation50k(b *testing.B) {
	dir := b.TempDir()
	pol := writePolicy(b, dir, "policy.yaml", populationPolicy)
	csvPath := filepath.Join(dir, "people.csv")
	genPopulation(b, csvPath, 50_000)
	b.ResetTimer()
	for range b.N {
		if code := run(b.Context(), []string{"preview", "--json", "--policy", pol, "--population", csvPath}, io.Discard, io.Discard); code != 1 {
			b.Fatalf("exit %d", code)
		}
	}
}

// The single-event preview refuses the same identifiers: the step shows
// the error naming the person and the attribute, exit 1.
func TestPreviewInvalidIdentifier(t *testing.T) {
	dir := t.TempDir()
	ev := filepath.Join(dir, "hire.json")
	require.NoError(t, os.WriteFile(ev, []byte(`{"event_id":"evt-cjk-1","type":"hire","effective_at":"2026-11-02T09:00:00Z",
"employee":{"employee_id":"E2001","first_name":"小明","last_name":"王","department":"Engineering","country_code":"CN"}}`), 0o600))
	code, out, errs := runCmd(t, "preview", "--policy", "../examples/policy.yaml", "--event", ev)
	assert.Equal(t, 1, code, errs)
	assert.Contains(t, out, `employee E2001: okta: unique identifier login renders ".@acme.com": it has no letter or digit before @`)
	assert.NotContains(t, out, `"login":".@acme.com"`, "no request body with the bad login")
}

// Issue 27: identifiers the servers refuse — a space before @, 65 octets
// before @ — are refused by the preview (exit 1, the error naming person
// and attribute, no request body with the value) and by the population dry
// run, which also reports employee IDs that differ only by case.
func TestPreviewRefusesSpacedAndLongLocalParts(t *testing.T) {
	dir := t.TempDir()
	pol := writePolicy(t, dir, "policy.yaml", `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        attributes:
          user_name: '{first_name | LOWER}.{last_name | LOWER}@acme.com'
`)
	long := strings.Repeat("a", 60)
	people := [][3]string{{"E1", "Sean", "O Suilleabhain"}, {"E2", "Nguyen Thi", "Minh Khai"}, {"E3", long, "Bcdef"}}
	for _, p := range people {
		ev := filepath.Join(dir, p[0]+".json")
		require.NoError(t, os.WriteFile(ev, []byte(fmt.Sprintf(`{"event_id":"h-%s","type":"hire","effective_at":"2026-11-02T09:00:00Z",
"employee":{"employee_id":%q,"first_name":%q,"last_name":%q}}`, p[0], p[0], p[1], p[2])), 0o600))
		code, out, errs := runCmd(t, "preview", "--policy", pol, "--event", ev)
		assert.Equal(t, 1, code, errs)
		assert.Contains(t, out, "employee "+p[0]+": app: unique identifier user_name renders", p[0])
		assert.NotContains(t, out, `"userName"`, "no request body with the bad user name")
	}
	csvPath := filepath.Join(dir, "people.csv")
	rows := "employee_id,first_name,last_name,type\nE1,Sean,O Suilleabhain,hire\nE2,Ada ,Lovelace,hire\nE3," + long + ",Bcdef,hire\n" +
		"ab12345,Ann,Lee,hire\nAB12345,Ann,Lee,hire\nE4,Bo,Ng,hire\n"
	require.NoError(t, os.WriteFile(csvPath, []byte(rows), 0o600))
	code, out, errs := runCmd(t, "preview", "--json", "--policy", pol, "--population", csvPath)
	require.Equal(t, 1, code, errs)
	var res populationResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	got := map[string]string{}
	for _, c := range res.Conflicts {
		got[c.EmployeeID] = c.Kind
	}
	assert.Equal(t, map[string]string{"E1": simulate.InvalidIdentifier, "E3": simulate.InvalidIdentifier,
		"AB12345": simulate.EmployeeIDCase}, got, "E2's name is trimmed; E4 is fine")
}

// Issue 27: a request that would carry a password over plain http is a
// policy problem at its file:line in `starter preview`, not a RestInsecure
// after the account exists.
func TestPreviewRefusesSecretOverPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	pol := writePolicy(t, dir, "policy.yaml", `
targets:
  app: {type: scim, base_url: https://app.example.com/scim/v2, token_env: APP_TOKEN}
password: {length: 16}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate
        attributes:
          user_name: '{first_name | LOWER}@acme.com'
    - send_rest_request:
        url: http://127.0.0.1:8080/accounts
        body: '{"login":"{ScimUser.user_name}","pw":"{ScimUser.password}"}'
`)
	ev := filepath.Join(dir, "hire.json")
	require.NoError(t, os.WriteFile(ev, []byte(`{"event_id":"h-1","type":"hire","effective_at":"2026-11-02T09:00:00Z",
"employee":{"employee_id":"E1","first_name":"Ada","last_name":"Lovelace"}}`), 0o600))
	code, out, errs := runCmd(t, "preview", "--policy", pol, "--event", ev)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, out+errs, "policy.yaml:14:14: joiner.steps[1].send_rest_request.url: this request carries a password to http://127.0.0.1:8080: plain http is refused")
}
