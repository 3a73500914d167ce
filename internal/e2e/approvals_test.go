package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/notify/smtptest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

const approvalKey = "test-approval-key-0123456789abcdef0123"

// approvalStack is the e2e stack (real Temporal, SCIMMY) with a real SMTP
// server and the intake serving /v1/requests and /v1/approvals.
type approvalStack struct {
	*stack
	smtp   *smtptest.Server
	intake *httptest.Server
	scim   *scim.Client
	// more are targets the workers hold besides app (SCIMMY); env more
	// of the workers' environment.
	more map[string]any
	env  map[string]string
}

func newApprovalStack(t *testing.T, ap policy.Approval) *approvalStack {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{Username: "jml", Password: "smtp-secret"})
	s := &approvalStack{stack: newStack(t), smtp: srv}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, srv.CAPEM, 0o600))
	s.policy.Targets["mail"] = policy.Target{Type: "smtp", Host: srv.Host, Port: srv.Port, TLS: "starttls",
		From: "jml <jml@acme.test>", CAFile: ca, Auth: policy.Credential{Type: "basic", UsernameEnv: "SMTP_USERNAME", PasswordEnv: "SMTP_PASSWORD"}}
	// The leaver leaves groups alone: what revokes a grant on termination
	// is the leaver's requests.revoke, not its deprovision.
	s.policy.Leaver = policy.Flow{Steps: []policy.Step{{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app"}}}}
	s.intake = httptest.NewServer(intake.New(intake.Config{Client: s.c, Policy: s.policy, BearerToken: "intake-token",
		ApprovalKey: []byte(approvalKey)}))
	t.Cleanup(s.intake.Close)
	s.policy.Approvals = policy.Approvals{Mail: "mail", LinkURL: s.intake.URL,
		Requestable: []string{"group:prod-*@app", "group:everyone@app"}, Approval: ap}
	var err error
	s.scim, err = scim.New(context.Background(), scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	return s
}

// worker starts a worker whose process environment holds the SMTP
// credentials and the approval key (worker memory only).
func (s *approvalStack) startWorker(t *testing.T) (stop func()) {
	t.Helper()
	c := s.ts.NewClientWithOptions(client.Options{Logger: logging.Temporal(s.log)})
	env := map[string]string{"SMTP_USERNAME": "jml", "SMTP_PASSWORD": "smtp-secret", approval.KeyEnv: approvalKey}
	maps.Copy(env, s.env)
	host := contract.HostTaskQueue(fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
	tgts := map[string]any{"app": s.scim}
	maps.Copy(tgts, s.more)
	a := activities.New(activities.Config{
		Policy: s.policy, Targets: tgts, Vault: secret.NewVault(time.Hour), HostQueue: host,
		HostTimeout: 5 * time.Second, HTTPClient: s.portal.Client(), Client: c, Logger: s.log,
		Directory: activities.TemporalDirectory{Client: c}, Getenv: func(k string) string { return env[k] },
		StepTimeout: 10 * time.Second, SessionHeartbeat: 2 * time.Second, AllowInsecureLoopback: true,
		Audit: s.audit,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true, WorkflowPanicPolicy: worker.FailWorkflow})
	workflows.Register(w, a)
	require.NoError(t, w.Start())
	hw := worker.New(c, host, worker.Options{})
	hw.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	require.NoError(t, hw.Start())
	var once sync.Once
	stop = func() { once.Do(func() { hw.Stop(); w.Stop(); c.Close() }) }
	t.Cleanup(stop)
	return stop
}

var (
	grace = map[string]string{"employee_id": "M1", "first_name": "Grace", "email": "grace@acme.test", "department": "eng"}
	alan  = map[string]string{"employee_id": "M2", "first_name": "Alan", "email": "alan@acme.test", "department": "eng"}
	adaE1 = map[string]string{"employee_id": "E1", "first_name": "Ada", "email": "ada@acme.test", "department": "eng", "manager_id": "M1"}
)

// people hires the manager(s) and Ada, and creates the requestable groups.
func (s *approvalStack) people(t *testing.T, groups ...string) {
	t.Helper()
	for _, p := range []map[string]string{grace, alan, adaE1} {
		s.hire(t, p)
	}
	defer func() {
		if t.Failed() {
			t.Logf("M1 joiner steps: %+v", s.joinerSteps(t, "M1"))
		}
	}()
	s.waitStatus(t, []string{"M1", "M2", "E1"}, contract.StatusActive)
	for _, g := range groups {
		_, err := s.scim.EnsureGroup(context.Background(), connectors.Group{Name: g})
		require.NoError(t, err)
	}
}

// post sends POST /v1/requests.
func (s *approvalStack) post(t *testing.T, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.intake.URL+"/v1/requests", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer intake-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *approvalStack) request(t *testing.T, id, grant, dur string) {
	t.Helper()
	code, body := s.post(t, fmt.Sprintf(`{"id":%q,"employee_id":"E1","grant":%q,"for":%q,"reason":"incident 42","requester":"it-portal@acme.test"}`, id, grant, dur))
	require.Equal(t, http.StatusAccepted, code, body)
}

func (s *approvalStack) status(t *testing.T, id string) workflows.RequestStatus {
	t.Helper()
	v, err := s.c.QueryWorkflow(context.Background(), contract.RequestWorkflowID(id), "", contract.QueryRequest)
	if err != nil {
		return workflows.RequestStatus{}
	}
	var st workflows.RequestStatus
	require.NoError(t, v.Get(&st))
	return st
}

func (s *approvalStack) waitRequest(t *testing.T, id string, ok func(workflows.RequestStatus) bool) workflows.RequestStatus {
	t.Helper()
	var st workflows.RequestStatus
	require.Eventually(t, func() bool { st = s.status(t, id); return ok(st) }, 2*time.Minute, 100*time.Millisecond,
		"request %s: last %+v", id, st)
	return st
}

// mails returns the parsed mails sent so far to addr whose subject
// contains subj.
func (s *approvalStack) mails(t *testing.T, addr, subj string) []smtptest.Parsed {
	var out []smtptest.Parsed
	for _, m := range s.smtp.Messages() {
		if !slices.Contains(m.To, addr) {
			continue
		}
		p, err := smtptest.Parse(m.Data)
		require.NoError(t, err)
		if strings.Contains(p.Header.Get("Subject"), subj) {
			out = append(out, p)
		}
	}
	return out
}

func (s *approvalStack) waitMail(t *testing.T, addr, subj string, n int) []smtptest.Parsed {
	t.Helper()
	var got []smtptest.Parsed
	require.Eventually(t, func() bool { got = s.mails(t, addr, subj); return len(got) >= n }, time.Minute, 100*time.Millisecond,
		"%d mail(s) to %s with %q", n, addr, subj)
	return got
}

var linkRE = regexp.MustCompile(`http://\S+/v1/approvals\?t=\S+`)

func link(t *testing.T, m smtptest.Parsed) string {
	t.Helper()
	l := linkRE.FindString(m.Text)
	require.NotEmpty(t, l, "mail carries a link:\n%s", m.Text)
	return l
}

func tokenOf(t *testing.T, l string) string {
	u, err := url.Parse(l)
	require.NoError(t, err)
	return u.Query().Get("t")
}

// open GETs an approval link.
func (s *approvalStack) open(t *testing.T, l string) (int, string) {
	t.Helper()
	resp, err := http.Get(l)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// answer POSTs the link's form.
func (s *approvalStack) answer(t *testing.T, token, decision, reason string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(s.intake.URL+"/v1/approvals", url.Values{"t": {token}, "decision": {decision}, "reason": {reason}})
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// memberOf reports whether the person's SCIM account is in group (read at
// SCIMMY).
func (s *approvalStack) memberOf(t *testing.T, emp, group string) bool {
	t.Helper()
	rec, err := activities.TemporalDirectory{Client: s.c}.Identity(context.Background(), emp)
	require.NoError(t, err)
	gs, err := s.scim.Memberships(context.Background(), rec.Accounts["app"])
	require.NoError(t, err)
	return slices.ContainsFunc(gs, func(g connectors.Group) bool { return strings.EqualFold(g.Name, group) })
}

// TestAccessRequestApprovedByMailLink: POST /v1/requests; the manager's
// mail (real SMTP) is parsed, its link opened over HTTP shows what is
// asked and two buttons, the POST approves; the grant is read at SCIMMY;
// at expiry it is revoked there; the person is told both times.
func TestAccessRequestApprovedByMailLink(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	store, err := auditdb.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	s.audit = store
	s.startWorker(t)
	s.people(t, "prod-admin")

	s.request(t, "r1", "group:prod-admin@app", "5s")
	ask := s.waitMail(t, "grace@acme.test", "Approve", 1)[0]
	assert.Contains(t, ask.Header.Get("Subject"), "prod-admin")
	st := s.status(t, "r1")
	assert.Equal(t, contract.StateWaiting, st.State)
	require.Len(t, st.Asked, 1)
	assert.Equal(t, "grace@acme.test", st.Asked[0].Email, "the manager, resolved from manager_id")
	assert.Contains(t, s.details(t, "r1"), "asked: grace@acme.test", "the UI's current details")

	l := link(t, ask)
	code, page := s.open(t, l)
	require.Equal(t, http.StatusOK, code, page)
	assert.Contains(t, page, "prod-admin")
	assert.Contains(t, page, `value="approve"`)
	assert.Contains(t, page, `value="deny"`)
	assert.False(t, s.memberOf(t, "E1", "prod-admin"), "opening the link decides nothing")

	approvedAt := time.Now()
	code, page = s.answer(t, tokenOf(t, l), "approve", "on call this week")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, func() bool { return s.memberOf(t, "E1", "prod-admin") }, time.Minute, 50*time.Millisecond)
	grantedAfter := time.Since(approvedAt)
	st = s.waitRequest(t, "r1", func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
	require.Len(t, st.Decisions, 1)
	d := st.Decisions[0]
	assert.Equal(t, "grace@acme.test", d.Approver)
	assert.Equal(t, "link", d.Via)
	assert.Equal(t, "on call this week", d.Reason)
	assert.True(t, d.Approve)
	assert.False(t, d.Time.IsZero())

	require.Eventually(t, func() bool { return !s.memberOf(t, "E1", "prod-admin") }, time.Minute, 50*time.Millisecond)
	revokedAfter := time.Since(st.Until)
	st = s.waitRequest(t, "r1", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
	assert.Contains(t, st.Note, "read back")
	s.waitMail(t, "ada@acme.test", "expired", 1)
	assert.NotEmpty(t, s.mails(t, "ada@acme.test", "granted until"))
	t.Logf("approval → granted at SCIMMY: %v; expiry → revoked at SCIMMY: %v", grantedAfter, revokedAfter)

	// The audit trail has the decision (who, why, how), the grant and the
	// revoke, once each.
	recs, err := store.Records(context.Background(), auditdb.Filter{EmployeeID: "E1", Group: "prod-admin"})
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		got = append(got, r.Kind+" "+r.Action+" by "+r.Actor)
	}
	assert.Equal(t, []string{"request approval.approved by grace@acme.test", "request group.added by jml", "request group.removed by jml"}, got)
	if len(recs) == 3 {
		assert.Equal(t, "on call this week", recs[0].Reason)
		assert.Equal(t, "round 1 via link", recs[0].Detail)
		assert.True(t, recs[1].Verified && recs[2].Verified, "read back at the target")
	}
	s.assertNoSecrets(t, []string{approvalKey, tokenOf(t, l), "smtp-secret"})
}

// details is the request's current details as the UI shows them.
func (s *approvalStack) details(t *testing.T, id string) string {
	t.Helper()
	var md sdkpb.WorkflowMetadata
	v, err := s.c.QueryWorkflow(context.Background(), contract.RequestWorkflowID(id), "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}

// TestAccessRequestLinksRefused: with a quorum of two (Grace and Alan), a
// forged, an expired and a replayed link are refused, as is approving
// one's own request; then Alan's link denies. Nothing is ever granted.
func TestAccessRequestLinksRefused(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"M1", "M2", "E1"}, Quorum: 2, Timeout: "2m"})
	s.startWorker(t)
	s.people(t, "prod-db")
	s.request(t, "r2", "group:prod-db@app", "1h")
	st := s.waitRequest(t, "r2", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
	assert.Len(t, st.Asked, 2, "Ada is not asked to approve her own request")
	gl := link(t, s.waitMail(t, "grace@acme.test", "Approve", 1)[0])
	al := link(t, s.waitMail(t, "alan@acme.test", "Approve", 1)[0])
	gt := tokenOf(t, gl)

	// Forged: Grace's link with its signature replaced, and one signed
	// with another key.
	p, _, _ := strings.Cut(gt, ".")
	code, _ := s.answer(t, p+".AAAA", "approve", "")
	assert.Equal(t, http.StatusForbidden, code)
	forged, err := approval.Sign([]byte(strings.Repeat("x", 40)), approval.Link{Workflow: "request/r2", Round: 1,
		Approver: "grace@acme.test", Expires: time.Now().Add(time.Hour).Unix(), Nonce: "f"})
	require.NoError(t, err)
	code, _ = s.answer(t, forged, "approve", "")
	assert.Equal(t, http.StatusForbidden, code)
	code, _ = s.open(t, s.intake.URL+"/v1/approvals?t="+url.QueryEscape(forged))
	assert.Equal(t, http.StatusForbidden, code)
	// Expired: properly signed, past its time.
	expired, err := approval.Sign([]byte(approvalKey), approval.Link{Workflow: "request/r2", Round: 1,
		Approver: "grace@acme.test", Expires: time.Now().Add(-time.Second).Unix(), Nonce: "e"})
	require.NoError(t, err)
	code, _ = s.answer(t, expired, "approve", "")
	assert.Equal(t, http.StatusGone, code)
	// Self-approval through an update (as from the UI or the CLI).
	h, err := s.c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: "request/r2",
		UpdateName: contract.UpdateDecide, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.ApprovalDecision{Approver: "ada@acme.test", Approve: true, Reason: "me", Via: "cli"}}})
	if err == nil {
		err = h.Get(context.Background(), nil)
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nobody approves their own request")

	// Grace approves once; the replay of her link is refused.
	code, page := s.answer(t, gt, "approve", "ok")
	require.Equal(t, http.StatusOK, code, page)
	assert.Contains(t, page, "1 of 2")
	code, page = s.answer(t, gt, "approve", "again")
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, page, "already used")
	st = s.status(t, "r2")
	assert.Equal(t, 1, st.Approvals)
	assert.False(t, s.memberOf(t, "E1", "prod-db"))

	// Alan denies.
	code, page = s.answer(t, tokenOf(t, al), "deny", "not without a ticket")
	require.Equal(t, http.StatusOK, code, page)
	st = s.waitRequest(t, "r2", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeDenied, st.Outcome)
	assert.False(t, s.memberOf(t, "E1", "prod-db"), "nothing granted")
	s.waitMail(t, "ada@acme.test", "denied", 1)
	// Alan's link after the end: refused.
	code, _ = s.answer(t, tokenOf(t, al), "approve", "")
	assert.Equal(t, http.StatusConflict, code)
}

// TestAccessRequestTimeoutEscalatesDenies: nobody answers: the manager is
// reminded, the fallback list is asked, and the timeout denies.
func TestAccessRequestTimeoutEscalatesDenies(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, RemindAfter: "2s", EscalateAfter: "4s",
		EscalateTo: []string{"security@acme.test"}, Timeout: "7s"})
	s.startWorker(t)
	s.people(t, "prod-admin")
	s.request(t, "r3", "group:prod-admin@app", "1h")
	s.waitMail(t, "grace@acme.test", "Approve", 1)
	rem := s.waitMail(t, "grace@acme.test", "Reminder:", 1)[0]
	assert.NotEmpty(t, link(t, rem))
	esc := s.waitMail(t, "security@acme.test", "Escalated:", 1)[0]
	assert.Contains(t, esc.Text, "did not answer in time")
	st := s.waitRequest(t, "r3", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeDenied, st.Outcome)
	require.NotEmpty(t, st.Decisions)
	last := st.Decisions[len(st.Decisions)-1]
	assert.Equal(t, "timeout", last.Via)
	assert.False(t, last.Approve)
	assert.Len(t, st.Asked, 2, "the manager and the fallback")
	assert.False(t, s.memberOf(t, "E1", "prod-admin"))
	// Escalation came after the reminder, the denial after both.
	s.waitMail(t, "ada@acme.test", "denied", 1)
}

// TestAccessRequestRefusedInput: unknown and terminated people, grants
// the policy does not offer and missing fields are refused with the
// field named, and nothing starts; a termination revokes the person's
// grant at once (leaver's requests.revoke), read at SCIMMY.
func TestAccessRequestTerminationRevokes(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.startWorker(t)
	s.people(t, "prod-admin")
	for _, tc := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"employee_id":"NOPE","grant":"group:prod-admin@app","for":"1h","reason":"x","requester":"a@acme.test"}`, 404, "employee_id"},
		{`{"employee_id":"E1","grant":"group:finance@app","for":"1h","reason":"x","requester":"a@acme.test"}`, 422, "grant"},
		{`{"employee_id":"E1","grant":"prod-admin","for":"1h","reason":"x","requester":"a@acme.test"}`, 422, "grant"},
		{`{"employee_id":"E1","grant":"group:prod-admin@app","for":"90d","reason":"x","requester":"a@acme.test"}`, 422, "for"},
		{`{"employee_id":"E1","grant":"group:prod-admin@app","for":"1h","reason":"","requester":"a@acme.test"}`, 422, "reason"},
	} {
		code, body := s.post(t, tc.body)
		assert.Equal(t, tc.code, code, body)
		assert.Contains(t, body, `"field":"`+tc.field+`"`, body)
	}
	assert.Zero(t, s.countRequests(t), "nothing started")

	s.request(t, "r4", "group:prod-admin@app", "1h")
	l := link(t, s.waitMail(t, "grace@acme.test", "Approve", 1)[0])
	code, page := s.answer(t, tokenOf(t, l), "approve", "ok")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, func() bool { return s.memberOf(t, "E1", "prod-admin") }, time.Minute, 50*time.Millisecond)
	s.waitRequest(t, "r4", func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })

	_, err := deliver(context.Background(), s.c, hr.Event{EventID: "E1-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": "E1"}})
	require.NoError(t, err)
	st := s.waitRequest(t, "r4", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeRevoked, st.Outcome)
	assert.Contains(t, st.Note, "left")
	s.waitStatus(t, []string{"E1"}, contract.StatusDeprovisioned)
	assert.False(t, s.memberOf(t, "E1", "prod-admin"), "revoked at SCIMMY (the leaver itself leaves groups alone)")
	v, err := s.c.QueryWorkflow(context.Background(), contract.LifecycleWorkflowID("leaver", "E1", "E1-term"), "", contract.QuerySteps)
	require.NoError(t, err)
	var steps []workflows.StepInfo
	require.NoError(t, v.Get(&steps))
	row := stepByName(steps, "requests.revoke")
	assert.Equal(t, workflows.StepDone, row.State)
	assert.Equal(t, "1 access request(s) revoked", row.Note)

	n := s.countRequests(t)
	code, body := s.post(t, `{"employee_id":"E1","grant":"group:prod-admin@app","for":"1h","reason":"x","requester":"a@acme.test"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code, body)
	assert.Contains(t, body, "terminated")
	assert.Equal(t, n, s.countRequests(t), "nothing started for a terminated person")
	writeHistory(t, s.c, "request/r4", "request-leaver.json")
}

func (s *approvalStack) countRequests(t *testing.T) int {
	t.Helper()
	resp, err := s.c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s'", contract.AccessRequestWorkflowName)})
	require.NoError(t, err)
	return int(resp.GetCount())
}

// decide approves a request as an approver would from the CLI.
func (s *approvalStack) decide(t *testing.T, id, who string, approve bool) {
	t.Helper()
	h, err := s.c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: contract.RequestWorkflowID(id),
		UpdateName: contract.UpdateDecide, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.ApprovalDecision{Approver: who, Approve: approve, Reason: "ok", Via: "cli"}}})
	require.NoError(t, err)
	require.NoError(t, h.Get(context.Background(), nil))
}

// TestAccessRequests100ExpireAcrossRestart: 100 grants with short expiries
// (one group each), approved as from the CLI; the worker is stopped while
// they wait (and while one request waits for its reminder) and started
// again after their expiries passed: every grant is revoked, each read
// back at SCIMMY, and the reminder is sent. A birthright group requested
// for a while stays after its expiry. Then 99 more grants expire with the
// worker up. The test logs p50/p95/max of approval → granted (read back),
// of due → revoked after the restart, and of expiry → revoked (read back,
// the run closed) with the worker up (docs/approvals.md, Measured).
func TestAccessRequests100ExpireAcrossRestart(t *testing.T) {
	const n = 100
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, RemindAfter: "8s", Timeout: "30m"})
	s.policy.Approvals.Mail = "" // 100 asks by CLI: no mail (but the reminder's timer still fires)
	stop := s.startWorker(t)
	var groups []string
	for i := range n {
		groups = append(groups, fmt.Sprintf("prod-%03d", i))
	}
	s.people(t, groups...)
	for i, g := range groups {
		s.request(t, fmt.Sprintf("bulk-%03d", i), "group:"+g+"@app", "40s")
	}
	s.request(t, "birth", "group:everyone@app", "3s")
	s.waitWaiting(t, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { s.decide(t, fmt.Sprintf("bulk-%03d", i), "M1", true) })
	}
	wg.Wait()
	s.waitRequest(t, "birth", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
	s.decide(t, "birth", "grace@acme.test", true)
	s.request(t, "later", "group:prod-000@app", "1h") // waits for approval across the restart
	s.waitRequest(t, "later", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })

	var last time.Time
	var granting []time.Duration
	for i := range n {
		st := s.waitRequest(t, fmt.Sprintf("bulk-%03d", i), func(st workflows.RequestStatus) bool { return !st.Until.IsZero() })
		require.Equal(t, contract.StateGranted, st.State, "granted, not expired yet: the expiry is long enough for the set-up")
		if st.Until.After(last) {
			last = st.Until
		}
		granting = append(granting, st.GrantedAt.Sub(st.Decisions[0].Time))
	}
	t.Logf("approval → granted (read back at SCIMMY), %d approved at once: %s", n, percentiles(granting))
	rec, err := activities.TemporalDirectory{Client: s.c}.Identity(context.Background(), "E1")
	require.NoError(t, err)
	gs, err := s.scim.Memberships(context.Background(), rec.Accounts["app"])
	require.NoError(t, err)
	assert.Len(t, slices.DeleteFunc(gs, func(g connectors.Group) bool { return !strings.HasPrefix(g.Name, "prod-") }), n, "all granted")

	stop()
	time.Sleep(time.Until(last) + 2*time.Second) // every expiry and the reminder pass with no worker
	s.startWorker(t)
	restarted := time.Now()
	var recovering []time.Duration
	for i := range n {
		st := s.result(t, fmt.Sprintf("bulk-%03d", i))
		assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
		assert.Contains(t, st.Note, "removed from")
		recovering = append(recovering, st.EndedAt.Sub(restarted))
	}
	allRevoked := time.Since(restarted)
	t.Logf("worker restart → revoked (read back), %d expired while it was down: %s", n, percentiles(recovering))
	gs, err = s.scim.Memberships(context.Background(), rec.Accounts["app"])
	require.NoError(t, err)
	assert.Empty(t, slices.DeleteFunc(gs, func(g connectors.Group) bool { return !strings.HasPrefix(g.Name, "prod-") }), "every grant revoked at SCIMMY")
	t.Logf("%d grants: all revoked and read back %v after the worker came back (%v after the last expiry)", n, allRevoked, time.Since(last))

	birth := s.waitRequest(t, "birth", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeExpired, birth.Outcome)
	assert.Contains(t, birth.Note, "kept")
	assert.True(t, s.memberOf(t, "E1", "everyone"), "a birthright membership outlives the grant's expiry")
	later := s.status(t, "later")
	assert.Equal(t, contract.StateWaiting, later.State)
	assert.Contains(t, strings.Join(later.Mails, "; "), "reminder", "the reminder's timer fired after the restart")
	s.decide(t, "later", "M1", true)
	require.Eventually(t, func() bool { return s.memberOf(t, "E1", "prod-000") }, time.Minute, 100*time.Millisecond)

	// Expiries with the worker up (prod-000 is later's).
	for i := 1; i < n; i++ {
		s.request(t, fmt.Sprintf("again-%03d", i), "group:"+groups[i]+"@app", "5s")
	}
	s.waitWaiting(t, n-1)
	for i := 1; i < n; i++ {
		wg.Go(func() { s.decide(t, fmt.Sprintf("again-%03d", i), "M1", true) })
	}
	wg.Wait()
	var expiring []time.Duration
	granting = nil
	for i := 1; i < n; i++ {
		st := s.result(t, fmt.Sprintf("again-%03d", i))
		assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
		assert.Contains(t, st.Note, "removed from")
		granting = append(granting, st.GrantedAt.Sub(st.Decisions[0].Time))
		expiring = append(expiring, st.EndedAt.Sub(st.Until))
	}
	gs, err = s.scim.Memberships(context.Background(), rec.Accounts["app"])
	require.NoError(t, err)
	assert.Equal(t, []string{"prod-000"}, groupNames(slices.DeleteFunc(gs, func(g connectors.Group) bool { return !strings.HasPrefix(g.Name, "prod-") })))
	t.Logf("approval → granted (read back at SCIMMY), %d approved at once: %s", n-1, percentiles(granting))
	t.Logf("expiry → revoked (read back at SCIMMY, run closed), %d with the worker up: %s", n-1, percentiles(expiring))
	retried := map[string]int{}
	for i := range n {
		for _, id := range []string{fmt.Sprintf("bulk-%03d", i), fmt.Sprintf("again-%03d", i)} {
			for _, r := range s.retries(t, id) {
				retried[r]++
			}
		}
	}
	t.Logf("activities retried (what the outliers waited for): %v", retried)
}

// retries lists the activities of a request's run that needed more than
// one attempt, each as "Type attempt N after: last failure".
func (s *approvalStack) retries(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	var typ string
	it := s.c.GetWorkflowHistory(context.Background(), contract.RequestWorkflowID(id), "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return out // bulk-000 has no "again" twin
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			typ = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			out = append(out, fmt.Sprintf("%s attempt %d after: %s", typ, a.GetAttempt(), a.GetLastFailure().GetMessage()))
		}
	}
	return out
}

// result waits for a request's end and returns its result (a long poll
// of the server, not queries, which load the worker being measured).
func (s *approvalStack) result(t *testing.T, id string) workflows.RequestStatus {
	t.Helper()
	var st workflows.RequestStatus
	require.NoError(t, s.c.GetWorkflow(context.Background(), contract.RequestWorkflowID(id), "").Get(context.Background(), &st))
	return st
}

// waitWaiting waits until n requests wait for approval, as visibility
// shows it (polling one count, not every request's query: queries are
// workflow tasks, and 100 pollers would load the worker being measured).
func (s *approvalStack) waitWaiting(t *testing.T, n int) {
	t.Helper()
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		contract.AccessRequestWorkflowName, contract.SAState, contract.StateWaiting)
	var got int64
	require.Eventually(t, func() bool {
		resp, err := s.c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		require.NoError(t, err)
		got = resp.GetCount()
		return got == int64(n)
	}, 2*time.Minute, 200*time.Millisecond, "waiting requests: %d of %d", got, n)
}

func groupNames(gs []connectors.Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

// percentiles renders p50, p95 and the maximum of ds (nearest rank).
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		return ds[int(math.Ceil(q*float64(len(ds))))-1].Round(time.Millisecond)
	}
	return fmt.Sprintf("p50 %v, p95 %v, max %v (n=%d)", at(0.5), at(0.95), ds[len(ds)-1].Round(time.Millisecond), len(ds))
}

// TestAccessRequestExtendAndRevokeEarly: an extension asks the approvers
// again (a second round, its own mail and link); approved, the expiry
// moves; an early revoke then removes the membership at SCIMMY.
func TestAccessRequestExtendAndRevokeEarly(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.startWorker(t)
	s.people(t, "prod-admin")
	s.request(t, "r5", "group:prod-admin@app", "1m")
	s.waitRequest(t, "r5", func(st workflows.RequestStatus) bool { return st.State == contract.StateWaiting })
	s.decide(t, "r5", "grace@acme.test", true)
	st := s.waitRequest(t, "r5", func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
	until := st.Until

	update := func(name string, arg any) (string, error) {
		h, err := s.c.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: "request/r5",
			UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{arg}})
		var answer string
		if err == nil {
			err = h.Get(context.Background(), &answer)
		}
		return answer, err
	}
	_, err := update(contract.UpdateExtend, workflows.ExtendRequest{For: "60d", Reason: "longer", Requester: "it-portal@acme.test"})
	require.Error(t, err, "beyond max_duration")
	answer, err := update(contract.UpdateExtend, workflows.ExtendRequest{For: "2h", Reason: "incident still open", Requester: "it-portal@acme.test"})
	require.NoError(t, err)
	assert.Contains(t, answer, "grace@acme.test")
	ext := s.waitMail(t, "grace@acme.test", "Approve an extension", 1)[0]
	code, page := s.open(t, link(t, ext))
	require.Equal(t, http.StatusOK, code, page)
	assert.Contains(t, page, "Approve an extension?")
	code, page = s.answer(t, tokenOf(t, link(t, ext)), "approve", "fine")
	require.Equal(t, http.StatusOK, code, page)
	st = s.waitRequest(t, "r5", func(st workflows.RequestStatus) bool { return st.Until.After(until) })
	assert.Equal(t, until.Add(2*time.Hour), st.Until)
	assert.Equal(t, contract.StateGranted, st.State)
	assert.Equal(t, 2, st.Round)
	assert.True(t, s.memberOf(t, "E1", "prod-admin"))

	answer, err = update(contract.UpdateRevoke, workflows.RevokeRequest{Operator: "secops@acme.test", Reason: "incident closed"})
	require.NoError(t, err)
	assert.Equal(t, "revoking now", answer)
	st = s.waitRequest(t, "r5", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeRevoked, st.Outcome)
	assert.Contains(t, st.Note, "incident closed")
	assert.False(t, s.memberOf(t, "E1", "prod-admin"), "revoked at SCIMMY before the expiry")
	writeHistory(t, s.c, "request/r5", "request-extend-revoke.json")
}

// TestApprovalStepInFlow: a joiner whose policy has an approval step
// waits (Waiting, the manager asked by mail) before its group step; the
// manager's link approves and the group is granted at SCIMMY. A second
// joiner's approval is denied: its run ends Aborted with the denial
// recorded, and its later step never runs.
func TestApprovalStepInFlow(t *testing.T) {
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.policy.Joiner.Steps = append(s.policy.Joiner.Steps[:1:1],
		policy.Step{Name: "admin.approval", When: `access eq "admin"`, Approval: &policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"}},
		policy.Step{When: `access eq "admin"`, ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"prod-admin"}}})
	s.startWorker(t)
	s.people(t, "prod-admin")
	hire := func(id, first string) {
		s.hire(t, map[string]string{"employee_id": id, "first_name": first, "email": strings.ToLower(first) + "@acme.test",
			"department": "eng", "manager_id": "M1", "access": "admin"})
	}
	hire("E2", "Barbara")
	asks := s.waitMail(t, "grace@acme.test", "approval of the joiner run of E2", 1)
	steps := s.joinerSteps(t, "E2")
	assert.Equal(t, workflows.StepRunning, stepByName(steps, "admin.approval").State)
	assert.Equal(t, workflows.StepPending, stepByName(steps, "app.manage_relationships").State)
	wid := "approval/" + contract.LifecycleWorkflowID("joiner", "E2", "E2-hire") + "/admin.approval"
	v, err := s.c.QueryWorkflow(context.Background(), wid, "", contract.QueryRequest)
	require.NoError(t, err)
	var st workflows.RequestStatus
	require.NoError(t, v.Get(&st))
	assert.Equal(t, contract.StateWaiting, st.State)
	assert.Equal(t, "grace@acme.test", st.Asked[0].Email)
	code, page := s.answer(t, tokenOf(t, link(t, asks[0])), "approve", "welcome")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, func() bool {
		steps = s.joinerSteps(t, "E2")
		return stepByName(steps, "app.manage_relationships").State == workflows.StepDone
	}, time.Minute, 100*time.Millisecond, "steps: %+v", steps)
	assert.Equal(t, workflows.StepDone, stepByName(steps, "admin.approval").State)
	assert.Contains(t, stepByName(steps, "admin.approval").Note, "grace@acme.test via link")
	assert.True(t, s.memberOf(t, "E2", "prod-admin"))

	hire("E3", "Claude")
	asks = s.waitMail(t, "grace@acme.test", "approval of the joiner run of E3", 1)
	code, page = s.answer(t, tokenOf(t, link(t, asks[0])), "deny", "not this one")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, func() bool {
		return stepByName(s.joinerSteps(t, "E3"), "admin.approval").State == workflows.StepAborted
	}, time.Minute, 100*time.Millisecond)
	steps = s.joinerSteps(t, "E3")
	row := stepByName(steps, "admin.approval")
	require.NotNil(t, row.Decision)
	assert.Equal(t, "grace@acme.test", row.Decision.Operator)
	assert.Equal(t, "not this one", row.Decision.Reason)
	assert.Equal(t, workflows.StepPending, stepByName(steps, "app.manage_relationships").State, "never ran")
}
