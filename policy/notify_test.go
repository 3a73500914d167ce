package policy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const notifyPolicy = `
targets:
  okta: {type: okta, org_url: https://acme.okta.com, token_env: OKTA_API_TOKEN}
  mail:
    type: smtp
    host: smtp.acme.com
    port: 587
    tls: starttls
    auth: {type: basic, username_env: SMTP_USERNAME, password_env: SMTP_PASSWORD}
    from: 'jml <jml@acme.com>'
joiner:
  - sync_identity: {target: okta, create_allowed: true, password: generate, attributes: {login: '{email}', email: '{email}', first_name: '{first_name}', last_name: '{last_name}'}}
  - name: welcome.manager
    notify:
      target: mail
      to: ['{Manager.email}']
      cc: [it-onboarding@acme.com]
      subject: 'Account for {first_name} {last_name}'
      text_file: notify/welcome-manager.txt
      html_file: notify/welcome-manager.html
  - name: chat.attention
    notify: {channel: slack, url_env: SLACK_WEBHOOK_URL, on: [needs_attention, blocked, aborted], subject: '{Run.kind} needs you', text: '{Run.message}'}
  - name: teams.done
    notify: {channel: teams, url_env: TEAMS_WEBHOOK_URL, after: okta.sync_identity, text: 'Account ready for {first_name}'}
  - reset_password: {target: okta}
  - name: user.reset
    notify:
      target: mail
      to: ['{personal_email}']
      subject: Your temporary password
      text: 'Sign in as {OktaUser.login} with {{LOGIN_PASSWORD}}'
  - name: hook
    notify: {url: 'https://hooks.acme.com/x', on: [failed]}
`

func TestNotifyPolicy(t *testing.T) {
	p, err := Parse(filepath.Join("testdata", "policy.yaml"), []byte(notifyPolicy))
	require.NoError(t, err)
	st := p.Joiner.Steps[1].Notify
	assert.Equal(t, ChannelEmail, p.NotifyChannel(*st))
	assert.Contains(t, st.Text, "Their first password: {OktaUser.password}")
	assert.Contains(t, st.HTML, "<code>{OktaUser.password}</code>")
	assert.Equal(t, ChannelSlack, p.NotifyChannel(*p.Joiner.Steps[2].Notify))
	assert.Equal(t, "Sign in as {OktaUser.login} with {Login.password}", NotifyTemplates(*p.Joiner.Steps[5].Notify)["text"])
	assert.Equal(t, ChannelWebhook, p.NotifyChannel(*p.Joiner.Steps[6].Notify))
}

func TestNotifyPolicyProblems(t *testing.T) {
	bad := strings.NewReplacer(
		"tls: starttls", "tls: none",
		"'{Manager.email}'", "'{Manager.email}', 'not an address'",
		"channel: slack, url_env: SLACK_WEBHOOK_URL", "channel: slakc",
		"after: okta.sync_identity", "after: user.reset",
		"text_file: notify/welcome-manager.txt", "text_file: notify/missing.txt",
		"on: [failed]", "on: [failed, done]",
	).Replace(notifyPolicy)
	_, err := Parse(filepath.Join("testdata", "policy.yaml"), []byte(bad))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"targets.mail.tls: tls: none would send the SMTP password in clear text",
		`recipient 2: "not an address" is not an e-mail address`,
		`channel "slakc": want webhook, email, slack or teams (did you mean slack?)`,
		`teams.done.notify.after` + "",
		"cannot read notify/missing.txt",
		`on "done": want completed, needs_attention, failed, blocked or aborted`,
		"this message carries a password and target mail has tls: none",
	} {
		if want == "teams.done.notify.after" {
			assert.Contains(t, msg, `after "user.reset": not an earlier step of this flow`)
			continue
		}
		assert.Contains(t, msg, want)
	}

	_, err = Parse(filepath.Join("testdata", "policy.yaml"), []byte(strings.Replace(notifyPolicy, "url_env: SLACK_WEBHOOK_URL", "url: 'https://hooks.slack.com/services/T0/B0/x'", 1)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "url_env: required")
	assert.Contains(t, err.Error(), "a slack webhook URL is a credential")

	_, err = Parse(filepath.Join("testdata", "policy.yaml"), []byte(strings.Replace(notifyPolicy, "  - sync_identity: {target: okta, create_allowed: true, password: generate, attributes: {login: '{email}', email: '{email}', first_name: '{first_name}', last_name: '{last_name}'}}\n", "  - sync_identity: {target: okta, create_allowed: true, attributes: {login: '{email}', email: '{email}', first_name: '{first_name}', last_name: '{last_name}'}}\n", 1)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "{OktaUser.password}: no earlier step generates a password")
}

// TestNotifyOnNeedsAttentionUsesNoOutputs: an alert fires when a step
// failed, possibly the one whose outputs it would print, so it may use
// identity attributes and {Run.*} only; a completed notify may use outputs.
func TestNotifyOnNeedsAttentionUsesNoOutputs(t *testing.T) {
	for _, tc := range []struct{ on, text, want string }{
		{"[needs_attention]", "'{Run.message} for {first_name}, manager {Manager.email}'", ""},
		{"[completed]", "'login {OktaUser.login}'", ""},
		{"[completed, needs_attention]", "'login {OktaUser.login}'",
			"{OktaUser.login}: a notify on needs_attention can fire before or instead of the step that produces OktaUser"},
		{"[blocked]", "'{{LOGIN_PASSWORD}}'", "{Login.password}: a notify on blocked"},
	} {
		t.Run(tc.on+" "+tc.text, func(t *testing.T) {
			src := strings.Replace(notifyPolicy, "on: [needs_attention, blocked, aborted], subject: '{Run.kind} needs you', text: '{Run.message}'",
				"on: "+tc.on+", subject: 'x', text: "+tc.text, 1)
			_, err := Parse(filepath.Join("testdata", "policy.yaml"), []byte(src))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
