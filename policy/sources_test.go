package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSourcesParse(t *testing.T) {
	p, err := Parse("/etc/jml/p.yaml", []byte(goodPolicy+`
sources:
  okta_users:
    type: okta
    org_url: https://acme.okta.com
    token_env: OKTA_SOURCE_TOKEN
    every: 5m
    employee_id: '{employeeNumber}'
    attributes: {first_name: '{firstName}', department: '{department | UPPER}'}
  workday:
    type: report
    url: https://wd5-services1.myworkday.com/ccx/service/customreport2/acme/jml/Workers?format=json
    records: Report_Entry
    auth: {type: basic, username_env: WD_USER, password_env: WD_PASSWORD}
    employee_id: '{Employee_ID}'
    active: 'status eq "Active"'
    attributes: {status: '{Status}'}
    max_terminate_percent: 10
  export:
    type: report
    file: exports/people.csv
    employee_id: '{id}'
    initial: baseline
`))
	require.NoError(t, err)
	require.Len(t, p.Sources, 3)
	assert.Equal(t, 5*time.Minute, p.Sources["okta_users"].PollEvery())
	assert.Equal(t, DefaultSourceEvery, p.Sources["workday"].PollEvery())
	assert.Equal(t, 10.0, p.Sources["workday"].TerminateLimit())
	assert.Equal(t, DefaultMaxTerminatePercent, p.Sources["export"].TerminateLimit())
	assert.Equal(t, filepath.Join("/etc/jml", "exports/people.csv"), p.Sources["export"].File, "a file is relative to the policy")
}

func TestSourcesProblems(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"type", `{type: workday, employee_id: '{id}'}`, `type "workday": want one of okta, report`},
		{"no employee id", `{type: report, file: x.csv}`, "employee_id: required"},
		{"bad template", `{type: report, file: x.csv, employee_id: '{id | NOPE}'}`, "NOPE"},
		{"url and file", `{type: report, file: x.csv, url: 'https://x/r', employee_id: '{id}'}`, "set url or file, not both"},
		{"plain http", `{type: report, url: 'http://hr.acme.com/r', employee_id: '{id}'}`, "plain http is only allowed to loopback"},
		{"okta token", `{type: okta, org_url: 'https://acme.okta.com', employee_id: '{id}'}`, "token_env: required"},
		{"literal secret", `{type: okta, org_url: 'https://acme.okta.com', token: abc, employee_id: '{id}'}`, "literal secret"},
		{"every", `{type: report, file: x.csv, employee_id: '{id}', every: 10s}`, "at least 1m"},
		{"percent", `{type: report, file: x.csv, employee_id: '{id}', max_terminate_percent: 120}`, "0 (default 5) to 100"},
		{"initial", `{type: report, file: x.csv, employee_id: '{id}', initial: all}`, `initial "all"`},
		{"active", `{type: report, file: x.csv, employee_id: '{id}', active: 'status eq'}`, "sources.s.active"},
		{"auth", `{type: report, url: 'https://x/r', employee_id: '{id}', auth: {type: oauth2}}`, `type "oauth2": want one of none, bearer, basic, header`},
		{"format", `{type: report, file: x.csv, employee_id: '{id}', format: xml}`, `format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(goodPolicy+"sources:\n  s: "+tc.src+"\n"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.Contains(err.Error(), "sources.s"), err.Error())
		})
	}
}
