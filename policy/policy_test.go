package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/transform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExamplePolicy(t *testing.T) {
	p, err := Load("../examples/policy.yaml")
	require.NoError(t, err)

	// Every action type appears, and every target type the brief names.
	seen := map[string]bool{}
	for _, f := range p.Flows() {
		for _, s := range f.Flow.Steps {
			seen[StepAction(s)] = true
		}
	}
	for _, a := range actions {
		assert.True(t, seen[a], "example policy uses %s", a)
	}
	types := map[string]bool{}
	for _, tg := range p.Targets {
		types[tg.Type] = true
	}
	assert.Equal(t, map[string]bool{"okta": true, "scim": true, "rest": true}, types)

	tables, err := p.Tables()
	require.NoError(t, err)
	assert.Equal(t, "EMEA", tables["offices"].Rows["DE"]["region"])
	assert.Equal(t, "HRPortalAccount", p.EntityType("hrportal"))
}

const goodPolicy = `
targets:
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
  jira: {type: scim, base_url: https://jira.example/scim/v2, token_env: JIRA_TOKEN}
common_attributes:
  email: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com'
joiner:
  - sync_identity: {target: okta, create_allowed: true, password: generate,
                    attributes: {login: '{$target.email}', given_name: '{first_name}', last_name: '{last_name}', department: '{department}'}}
  - manage_relationships: {target: okta, add: ['everyone', 'dept-{department | LOWER}']}
  - send_rest_request: {url: https://hr.acme.com/api/accounts, method: POST,
                        body: '{"login":"{OktaUser.login}","password":"{OktaUser.password}"}'}
`

func TestParseDesignExample(t *testing.T) {
	p, err := Parse("p.yaml", []byte(goodPolicy))
	require.NoError(t, err)
	require.Len(t, p.Joiner.Steps, 3)
	assert.Equal(t, "okta.sync_identity", StepName(p.Joiner.Steps[0]))
	assert.Equal(t, "send_rest_request", StepName(p.Joiner.Steps[2]))
	assert.Equal(t, "OktaUser", p.EntityType("okta"))
	assert.Equal(t, "ScimUser", p.EntityType("jira"))
	assert.Equal(t, "login", p.UniqueIdentifier(*p.Joiner.Steps[0].SyncIdentity))
}

func TestValidationReportsEveryProblem(t *testing.T) {
	src := `targets:
  okta:
    type: okta
    org_url: https://acme.okta.com
    token: 00abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN
  jira: {type: scimm, base_url: https://jira.example}
  portal: {type: rest, token_env: "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ab"}
joiner:
  offset: 3 days
  steps:
    - sync_identity:
        target: octa
        attributes:
          login: '{first_name | LOWR}'
          email: '{$target.emial}'
    - manage_relationships: {target: okta, add: ['x'], colour: blue}
    - when: department eq Engineering
      deprovision_identity: {target: okta}
    - send_rest_request: {url: 'https://x.example/{OktaUser.password}', headers: {Authorization: 'Bearer abc'}}
    - delete_identity: {target: okta, after: soon}
    - reset_password: {target: okta}
      notify: {url: https://x.example}
    - create_entitlement: {target: okta, name: '{x | LOOKUP, "ofices", "y"}'}
leaver:
  local_time: "5pm"
  steps:
    - sync_identity: {target: okta, create_allowed: yes please}
`
	_, err := Parse("bad.yaml", []byte(src))
	require.Error(t, err)
	var perr *Error
	require.ErrorAs(t, err, &perr)
	want := []string{
		"bad.yaml:5:5: targets.okta.token: a literal secret (token) is not allowed in the policy file: put it in an environment variable and name it with token_env",
		`bad.yaml:6:16: targets.jira.type: type "scimm": want one of okta, scim, entra, active_directory, ldap, rest, smtp (did you mean scim?)`,
		"bad.yaml:7:35: targets.portal.token_env: an Okta API token in the policy file",
		`bad.yaml:9:11: joiner.offset: bad duration "3 days"`,
		`bad.yaml:12:17: joiner.steps[0].sync_identity.target: unknown target "octa" (did you mean okta?)`,
		"bad.yaml:14:33: joiner.steps[0].sync_identity.attributes.login: column 15: unknown function LOWR (did you mean LOWER?)",
		"bad.yaml:15:18: joiner.steps[0].sync_identity.attributes.email: {$target.emial}: unknown attribute $target.emial (did you mean email?)",
		"bad.yaml:16:56: joiner.steps[1].manage_relationships.colour: unknown field colour",
		`bad.yaml:17:13: joiner.steps[2].when: column 15: value Engineering must be quoted`,
		"bad.yaml:19:32: joiner.steps[3].send_rest_request.url: {OktaUser.password}: no earlier step in this flow produces OktaUser",
		"bad.yaml:19:98: joiner.steps[3].send_rest_request.headers.Authorization: a literal credential in header Authorization",
		`bad.yaml:20:46: joiner.steps[4].delete_identity.after: bad duration "soon"`,
		"bad.yaml:21:7: joiner.steps[5]: one action per step, found reset_password and notify",
		`bad.yaml:23:48: joiner.steps[6].create_entitlement.name: {x}: no HR field, required_attributes, import column or source provides attribute x`,
		`bad.yaml:23:48: joiner.steps[6].create_entitlement.name: LOOKUP: unknown lookup table "ofices"`,
		`bad.yaml:25:15: leaver.local_time: "5pm" is not a wall-clock time like 17:00`,
		`bad.yaml:27:53: leaver.steps[0].sync_identity.create_allowed: expected a boolean (true/false), found "yes please"`,
	}
	assert.Len(t, perr.Problems, len(want)+2, "plus token_env required and leaver's missing login")
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		assert.True(t, found, "missing problem:\n  %s\ngot:\n  %s", w, strings.Join(got, "\n  "))
	}
	assert.NotContains(t, err.Error(), "00abcdefghij", "the secret is never echoed")
	assert.NotContains(t, err.Error(), "00aBcDeFgH", "the secret is never echoed")
}

func TestValidationMore(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"yaml syntax", "targets: [", "x.yaml:1:1: did not find expected node content"},
		{"empty", "", "x.yaml:1:1: empty policy"},
		{"no targets", "joiner: []", "at least one target is required"},
		{"secret in url", `targets: {h: {type: rest, base_url: "https://u:p@h.example"}}`, "a password in the URL is a literal secret"},
		{"http not loopback", `targets: {j: {type: scim, base_url: "http://jira.example", token_env: T}}`, "plain http is only allowed to loopback"},
		{"duplicate step names", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
leaver:
  - deprovision_identity: {target: o}
  - deprovision_identity: {target: o, mode: deactivate}`, `step name "o.deprovision_identity" is also used by leaver.steps[0]`},
		{"wrong target type", `targets: {r: {type: rest}}
joiner: [{sync_identity: {target: r, attributes: {user_name: x}}}]`, "target r is of type rest; this action needs okta or scim or entra"},
		{"target cycle", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
joiner: [{sync_identity: {target: o, attributes: {login: '{$target.email}', email: '{$target.login}'}}}]`, "$target cycle: email → login → email"},
		{"output before producer", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
joiner:
  - notify: {url: "https://x.example", body: '{"a":"{OktaUser.login}"}'}
  - sync_identity: {target: o, attributes: {login: x}}`, "{OktaUser.login}: no earlier step in this flow produces OktaUser"},
		{"missing unique identifier", `targets: {s: {type: scim, base_url: "https://s.example", token_env: T}}
joiner: [{sync_identity: {target: s, attributes: {email: x}}}]`, "unique_identifier user_name has no template"},
		{"ambiguous entity type", `targets:
  a: {type: scim, base_url: "https://a.example", token_env: T}
  b: {type: scim, base_url: "https://b.example", token_env: T}`, "targets a, b all produce {ScimUser.…}: set entity_type"},
		{"literal password", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
joiner: [{sync_identity: {target: o, password: Hunter2!, attributes: {login: x}}}]`, "want generate or leave it out"},
		{"no action", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
joiner: [{name: nothing}]`, "no action: want one of sync_identity"},
		{"bad lookup csv", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
lookups: {t: {key: code, csv: "a,b\n1,2\n"}}`, `key column "code" not in the header`},
		{"lookup file missing", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
lookups: {t: {file: nope.csv}}`, "cannot read nope.csv"},
		{"approval chat channel", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
approvals: {chat: [{channel: email, url_env: HOOK}]}`, `approvals.chat[0].channel: channel "email": want slack or teams`},
		{"approval chat url_env", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
approvals: {chat: [{channel: slack}]}`, "approvals.chat[0].url_env: required"},
		{"on_move action", `targets: {o: {type: okta, org_url: "https://o.example", token_env: T}}
approvals: {on_move: {action: ask}}`, `approvals.on_move.action: action "ask": want reapprove, revoke or keep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tt.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConditions(t *testing.T) {
	attrs := map[string]string{"department": "Engineering", "country_code": "DE", "level": "7",
		"title": "Senior Engineer", "start_date": "2026-12-01", "middle_name": ""}
	tests := []struct {
		when string
		want bool
	}{
		{``, true},
		{`department eq "Engineering" and country_code ne "US"`, true},
		{`department eq "engineering"`, true},
		{`department eq "Sales" or country_code eq "DE"`, true},
		{`not (department eq "Sales" or country_code eq "DE")`, false},
		{`department eq "Sales" or department eq "Engineering" and country_code eq "US"`, false},
		{`(department eq "Sales" or department eq "Engineering") and country_code eq "DE"`, true},
		{`title co "engineer"`, true},
		{`title sw "senior"`, true},
		{`title ew "Manager"`, false},
		{`manager_id pr`, false},
		{`department pr`, true},
		{`middle_name pr`, false},
		{`middle_name eq null`, true},
		{`level gt 10`, false},
		{`level ge 7 and level lt 8`, true},
		{`start_date ge "2026-11-22"`, true},
		{`department EQ "Engineering" AND NOT country_code eq "US"`, true},
	}
	for _, tt := range tests {
		got, err := EvalCondition(tt.when, attrs)
		require.NoError(t, err, tt.when)
		assert.Equal(t, tt.want, got, tt.when)
	}
	for when, want := range map[string]string{
		`department eq Engineering`:    `column 15: value Engineering must be quoted`,
		`department equals "x"`:        `column 12: unknown operator "equals"`,
		`(department eq "x"`:           "column 19: missing )",
		`department eq "x" and`:        "column 22: expected an attribute name",
		`department eq "x`:             "column 15: unterminated string",
		`department eq "x" country eq`: `column 19: unexpected "country"`,
		`"x" eq "y"`:                   `column 1: expected an attribute name, found "x"`,
	} {
		_, err := EvalCondition(when, attrs)
		assert.ErrorContains(t, err, want, when)
	}
	c, err := CompileCondition(`a eq "1" or not b pr`)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, c.Attributes())
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"": 0, "30d": 30 * 24 * time.Hour, "-3d": -72 * time.Hour, "72h": 72 * time.Hour,
		"1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0.5d": 12 * time.Hour, "+2d": 48 * time.Hour,
	} {
		got, err := ParseDuration(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"3 days", "d", "1x", "--1d", "1d-2h", "soon"} {
		_, err := ParseDuration(s)
		assert.Error(t, err, s)
	}
}

func TestFlowAndPlan(t *testing.T) {
	p, err := Load("../examples/policy.yaml")
	require.NoError(t, err)
	assert.Equal(t, p.Joiner.Steps, p.Flow(hr.Hire).Steps)
	assert.Equal(t, p.Mover.Steps, p.Flow(hr.Change).Steps)
	assert.Equal(t, p.Leaver.Steps, p.Flow(hr.Terminate).Steps)
	assert.Equal(t, p.Joiner.Steps, p.Flow(hr.Rehire).Steps, "no rehire flow: the joiner flow")
	assert.Empty(t, p.Flow("promote").Steps)

	ev := hr.Event{EventID: "e1", Type: hr.Hire, EffectiveAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		Employee: map[string]string{"employee_id": "E1", "first_name": "Ada", "last_name": "Lovelace",
			"department": "Sales", "country_code": "GB"}}
	plan, err := p.Plan(ev, nil)
	require.NoError(t, err)
	assert.Equal(t, KindJoiner, plan.Kind)
	assert.Equal(t, time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), plan.RunAt, "joiner offset -3d")
	require.Len(t, plan.Steps, len(p.Joiner.Steps))
	assert.Equal(t, "jira.sync_identity", plan.Steps[3].Name)
	assert.True(t, plan.Steps[3].Skip, "Sales is not in the Jira condition")
	assert.False(t, plan.Steps[0].Skip)

	ev.Type = hr.Terminate
	ev.EffectiveAt = time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	ev.Employee["time_zone"] = "Europe/Berlin"
	plan, err = p.Plan(ev, nil)
	require.NoError(t, err)
	assert.Equal(t, KindLeaver, plan.Kind)
	assert.Equal(t, "2027-06-30T17:00:00+02:00", plan.RunAt.Format(time.RFC3339), "17:00 local on the last day")

	ev.Type = hr.Rehire
	plan, err = p.Plan(ev, nil)
	require.NoError(t, err)
	assert.Equal(t, KindJoiner, plan.Kind)
	assert.Equal(t, KindJoiner, plan.Flow)

	_, err = p.Plan(hr.Event{Type: "promote", Employee: map[string]string{"first_name": "x"}}, nil)
	require.Error(t, err)
	for _, w := range []string{"event_id: required", `type: "promote"`, "effective_at: required",
		"employee.employee_id: required"} {
		assert.Contains(t, err.Error(), w)
	}
	_, err = p.Plan(hr.Event{EventID: "e2", Type: hr.Hire, EffectiveAt: ev.EffectiveAt, Employee: map[string]string{"employee_id": "E1", "first_name": "x"}}, nil)
	assert.ErrorContains(t, err, "employee.last_name: required by the policy")
}

func TestRequiredAttributes(t *testing.T) {
	const targets = "targets: {o: {type: okta, org_url: \"https://o.example\", token_env: T}}\n"
	list, err := Parse("x.yaml", []byte(targets+"required_attributes: [first_name, last_name]\n"))
	require.NoError(t, err)
	byType, err := Parse("x.yaml", []byte(targets+`required_attributes:
  hire: [first_name, last_name]
  rehire: [first_name]
  change: []
  terminate: [termination_reason]
`))
	require.NoError(t, err)
	for _, tt := range []struct {
		p    *Policy
		typ  string
		want []string
	}{
		{list, hr.Hire, []string{"first_name", "last_name"}},
		{list, hr.Rehire, []string{"first_name", "last_name"}},
		{list, hr.Change, nil},
		{list, hr.Terminate, nil},
		{byType, hr.Hire, []string{"first_name", "last_name"}},
		{byType, hr.Rehire, []string{"first_name"}},
		{byType, hr.Change, []string{}},
		{byType, hr.Terminate, []string{"termination_reason"}},
		{byType, "promote", nil},
		{nil, hr.Hire, nil},
	} {
		assert.Equal(t, tt.want, tt.p.RequiredFor(tt.typ), tt.typ)
	}

	// CheckEvent (Plan) applies the same rule as the intake.
	term := hr.Event{EventID: "e1", Type: hr.Terminate, EffectiveAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		Employee: map[string]string{"employee_id": "E1"}}
	assert.Empty(t, list.CheckEvent(term), "the list form requires nothing of a terminate")
	assert.Equal(t, []string{"employee.termination_reason: required by the policy"}, byType.CheckEvent(term))

	// JSON round trip keeps the form.
	for _, p := range []*Policy{list, byType} {
		b, err := json.Marshal(p)
		require.NoError(t, err)
		var back Policy
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, p.RequiredAttributes, back.RequiredAttributes)
	}

	for _, tt := range []struct{ src, want string }{
		{"required_attributes: {hire: [first_name], terminat: [x]}", `x.yaml:2:43: required_attributes.terminat: unknown event type "terminat" (did you mean terminate?)`},
		{"required_attributes: {promote: [x]}", `x.yaml:2:23: required_attributes.promote: unknown event type "promote" (want hire, change, terminate or rehire)`},
		{"required_attributes: {hire: [First-Name]}", `x.yaml:2:30: required_attributes.hire[0]: "First-Name" is not an attribute name (snake_case)`},
		{"required_attributes: [ok, bad name]", `x.yaml:2:27: required_attributes[1]: "bad name" is not an attribute name (snake_case)`},
		{"required_attributes: first_name", `x.yaml:2:22: required_attributes: expected a list of attribute names (required for hire and rehire) or a mapping by event type`},
		{"required_attributes: {hire: first_name}", `x.yaml:2:29: required_attributes.hire: expected a list, found "first_name"`},
	} {
		_, err := Parse("x.yaml", []byte(targets+tt.src+"\n"))
		require.Error(t, err, tt.src)
		assert.Contains(t, err.Error(), tt.want)
	}
}

func TestRenderAttributes(t *testing.T) {
	p, err := Load("../examples/policy.yaml")
	require.NoError(t, err)
	tables, err := p.Tables()
	require.NoError(t, err)
	env := &transform.Env{Lookups: tables, Attrs: map[string]string{
		"employee_id": "E1", "first_name": "Łukasz", "last_name": "Gruba-Nowak", "department": "Engineering",
		"country_code": "pl", "mobile_phone": "601 234 567", "title": "site reliability engineer"}}
	got, err := RenderAttributes(p, *p.Joiner.Steps[0].SyncIdentity, env)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"email": "lukasz.gruba-nowak@acme.com", "login": "lukasz.gruba-nowak@acme.com",
		"given_name": "Łukasz", "family_name": "Gruba-Nowak", "department": "Engineering",
		"title": "Site Reliability Engineer", "employee_number": "E1", "country_code": "PL",
		"locale": "pl-PL", "mobile_phone": "+48601234567", "nick_name": "lgrubanowak",
	}, got)
	assert.Nil(t, env.Target, "env is not modified")

	cands, err := Candidates(p, *p.Joiner.Steps[0].SyncIdentity, "nick_name")
	require.NoError(t, err)
	assert.Len(t, cands, 3)
	_, err = Candidates(p, *p.Joiner.Steps[0].SyncIdentity, "nope")
	assert.Error(t, err)
}

func TestStepHelpers(t *testing.T) {
	s := Step{Notify: &RESTRequest{URL: "https://x"}}
	assert.Equal(t, "notify", StepName(s))
	assert.Equal(t, "notify", StepAction(s))
	assert.Equal(t, "", StepTarget(s))
	s = Step{Name: "custom", DeleteIdentity: &DeleteIdentity{Target: "okta"}}
	assert.Equal(t, "custom", StepName(s))
	assert.Equal(t, "delete_identity", StepAction(s))
	assert.Equal(t, "okta", StepTarget(s))
	assert.Equal(t, "", StepAction(Step{}))
}

// BenchmarkRenderAttributes renders the example joiner's Okta attributes
// (11 attributes, parsed on every call) for one identity.
func BenchmarkRenderAttributes(b *testing.B) {
	p, err := Load("../examples/policy.yaml")
	require.NoError(b, err)
	tables, err := p.Tables()
	require.NoError(b, err)
	env := &transform.Env{Lookups: tables, Attrs: map[string]string{
		"employee_id": "E1", "first_name": "Łukasz", "last_name": "Gruba", "department": "Engineering",
		"country_code": "PL", "mobile_phone": "601 234 567", "title": "engineer"}}
	step := *p.Joiner.Steps[0].SyncIdentity
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RenderAttributes(p, step, env); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOnMoveReview(t *testing.T) {
	eng := map[string]string{"department": "eng", "manager_id": "M1", "title": "dev"}
	tests := []struct {
		name      string
		on        OnMove
		attrs     map[string]string
		want, why string
	}{
		{"default: a department change re-asks", OnMove{}, map[string]string{"department": "sales", "manager_id": "M1", "title": "dev"},
			OnMoveReapprove, `moved: department "eng" → "sales"`},
		{"default: a new manager re-asks", OnMove{}, map[string]string{"department": "eng", "manager_id": "M2", "title": "dev"},
			OnMoveReapprove, `moved: manager_id "M1" → "M2"`},
		{"default: a title change is no move", OnMove{}, map[string]string{"department": "eng", "manager_id": "M1", "title": "lead"}, OnMoveKeep, ""},
		{"revoke", OnMove{Action: OnMoveRevoke}, map[string]string{"department": "sales", "manager_id": "M1"}, OnMoveRevoke, `moved: department "eng" → "sales"`},
		{"keep", OnMove{Action: OnMoveKeep}, map[string]string{"department": "sales"}, OnMoveKeep, ""},
		{"own attributes", OnMove{Attributes: []string{"title"}}, map[string]string{"department": "sales", "manager_id": "M1", "title": "lead"},
			OnMoveReapprove, `moved: title "dev" → "lead"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.on.Review(eng, tt.attrs)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.why, why)
		})
	}
}
