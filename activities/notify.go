package activities

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"maps"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/notify"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// notifyWebhook is today's REST notify (connectors/rest.Notify); url_env
// supplies the URL.
func (a *Activities) notifyWebhook(ctx context.Context, in StepInput, spec *policy.RESTRequest, ev rest.Event) (_ StepResult, sent bool, _ error) {
	s := *spec
	if s.URLEnv != "" && s.URL == "" {
		if s.URL = a.getenv(s.URLEnv); s.URL == "" {
			return StepResult{}, false, permanent("PolicyInvalid", fmt.Errorf("%s: environment variable %s (url_env) is empty or unset", in.Step.Name, s.URLEnv))
		}
	}
	req, res, err := a.restRequest(ctx, in, &s)
	if err != nil {
		return StepResult{}, false, err
	}
	if env, ok := req.Templates.(*transform.Env); ok {
		env.Outputs[policy.EntityRun] = ev.Fields() // {Run.*}
	}
	sent, err = a.rest.Notify(ctx, req, ev)
	if err != nil {
		return StepResult{}, false, toTemporal(fmt.Errorf("%s: %w", in.Step.Name, err), req.Secrets...)
	}
	if res.Note == "" {
		res.Note = map[bool]string{true: "sent", false: "not subscribed to " + ev.Kind}[sent]
	}
	if sent {
		res.Effects = deliveryEffects(audit.NotificationSent, policy.ChannelWebhook, requestDoes(spec), len(req.Secrets) > 0)
	}
	return res, sent, nil
}

// rendered is a notification ready to send. It holds secrets: it never
// leaves the activity.
type rendered struct {
	to, cc, bcc         []string
	subject, text, html string
	secrets             []secret.Secret
}

// renderNotification renders the step's templates with the identity's
// attributes, the run's outputs, {Run.*}, {Manager.*} and the run's
// secrets resolved from this worker's vault.
func (a *Activities) renderNotification(ctx context.Context, in StepInput, spec *policy.RESTRequest, ev rest.Event) (rendered, StepResult, error) {
	srcs := policy.NotifyTemplates(*spec)
	tmpls := map[string]*transform.Template{}
	var refs []transform.Ref
	for _, k := range slices.Sorted(maps.Keys(srcs)) {
		t, err := transform.Parse(srcs[k])
		if err != nil {
			return rendered{}, StepResult{}, permanent("PolicyInvalid", fmt.Errorf("%s.%s: %v", in.Step.Name, k, err))
		}
		tmpls[k] = t
		refs = append(refs, t.Refs()...)
	}
	env, err := a.env(in.Attributes, in)
	if err != nil {
		return rendered{}, StepResult{}, err
	}
	outputs := map[string]map[string]string{}
	for et, m := range in.Outputs {
		outputs[et] = maps.Clone(m)
	}
	outputs[policy.EntityRun] = map[string]string{
		"kind": ev.Kind, "workflow": ev.Workflow, "workflow_id": ev.WorkflowID, "employee_id": ev.EmployeeID,
		"failed_step": ev.FailedStep, "error": ev.Error, "ui_url": ev.UIURL, "message": ev.Message(),
	}
	res := StepResult{}
	var msg rendered
	for _, r := range refs {
		switch {
		case r.Entity == policy.EntityManager && outputs[policy.EntityManager] == nil:
			m, err := a.manager(ctx, in.Attributes)
			if err != nil {
				return rendered{}, StepResult{}, err
			}
			outputs[policy.EntityManager] = m
		case r.Attr == "password" && r.Entity != "" && r.Entity != transform.TargetEntity:
			if outputs[r.Entity]["password"] != "" {
				continue
			}
			ref, sr, ok := secretFor(in.Secrets, r.Entity)
			if !ok {
				return rendered{}, StepResult{}, permanent("PolicyInvalid", fmt.Errorf("%s: {%s.password}: no step of this run made a password", in.Step.Name, r.Entity))
			}
			s, err := a.resolveSecret(ctx, in, ref, sr, &res)
			if err != nil {
				return rendered{}, StepResult{}, err
			}
			msg.secrets = append(msg.secrets, s)
			if outputs[r.Entity] == nil {
				outputs[r.Entity] = map[string]string{}
			}
			outputs[r.Entity]["password"] = s.Reveal()
		}
	}
	env.Outputs = outputs
	eval := func(k string, escape func(string) string) (string, error) {
		t := tmpls[k]
		if t == nil {
			return "", nil
		}
		e := *env
		e.Escape = escape
		v, err := t.Eval(&e)
		if err != nil {
			return "", permanent("PolicyInvalid", fmt.Errorf("%s.%s: %s", in.Step.Name, k, redact(err.Error(), msg.secrets...)))
		}
		return v, nil
	}
	for _, l := range []struct {
		name string
		n    int
		dst  *[]string
	}{{"to", len(spec.To), &msg.to}, {"cc", len(spec.Cc), &msg.cc}, {"bcc", len(spec.Bcc), &msg.bcc}} {
		for i := range l.n {
			v, err := eval(fmt.Sprintf("%s[%d]", l.name, i), nil)
			if err != nil {
				return rendered{}, StepResult{}, err
			}
			for _, addr := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == '\n' }) {
				if addr = strings.TrimSpace(addr); addr != "" && !slices.Contains(*l.dst, addr) {
					*l.dst = append(*l.dst, addr)
				}
			}
		}
	}
	if msg.subject, err = eval("subject", nil); err != nil {
		return rendered{}, StepResult{}, err
	}
	msg.subject = strings.Join(strings.Fields(msg.subject), " ") // one header line
	if msg.text, err = eval("text", nil); err != nil {
		return rendered{}, StepResult{}, err
	}
	if msg.html, err = eval("html", html.EscapeString); err != nil {
		return rendered{}, StepResult{}, err
	}
	if msg.text == "" && msg.html == "" {
		msg.text = ev.Message()
	}
	return msg, res, nil
}

// secretFor finds the run's secret for entity: Entity.password, or for
// {{LOGIN_PASSWORD}} (Login) the temporary password of a reset_password
// step, else the run's one generated password (the last by name when
// there are several).
func secretFor(secrets map[string]SecretRef, entity string) (string, SecretRef, bool) {
	if entity != policy.EntityLogin {
		sr, ok := secrets[entity+".password"]
		return entity + ".password", sr, ok
	}
	keys := slices.Sorted(maps.Keys(secrets))
	for _, temporary := range []bool{true, false} {
		for i := len(keys) - 1; i >= 0; i-- {
			if sr := secrets[keys[i]]; sr.Temporary == temporary && strings.HasSuffix(keys[i], ".password") {
				return keys[i], sr, true
			}
		}
	}
	return "", SecretRef{}, false
}

// resolveSecret reads a secret from the vault; a handle lost with its
// worker re-issues the password by the rules of the target (as REST steps
// do) and records the new handle in res.
func (a *Activities) resolveSecret(ctx context.Context, in StepInput, ref string, sr SecretRef, res *StepResult) (secret.Secret, error) {
	s, err := a.cfg.Vault.Get(sr.Handle)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, secret.ErrUnknownHandle) {
		return secret.Secret{}, toTemporal(err)
	}
	c, err := a.connector(sr.Target)
	if err != nil {
		return secret.Secret{}, err
	}
	if s, err = a.reissue(ctx, c, sr); err != nil {
		return secret.Secret{}, err
	}
	h := a.cfg.Vault.Put(in.Owner, s)
	if res.Secrets == nil {
		res.Secrets = map[string]SecretRef{}
	}
	res.Secrets[ref] = SecretRef{Handle: h, Target: sr.Target, AccountID: sr.AccountID, Temporary: sr.Temporary}
	res.Note = NotePasswordReissued
	a.log.Warn("vault handle lost; password re-issued", zap.String("step", in.Step.Name), zap.String("target", sr.Target))
	return s, nil
}

// manager is the {Manager.*} of a person: the attributes of the identity
// named by manager_id (its identity workflow's memo, through the
// Directory), else manager_email / manager_name attributes.
func (a *Activities) manager(ctx context.Context, attrs map[string]string) (map[string]string, error) {
	m := map[string]string{}
	if id := attrs["manager_id"]; id != "" && a.cfg.Directory != nil {
		rec, err := a.cfg.Directory.Identity(ctx, id)
		switch {
		case err == nil:
			m = maps.Clone(rec.Attributes)
			if m == nil {
				m = map[string]string{}
			}
			m["employee_id"] = id
		case errors.Is(err, connectors.ErrNotFound):
		default:
			return nil, toTemporal(fmt.Errorf("manager %s: %w", id, err))
		}
	}
	for k, v := range attrs {
		if f, ok := strings.CutPrefix(k, "manager_"); ok && f != "id" && m[f] == "" {
			m[f] = v // manager_email → {Manager.email}
		}
	}
	return m, nil
}

// sendEmail sends through the step's smtp target, credentials from the
// environment.
func (a *Activities) sendEmail(ctx context.Context, in StepInput, spec *policy.RESTRequest, ev rest.Event, msg rendered) error {
	t, ok := a.cfg.Policy.Targets[spec.Target]
	if !ok || t.Type != "smtp" {
		return permanent("PolicyInvalid", fmt.Errorf("%s: target %q is not an smtp target", in.Step.Name, spec.Target))
	}
	cfg := notify.SMTP{Host: t.Host, Port: t.Port, TLS: t.TLS, AllowInsecureLoopback: a.cfg.AllowInsecureLoopback}
	if t.Auth.Type == "basic" {
		cfg.Username, cfg.Password = a.getenv(t.Auth.UsernameEnv), a.getenv(t.Auth.PasswordEnv)
		if cfg.Username == "" || cfg.Password == "" {
			return permanent("PolicyInvalid", fmt.Errorf("%s: smtp target %s: %s or %s is empty or unset", in.Step.Name, spec.Target, t.Auth.UsernameEnv, t.Auth.PasswordEnv))
		}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return permanent("PolicyInvalid", fmt.Errorf("%s: smtp target %s: ca_file: %v", in.Step.Name, spec.Target, err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return permanent("PolicyInvalid", fmt.Errorf("%s: smtp target %s: ca_file holds no PEM certificate", in.Step.Name, spec.Target))
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	secrets := append([]secret.Secret{}, msg.secrets...)
	if cfg.Password != "" {
		secrets = append(secrets, secret.New(cfg.Password))
	}
	err := cfg.Send(ctx, notify.Email{
		From: t.From, To: msg.to, Cc: msg.cc, Bcc: msg.bcc, Subject: msg.subject, Text: msg.text, HTML: msg.html,
		MessageID: messageID(in, ev, t.From), Secret: len(msg.secrets) > 0,
	})
	if err != nil {
		return toTemporal(fmt.Errorf("%s: %w", in.Step.Name, err), secrets...)
	}
	return nil
}

// messageID is stable per run, step and outcome: every attempt of one
// notification carries the same Message-ID, so a resend after a lost
// reply is recognisable as a duplicate.
func messageID(in StepInput, ev rest.Event, from string) string {
	sum := sha256.Sum256([]byte(in.Owner + "\x00" + in.Step.Name + "\x00" + ev.Kind + "\x00" + ev.FailedStep))
	domain := "jml.invalid"
	if addr, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(addr.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return "jml." + hex.EncodeToString(sum[:16]) + "@" + domain
}

// uiURL links the run in the Temporal Web UI when JML_UI_URL names it
// (e.g. http://127.0.0.1:8233).
func (a *Activities) uiURL(ctx context.Context, workflowID string) string {
	base := strings.TrimRight(a.getenv("JML_UI_URL"), "/")
	if base == "" || workflowID == "" {
		return ""
	}
	ns := "default"
	if activity.IsActivity(ctx) {
		ns = activity.GetInfo(ctx).WorkflowNamespace
	}
	return base + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(workflowID)
}

func (a *Activities) getenv(k string) string {
	if k == "" {
		return ""
	}
	if a.cfg.Getenv != nil {
		return a.cfg.Getenv(k)
	}
	return os.Getenv(k)
}

// notifySources are the message templates of a notify step, for
// secretRefs (which steps read secrets run where the vault holds them).
func notifySources(spec *policy.RESTRequest) []string {
	if spec == nil {
		return nil
	}
	m := policy.NotifyTemplates(*spec)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}
