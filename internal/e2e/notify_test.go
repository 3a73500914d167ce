package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/notify/smtptest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// mailPolicy: a joiner gets an account with a generated password, its
// manager an e-mail carrying that password; then a reset_password, whose
// temporary password the person receives through {{LOGIN_PASSWORD}}.
func mailPolicy(t *testing.T, srv *smtptest.Server, host string, port int) *policy.Policy {
	ca := ""
	if srv != nil && srv.CAPEM != nil {
		ca = filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(ca, srv.CAPEM, 0o600))
	}
	return &policy.Policy{
		Targets: map[string]policy.Target{
			"app": {Type: "scim", BaseURL: "https://app.invalid/scim"},
			"mail": {Type: "smtp", Host: host, Port: port, TLS: "starttls", From: "jml <jml@acme.test>", CAFile: ca,
				Auth: policy.Credential{Type: "basic", UsernameEnv: "SMTP_USERNAME", PasswordEnv: "SMTP_PASSWORD"}},
		},
		Password: policy.PasswordPolicy{Length: 20, Lower: true, Upper: true, Digits: true, Symbols: true},
		Joiner: policy.Flow{Steps: []policy.Step{
			{SyncIdentity: &policy.SyncIdentity{Target: "app", CreateAllowed: true, Password: "generate",
				Attributes: map[string]string{"user_name": "{email}", "given_name": "{first_name}"}}},
			{Name: "welcome.manager", When: "manager_id pr", Notify: &policy.RESTRequest{Target: "mail", MaxAttempts: 2,
				To: []string{"{Manager.email}"}, Subject: "Account for {first_name}",
				Text: "Hello {Manager.first_name},\n{first_name} signs in as {ScimUser.user_name}\nFirst password: {ScimUser.password}\n",
				HTML: "<p>Hello {Manager.first_name},</p><p>{first_name} signs in as <b>{ScimUser.user_name}</b></p><p>First password: <code>{ScimUser.password}</code></p>"}},
			{ResetPassword: &policy.ResetPassword{Target: "app"}, When: "manager_id pr"},
			{Name: "reset.user", When: "manager_id pr", Notify: &policy.RESTRequest{Target: "mail", MaxAttempts: 2,
				To: []string{"{personal_email}"}, Subject: "Your temporary password",
				Text: "Temporary password: {{LOGIN_PASSWORD}}\n", HTML: "<p>Temporary password: <code>{{LOGIN_PASSWORD}}</code></p>"}},
		}},
	}
}

func (s *stack) mailWorker(t *testing.T, mt *memtarget.Target) {
	t.Helper()
	c := s.ts.NewClientWithOptions(client.Options{Logger: logging.Temporal(s.log)})
	env := map[string]string{"SMTP_USERNAME": "jml", "SMTP_PASSWORD": "smtp-secret", "JML_UI_URL": "http://127.0.0.1:8233"}
	a := activities.New(activities.Config{
		Policy: s.policy, Targets: map[string]any{"app": mt}, Vault: secret.NewVault(time.Hour),
		Client: c, Logger: s.log, Directory: activities.TemporalDirectory{Client: c},
		Getenv:      func(k string) string { return env[k] },
		StepTimeout: 10 * time.Second, SessionHeartbeat: 2 * time.Second,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true, WorkflowPanicPolicy: worker.FailWorkflow})
	workflows.Register(w, a)
	require.NoError(t, w.Start())
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { w.Stop(); c.Close() }) })
}

var (
	boss = map[string]string{"employee_id": "M1", "first_name": "Grace", "email": "grace@acme.test"}
	ada  = map[string]string{"employee_id": "E1", "first_name": "Ada", "email": "ada@acme.test",
		"personal_email": "ada@home.test", "manager_id": "M1"}
)

func (s *stack) hire(t *testing.T, emp map[string]string) {
	t.Helper()
	_, err := deliver(context.Background(), s.c, hr.Event{EventID: emp["employee_id"] + "-hire", Type: hr.Hire, Employee: emp})
	require.NoError(t, err)
}

func (s *stack) joinerSteps(t *testing.T, emp string) []workflows.StepInfo {
	v, err := s.c.QueryWorkflow(context.Background(), contract.LifecycleWorkflowID("joiner", emp, emp+"-hire"), "", contract.QuerySteps)
	if err != nil {
		return nil
	}
	var steps []workflows.StepInfo
	_ = v.Get(&steps)
	return steps
}

func stepByName(steps []workflows.StepInfo, name string) workflows.StepInfo {
	for _, st := range steps {
		if st.Name == name {
			return st
		}
	}
	return workflows.StepInfo{}
}

// TestNotifyMailCarriesPasswords: a real SMTP server (STARTTLS + AUTH) on
// loopback receives the manager's welcome mail with the generated
// password and the person's mail with the reset password; both parse as
// text + HTML; no history, description or log holds either password.
func TestNotifyMailCarriesPasswords(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: "jml", Password: "smtp-secret"})
	s := newStack(t)
	s.policy = mailPolicy(t, srv, srv.Host, srv.Port)
	mt := memtarget.New()
	s.mailWorker(t, mt)
	s.hire(t, boss)
	s.waitStatus(t, []string{"M1"}, contract.StatusActive)
	s.hire(t, ada)
	s.waitStatus(t, []string{"E1"}, contract.StatusActive)

	msgs := srv.Messages()
	require.Len(t, msgs, 2)
	byTo := map[string]smtptest.Parsed{}
	for _, m := range msgs {
		assert.True(t, m.TLS, "sent after STARTTLS")
		assert.Equal(t, "jml", m.Auth)
		require.Len(t, m.To, 1)
		p, err := smtptest.Parse(m.Data)
		require.NoError(t, err)
		assert.Equal(t, "multipart/alternative", p.ContentType)
		assert.Regexp(t, `^<jml\.[0-9a-f]{32}@acme\.test>$`, p.Header.Get("Message-ID"))
		byTo[m.To[0]] = p
	}
	welcome, reset := byTo["grace@acme.test"], byTo["ada@home.test"]
	assert.Equal(t, "Account for Ada", welcome.Header.Get("Subject"))
	assert.Contains(t, welcome.Text, "Hello Grace,", "manager resolved from manager_id through the identity memo")
	assert.Contains(t, welcome.Text, "signs in as ada@acme.test")
	assert.Contains(t, welcome.HTML, "<b>ada@acme.test</b>")
	first := regexp.MustCompile(`First password: (\S+)`).FindStringSubmatch(welcome.Text)
	require.Len(t, first, 2)
	generated := first[1]
	assert.Len(t, generated, 20)
	// The HTML part carries the same password, HTML-escaped.
	assert.Contains(t, welcome.HTML, "<code>"+htmlEscape(generated)+"</code>")

	temp := regexp.MustCompile(`Temporary password: (\S+)`).FindStringSubmatch(reset.Text)
	require.Len(t, temp, 2)
	assert.True(t, strings.HasPrefix(temp[1], "Tmp-"), "the reset password, not the generated one")
	assert.True(t, mt.CheckPassword("ada@acme.test", temp[1]), "the mailed temporary password logs in")
	assert.Contains(t, reset.HTML, "<code>"+htmlEscape(temp[1])+"</code>")
	assert.NotEqual(t, generated, temp[1])

	steps := s.joinerSteps(t, "E1")
	assert.Equal(t, workflows.StepDone, stepByName(steps, "welcome.manager").State)
	assert.Equal(t, "sent by email to 1 recipient(s)", stepByName(steps, "welcome.manager").Note)
	s.assertNoSecrets(t, []string{generated, temp[1], "smtp-secret"})
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestNotifyMailRefusedWithoutSTARTTLS: the same policy against a server
// that offers no STARTTLS: nothing is sent, the step fails for good with a
// clear error, the account step stays done.
func TestNotifyMailRefusedWithoutSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mode: smtptest.None, Username: "jml", Password: "smtp-secret"})
	s := newStack(t)
	s.policy = mailPolicy(t, nil, srv.Host, srv.Port)
	mt := memtarget.New()
	s.mailWorker(t, mt)
	s.hire(t, boss)
	s.waitStatus(t, []string{"M1"}, contract.StatusActive)
	s.hire(t, ada)
	var row workflows.StepInfo
	require.Eventually(t, func() bool {
		row = stepByName(s.joinerSteps(t, "E1"), "welcome.manager")
		return row.State == workflows.StepFailed
	}, time.Minute, 200*time.Millisecond)
	assert.Contains(t, row.LastError, "NotifyInsecure")
	assert.Contains(t, row.LastError, "does not offer STARTTLS")
	assert.Contains(t, row.LastError, "nothing was sent")
	steps := s.joinerSteps(t, "E1")
	assert.Equal(t, workflows.StepDone, stepByName(steps, "app.sync_identity").State)
	assert.Equal(t, workflows.StepPending, stepByName(steps, "app.reset_password").State)
	_, mailFrom := srv.Counts()
	assert.Zero(t, mailFrom)
	assert.Empty(t, srv.Messages())
	_, ok := mt.Find("user_name", "ada@acme.test")
	assert.True(t, ok, "the account stays")
}

// TestNotifyMailServerDown: the notify step retries (max_attempts: 2),
// then the run needs attention with the SMTP error; the account step
// before it stays done.
func TestNotifyMailServerDown(t *testing.T) {
	port := peertest.FreePort(t) // nothing listens: the mail server is down
	s := newStack(t)
	s.policy = mailPolicy(t, nil, "127.0.0.1", port)
	mt := memtarget.New()
	s.mailWorker(t, mt)
	s.hire(t, boss)
	s.waitStatus(t, []string{"M1"}, contract.StatusActive)
	s.hire(t, ada)
	var row workflows.StepInfo
	require.Eventually(t, func() bool {
		row = stepByName(s.joinerSteps(t, "E1"), "welcome.manager")
		return row.State == workflows.StepFailed
	}, time.Minute, 200*time.Millisecond)
	assert.Contains(t, row.LastError, "Transient")
	assert.Contains(t, row.LastError, "connection refused")
	assert.Equal(t, workflows.StepDone, stepByName(s.joinerSteps(t, "E1"), "app.sync_identity").State)
	d, err := s.c.DescribeWorkflowExecution(context.Background(), contract.LifecycleWorkflowID("joiner", "E1", "E1-hire"), "")
	require.NoError(t, err)
	var state string
	require.NoError(t, json.Unmarshal(d.WorkflowExecutionInfo.SearchAttributes.IndexedFields[contract.SAState].GetData(), &state))
	assert.Equal(t, contract.StateNeedsAttention, state)
	// The activity ran its two attempts.
	hist := s.c.GetWorkflowHistory(context.Background(), contract.LifecycleWorkflowID("joiner", "E1", "E1-hire"), "", false, 0)
	attempts := int32(0)
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			attempts = max(attempts, a.Attempt)
		}
	}
	assert.Equal(t, int32(2), attempts)
}
