package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 27: a request that carries a secret to a plain-http URL is a
// validation problem at its file:line — a password in the body, a header
// or the URL, or a rest target's own credentials — loopback included, as
// the worker's REST connector refuses it (RestInsecure) after the steps
// before it (the account's creation) are done.
func TestSecretOverPlainHTTPIsRefused(t *testing.T) {
	const base = `targets:
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
  portal: {type: rest, base_url: PORTAL_URL, auth: {type: bearer, token_env: PORTAL_TOKEN}}
  open: {type: rest, base_url: OPEN_URL}
joiner:
  steps:
    - sync_identity:
        target: okta
        create_allowed: true
        password: generate
        attributes: {login: '{email}', email: '{email}', first_name: '{first_name}', last_name: '{last_name}'}
    - send_rest_request:
STEP
`
	tests := []struct {
		name, portal, open, step string
		want                     string // "" valid
	}{
		{"password in body to http", "https://portal.acme.com", "https://o.acme.com",
			`        url: http://hr.acme.com/accounts
        body: '{"pw":"{OktaUser.password}"}'`,
			`policy.yaml:13:14: joiner.steps[1].send_rest_request.url: this request carries a password to http://hr.acme.com: plain http is refused`},
		{"password in body to loopback http", "https://portal.acme.com", "https://o.acme.com",
			`        url: http://127.0.0.1:8080/accounts
        body: '{"pw":"{OktaUser.password}"}'`,
			`this request carries a password to http://127.0.0.1:8080`},
		{"password in a header", "https://portal.acme.com", "https://o.acme.com",
			`        url: 'http://{department}.acme.com/x'
        headers: {X-Initial: '{OktaUser.password}'}`,
			`this request carries a password to http://: plain http is refused`},
		{"password to an http rest target", "https://portal.acme.com", "http://127.0.0.1:9000",
			`        target: open
        url: /accounts
        body: '{"pw":"{OktaUser.password}"}'`,
			`joiner.steps[1].send_rest_request.target: this request carries a password to http://127.0.0.1:9000`},
		{"credentials of an http rest target", "http://127.0.0.1:9000", "https://o.acme.com",
			`        target: portal
        url: /accounts
        body: '{"login":"{OktaUser.login}"}'`,
			`this request carries its target's credentials to http://127.0.0.1:9000`},
		{"password over https", "https://portal.acme.com", "https://o.acme.com",
			`        target: portal
        url: /accounts
        body: '{"pw":"{OktaUser.password}"}'`, ""},
		{"no secret over loopback http", "https://portal.acme.com", "http://127.0.0.1:9000",
			`        target: open
        url: /accounts
        body: '{"login":"{OktaUser.login}"}'`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.NewReplacer("PORTAL_URL", tt.portal, "OPEN_URL", tt.open, "STEP", tt.step).Replace(base)
			_, err := Parse("policy.yaml", []byte(src))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
