package policy

import (
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/transform"
)

// Entities notify templates may reference besides the outputs of earlier
// steps: {Run.kind}, {Run.ui_url}, …; {Manager.email} (the manager's
// identity, by manager_id); {Login.password}, written {{LOGIN_PASSWORD}}:
// the run's temporary password (reset_password), else its generated one.
const (
	EntityRun     = "Run"
	EntityManager = "Manager"
	EntityLogin   = "Login"
)

// LoginPasswordAlias is Veza's placeholder for the temporary password.
const LoginPasswordAlias = "{{LOGIN_PASSWORD}}"

// Notify channels.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
	ChannelSlack   = "slack"
	ChannelTeams   = "teams"
)

// NotifySource is a notify template with the {{LOGIN_PASSWORD}} alias
// spelled as the transformer reference {Login.password}.
func NotifySource(src string) string {
	return strings.ReplaceAll(src, LoginPasswordAlias, "{"+EntityLogin+".password}")
}

// NotifyChannel is the channel of a notify step: its own, else email for
// an smtp target, else webhook.
func (p *Policy) NotifyChannel(r RESTRequest) string {
	if r.Channel != "" {
		return r.Channel
	}
	if t, ok := p.Targets[r.Target]; ok && t.Type == "smtp" {
		return ChannelEmail
	}
	return ChannelWebhook
}

// NotifyTemplates are the message templates of a notify step by field
// (to[0], subject, text, html, …), aliases resolved. Webhook steps render
// url, headers and body instead.
func NotifyTemplates(r RESTRequest) map[string]string {
	out := map[string]string{}
	for _, l := range []struct {
		name string
		srcs []string
	}{{"to", r.To}, {"cc", r.Cc}, {"bcc", r.Bcc}} {
		for i, s := range l.srcs {
			out[fmt.Sprintf("%s[%d]", l.name, i)] = NotifySource(s)
		}
	}
	for k, v := range map[string]string{"subject": r.Subject, "text": r.Text, "html": r.HTML} {
		if v != "" {
			out[k] = NotifySource(v)
		}
	}
	return out
}

// notify checks a notify step: its channel, recipients, templates (files
// read next to the policy), events and what carries a secret.
func (c *checker) notify(p *Policy, tables map[string]bool, path string, r *RESTRequest, sc scope) {
	ch := p.NotifyChannel(*r)
	if !slices.Contains([]string{ChannelWebhook, ChannelEmail, ChannelSlack, ChannelTeams}, ch) {
		c.at(path+".channel", "channel %q: want webhook, email, slack or teams%s", r.Channel,
			didYouMean(r.Channel, []string{ChannelWebhook, ChannelEmail, ChannelSlack, ChannelTeams}))
		return
	}
	for i, on := range r.On {
		if outcomes := contract.NotifyOutcomes(); !slices.Contains(outcomes, on) {
			c.at(fmt.Sprintf("%s.on[%d]", path, i), "on %q: want %s or %s%s", on, strings.Join(outcomes[:len(outcomes)-1], ", "), outcomes[len(outcomes)-1], didYouMean(on, outcomes))
		}
	}
	if r.After != "" && len(r.On) > 0 {
		c.at(path+".after", "after sends when that step is done: leave out on")
	}
	c.notifyOutputs(path, r)
	if r.MaxAttempts < 0 || r.MaxAttempts > 100 {
		c.at(path+".max_attempts", "must be 1 to 100 (0: the default)")
	}
	c.envName(path+".url_env", r.URLEnv, false)
	for _, f := range []struct {
		field, file string
		dst         *string
	}{{"text", r.TextFile, &r.Text}, {"html", r.HTMLFile, &r.HTML}} {
		if f.file == "" {
			continue
		}
		if *f.dst != "" {
			c.at(path+"."+f.field+"_file", "set %s or %s_file, not both", f.field, f.field)
			continue
		}
		name := f.file
		if !filepath.IsAbs(name) {
			name = filepath.Join(c.dir, name)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			c.at(path+"."+f.field+"_file", "cannot read %s: %v", f.file, errors.Unwrap(err))
			continue
		}
		*f.dst = string(data)
	}
	if ch == ChannelWebhook {
		if len(r.To)+len(r.Cc)+len(r.Bcc) > 0 || r.Subject != "" || r.Text != "" || r.HTML != "" {
			c.at(path, "to, cc, bcc, subject, text and html are for email, slack and teams notifications: set channel")
		}
		if r.URLEnv != "" && r.URL == "" {
			r2 := *r
			r2.URL = "https://webhook.invalid/"
			c.request(p, tables, path, &r2, notifyScope(sc), true)
			return
		}
		c.request(p, tables, path, r, notifyScope(sc), true)
		return
	}
	if r.Method != "" || r.Body != "" || len(r.Headers) > 0 || len(r.SuccessCodes) > 0 || len(r.Extract) > 0 || r.Credential != "" {
		c.at(path, "method, body, headers, success_codes, extract and credential are for webhook notifications")
	}
	local := notifyScope(sc)
	secret := false
	for _, k := range slices.Sorted(maps.Keys(NotifyTemplates(*r))) {
		src := NotifyTemplates(*r)[k]
		if t := c.template(p, tables, path+"."+k, src, local); t != nil {
			for _, ref := range t.Refs() {
				secret = secret || ref.Attr == "password" && ref.Entity != ""
			}
		}
	}
	switch ch {
	case ChannelEmail:
		if r.Target == "" {
			c.at(path, "email notifications need target: an smtp target (the mail server)")
		} else {
			c.target(p, path, r.Target, "smtp")
		}
		if r.URL != "" || r.URLEnv != "" {
			c.at(path+".url", "email notifications go to the target's mail server: leave out url")
		}
		if len(r.To)+len(r.Cc)+len(r.Bcc) == 0 {
			c.at(path, "to: at least one recipient ({email}, {Manager.email}, an address)")
		}
		for i, a := range append(append(slices.Clone(r.To), r.Cc...), r.Bcc...) {
			if t, err := transform.Parse(NotifySource(a)); err == nil && t.IsConstant() {
				if _, err := mail.ParseAddressList(a); err != nil {
					c.at(path, "recipient %d: %q is not an e-mail address", i+1, a)
				}
			}
		}
		if r.Subject == "" {
			c.at(path, "subject: required for email")
		}
		if r.Text == "" && r.HTML == "" {
			c.at(path, "an email needs text, html (or text_file, html_file)")
		}
		if t, ok := p.Targets[r.Target]; ok && t.Type == "smtp" && t.TLS == "none" && secret {
			c.at(path, "this message carries a password and target %s has tls: none: use starttls or implicit", r.Target)
		}
	case ChannelSlack, ChannelTeams:
		if r.Target != "" {
			c.at(path+".target", "%s notifications need no target: the webhook URL comes from url_env", ch)
		}
		if r.URLEnv == "" {
			c.at(path, "url_env: required (the environment variable that holds the %s webhook URL, a credential)", ch)
		}
		if r.URL != "" {
			c.at(path+".url", "a %s webhook URL is a credential: put it in an environment variable and name it in url_env", ch)
		}
		if len(r.To)+len(r.Cc)+len(r.Bcc) > 0 || r.HTML != "" {
			c.at(path, "to, cc, bcc and html are for email")
		}
	}
}

// notifyOutputs refuses step outputs in a notify that fires when the run
// did not get to its end (needs_attention, failed, blocked, aborted): the
// step producing them may be the one that failed, or not have run yet, so
// the message could never render and the alert would be lost. Such a
// notify uses identity attributes, {Manager.*} and {Run.*} only.
func (c *checker) notifyOutputs(path string, r *RESTRequest) {
	var early []string
	for _, on := range r.On {
		if on != contract.OnCompleted && slices.Contains(contract.NotifyOutcomes(), on) {
			early = append(early, on)
		}
	}
	if len(early) == 0 {
		return
	}
	srcs := NotifyTemplates(*r)
	srcs["url"], srcs["body"] = r.URL, r.Body
	for k, v := range r.Headers {
		srcs["headers."+k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(srcs)) {
		t, err := transform.Parse(NotifySource(srcs[k]))
		if err != nil {
			continue // reported with the template's own checks
		}
		for _, ref := range t.Refs() {
			switch ref.Entity {
			case "", EntityRun, EntityManager, transform.TargetEntity:
				continue
			}
			c.at(path+"."+k, "{%s}: a notify on %s can fire before or instead of the step that produces %s, and would never render: "+
				"use identity attributes and {Run.*} fields ({Run.message}, {Run.failed_step}, {Run.error}, {Run.ui_url}), or a separate notify on completed",
				ref, strings.Join(early, ", "), ref.Entity)
			return
		}
	}
}

// notifyScope adds the run, the manager and, when the flow has a
// password by now, {{LOGIN_PASSWORD}}.
func notifyScope(sc scope) scope {
	out := scope{outputs: maps.Clone(sc.outputs), passwords: maps.Clone(sc.passwords), employee: sc.employee}
	if out.outputs == nil {
		return out // outputs unchecked
	}
	out.outputs[EntityRun] = true
	out.outputs[EntityManager] = true
	if len(sc.passwords) > 0 {
		out.outputs[EntityLogin] = true
		out.passwords[EntityLogin] = true
	}
	return out
}

func (c *checker) smtpTarget(path string, t Target) {
	if t.Host == "" {
		c.at(path, "smtp targets need host (the mail server)")
	}
	if !slices.Contains([]string{"", "starttls", "implicit", "none"}, t.TLS) {
		c.at(path+".tls", "tls %q: want starttls, implicit or none", t.TLS)
	}
	if t.Port < 0 || t.Port > 65535 {
		c.at(path+".port", "not a port")
	}
	if t.From == "" {
		c.at(path, "smtp targets need from (the sender, e.g. 'jml <jml@acme.com>')")
	} else if _, err := mail.ParseAddress(t.From); err != nil {
		c.at(path+".from", "not an e-mail address: %v", err)
	}
	if a := t.Auth.Type; a != "" && a != "none" && a != "basic" {
		c.at(path+".auth.type", "smtp auth is none or basic (username_env, password_env)")
	}
	if t.TLS == "none" && t.Auth.Type == "basic" {
		c.at(path+".tls", "tls: none would send the SMTP password in clear text: use starttls or implicit")
	}
}
