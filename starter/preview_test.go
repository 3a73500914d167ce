package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPreviewHire(t *testing.T) {
	code, out, errs := runCmd(t, "preview", "--policy", "../examples/policy.yaml", "--event", "../examples/events/hire.json")
	require.Equal(t, 0, code, errs)
	for _, want := range []string{
		"Workflow  Joiner  joiner/E1042/evt-2026-11-22-0001",
		"Runs at   2026-10-30T09:00:00-05:00",
		"1. okta.sync_identity  [sync_identity → okta]",
		"WOULD CREATE (account created)",
		"login = lukasz.gruba@acme.com",
		"mobile_phone = +12125550199",
		"GET    https://acme.okta.com/api/v1/users/lukasz.gruba@acme.com   (answered not found: preview without --live)",
		`"employeeNumber":"E1042","firstName":"Łukasz","lastName":"Gruba"`, // what the Okta connector sends
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Engineering"}`,
		`"credentials":{"password":{"value":"••••"}}`,
		"PUT    https://acme.okta.com/api/v1/groups/<group id of region-amer>/users/<new id 1>",
		"4. jira.sync_identity",
		`POST   https://api.atlassian.com/scim/directory/acme/Users   (a write: not sent)`,
		"POST   https://hr.acme.example/api/accounts   (a write: not sent)",
		`"initial_password":"••••"`,
		"portal account <new id 6>",
	} {
		assert.Contains(t, out, want)
	}
}

// TestPreviewActiveDirectoryHire: an LDAP target's preview lists the LDAP
// operations the connector would send, through the same recorder, with
// the password masked; nothing is dialled.
func TestPreviewActiveDirectoryHire(t *testing.T) {
	code, out, errs := runCmd(t, "preview", "--policy", "../examples/active-directory-policy.yaml", "--event", "../examples/events/hire.json")
	require.Equal(t, 0, code, errs)
	for _, want := range []string{
		"1. ad.sync_identity  [sync_identity → ad]",
		"WOULD CREATE (account created)",
		"SEARCH DC=corp,DC=example?sub?(&(objectCategory=person)(objectClass=user)(employeeID=E1042))   (answered not found: preview without --live)",
		"ADD    CN=Łukasz Gruba,OU=Engineering,OU=Staff,DC=corp,DC=example   (a write: not sent)",
		"            sAMAccountName: lgruba\n",
		"            userPrincipalName: lgruba@corp.example\n",
		"            unicodePwd: ••••\n",
		"            pwdLastSet: 0\n",
		"            userAccountControl: 512\n",
		"id = <new id 1>",
		"MODIFY CN=dept-Engineering,DC=corp,DC=example   (a write: not sent)",
		"            add member: CN=Łukasz Gruba,OU=Engineering,OU=Staff,DC=corp,DC=example",
	} {
		assert.Contains(t, out, want)
	}
}

func TestPreviewJSONAndConditions(t *testing.T) {
	code, out, errs := runCmd(t, "preview", "--json", "--policy", "../examples/policy.yaml", "--event", "../examples/events/change.json")
	require.Equal(t, 0, code, errs)
	var res previewResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "Mover", res.Workflow)
	assert.Equal(t, "mover/E1042/evt-2026-11-16-0002", res.WorkflowID)
	require.Len(t, res.Steps, 4)
	assert.Equal(t, "security.approval", res.Steps[2].Name)
	assert.True(t, res.Steps[2].Skip, "a move into Sales needs no approval")
	assert.True(t, res.AssumedLinks, "offline, a mover acts on stand-in links")
	assert.Equal(t, verdictLink, res.Steps[0].Verdict)
	assert.Equal(t, "Sales", res.Steps[0].Outputs["department"])
	assert.Equal(t, "jira.offboard_non_engineering", res.Steps[3].Name)
	assert.False(t, res.Steps[3].Skip, "Sales is offboarded from Jira")
	calls := res.Steps[3].Calls
	require.Len(t, calls, 4, "discovery, the SCIM connector's own deprovision, its read-back")
	assert.Equal(t, "PATCH", calls[2].Method)
	assert.Contains(t, calls[2].Body, `"path":"active","value":false`)
	assert.Equal(t, "GET", calls[3].Method, "the activity reads the account back, as in a run")

	code, out, errs = runCmd(t, "preview", "--json", "--policy", "../examples/policy.yaml", "--event", "../examples/events/terminate.json")
	require.Equal(t, 0, code, errs)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "Leaver", res.Workflow)
	assert.Equal(t, "2026-11-20T17:00:00+01:00", res.RunAt.Format("2006-01-02T15:04:05Z07:00"))
	assert.Len(t, res.Steps, 8)
}

func TestPreviewBadInput(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(badPolicy, []byte(`targets:
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
joiner:
  - sync_identity: {target: okta, attributes: {login: '{email | LOWR}'}}
`), 0o600))
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"bad policy", []string{"--policy", badPolicy, "--event", "../examples/events/hire.json"},
			[]string{"bad.yaml:4:65: joiner.steps[0].sync_identity.attributes.login: column 10: unknown function LOWR (did you mean LOWER?)"}},
		{"bad event", []string{"--policy", "../examples/policy.yaml", "--event", "../examples/events/bad.json"},
			[]string{"event_id: required", `type: "promote" is not one of`, "employee.employee_id: required"}},
		{"missing event", []string{"--policy", "../examples/policy.yaml", "--event", filepath.Join(dir, "nope.json")},
			[]string{"no such file"}},
		{"no flags", nil, []string{"usage: starter preview"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, append([]string{"preview"}, tt.args...)...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out, "nothing on stdout")
			for _, w := range tt.wants {
				assert.Contains(t, errs, w)
			}
		})
	}
	// An unknown field in the event is a problem too (typos must not be dropped).
	ev := filepath.Join(dir, "typo.json")
	require.NoError(t, os.WriteFile(ev, []byte(`{"event_id":"e","type":"hire","effective":"2026-01-01T00:00:00Z","employee":{}}`), 0o600))
	code, _, errs := runCmd(t, "preview", "--policy", "../examples/policy.yaml", "--event", ev)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown field "effective"`)
}

func TestPreviewNotifications(t *testing.T) {
	dir := t.TempDir()
	pol := `targets:
  app: {type: scim, base_url: https://app.example/scim/v2, token_env: APP_TOKEN}
  mail: {type: smtp, host: smtp.acme.example, port: 587, tls: starttls, from: 'IT <it@acme.example>'}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate
        attributes: {user_name: '{first_name | ASCII | LOWER}@acme.example'}
    - name: welcome.manager
      notify:
        target: mail
        to: ['{Manager.email}']
        subject: 'Account for {first_name | ASCII}'
        text: 'Login {ScimUser.user_name}, password {{LOGIN_PASSWORD}} ({Run.ui_url})'
    - name: ops.slack
      notify: {channel: slack, url_env: SLACK_WEBHOOK_URL, on: [needs_attention], text: '{Run.message}'}
`
	path := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(pol), 0o600))
	code, out, errs := runCmd(t, "preview", "--policy", path, "--event", "../examples/events/hire.json")
	require.Equal(t, 0, code, errs)
	// SMTP does not pass the recorder: the e-mail is not sent, and the
	// slack step fires only when a run waits for an operator.
	assert.Contains(t, out, "2. welcome.manager  [notify → mail]\n   NOT SENT")
	assert.NotContains(t, out, "ops.slack")
	assert.NotContains(t, out, "POST   /", "no webhook call invented for an e-mail")
}
