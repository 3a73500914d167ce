package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// RequestBody is the body of POST /v1/requests.
type RequestBody struct {
	// ID names the request (request/<id>); empty: a random one. Sending
	// the same ID again is answered 409 with nothing started.
	ID         string `json:"id,omitempty"`
	EmployeeID string `json:"employee_id"`
	Grant      string `json:"grant"` // group:NAME@TARGET
	For        string `json:"for"`   // 8h, 3d
	Reason     string `json:"reason"`
	Requester  string `json:"requester"`
}

// RequestResponse answers POST /v1/requests.
type RequestResponse struct {
	RequestID  string          `json:"request_id,omitempty"`
	WorkflowID string          `json:"workflow_id,omitempty"`
	Error      string          `json:"error,omitempty"`
	Fields     []hr.FieldError `json:"fields,omitempty"`
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseRequest turns the body's fields into a request; a RequestError
// names the field.
func ParseRequest(b RequestBody) (activities.AccessRequest, error) {
	r := activities.AccessRequest{EmployeeID: strings.TrimSpace(b.EmployeeID), Reason: strings.TrimSpace(b.Reason),
		Requester: strings.TrimSpace(b.Requester)}
	if b.ID != "" && !requestIDRE.MatchString(b.ID) {
		return r, &activities.RequestError{Field: "id", Msg: "letters, digits, '.', '_' and '-' only, at most 64"}
	}
	if r.EmployeeID != "" {
		if msg := hr.CheckID(r.EmployeeID); msg != "" {
			return r, &activities.RequestError{Field: "employee_id", Msg: msg}
		}
	}
	if b.Grant != "" {
		var err error
		if r.Group, r.Target, err = policy.ParseGrant(b.Grant); err != nil {
			return r, &activities.RequestError{Field: "grant", Msg: err.Error()}
		}
	}
	if b.For != "" {
		d, err := policy.ParseDuration(b.For)
		if err != nil {
			return r, &activities.RequestError{Field: "for", Msg: err.Error()}
		}
		r.For = d
	}
	return r, nil
}

// StartRequest checks a request (CheckRequest: nothing starts for an
// unknown or terminated person or a grant the policy does not offer) and
// starts its workflow, request/<id>. An ID in use is a *ConflictError.
func StartRequest(ctx context.Context, c client.Client, p *policy.Policy, dir activities.Directory, id string, r activities.AccessRequest) (string, error) {
	if _, err := activities.CheckRequest(ctx, p, dir, r); err != nil {
		return "", err
	}
	if id == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id = hex.EncodeToString(b[:])
	}
	if err := checkGrant(ctx, c, id, r); err != nil {
		return "", err
	}
	wid := contract.RequestWorkflowID(id)
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wid, TaskQueue: contract.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(contract.SAEmployeeID).ValueSet(r.EmployeeID),
			temporal.NewSearchAttributeKeyKeyword(contract.SAEvent).ValueSet(contract.EventRequest),
			temporal.NewSearchAttributeKeyKeyword(contract.SAState).ValueSet(contract.StateRunning)),
		StaticSummary: "access request: " + r.Group + " in " + r.Target,
	}, contract.AccessRequestWorkflowName, r)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "", &ConflictError{WorkflowID: wid}
	}
	if err != nil {
		return "", fmt.Errorf("start %s: %w", wid, err)
	}
	return wid, nil
}

// checkGrant runs the RequestCheck workflow on a worker and waits for
// it: a group the target does not have, a target that is not configured
// or cannot manage memberships is a RequestError on grant; a check that
// cannot be done (worker or target unreachable) is an error (503): the
// request is not accepted blindly.
func checkGrant(ctx context.Context, c client.Client, id string, r activities.AccessRequest) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "request-check/" + id, TaskQueue: contract.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowExecutionTimeout: time.Minute,
		StaticSummary:            "check access request: " + r.Group + " in " + r.Target,
	}, contract.RequestCheckWorkflowName, r)
	if err == nil {
		err = run.Get(ctx, nil)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case activities.ErrTypeGroupNotFound:
			return &activities.RequestError{Field: "grant", Msg: fmt.Sprintf("group %q does not exist at %q", r.Group, r.Target)}
		case "PolicyInvalid", activities.ErrTypeUnsupported:
			return &activities.RequestError{Field: "grant", Msg: app.Message()}
		}
	}
	if err != nil {
		return fmt.Errorf("look up group %q at %q: %w", r.Group, r.Target, err)
	}
	return nil
}

// requests answers POST /v1/requests, authenticated like the events.
func (s *server) requests(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, RequestResponse{Error: "reading body: " + err.Error()})
		return
	}
	if err := s.authenticate(r, body, false); err != nil {
		writeJSON(w, http.StatusUnauthorized, RequestResponse{Error: err.Error()})
		return
	}
	var b RequestBody
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeJSON(w, http.StatusBadRequest, RequestResponse{Error: "body: " + err.Error()})
		return
	}
	req, err := ParseRequest(b)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SubmitTimeout)
		var wid string
		wid, err = StartRequest(ctx, s.cfg.Client, s.cfg.Policy, s.cfg.Directory, b.ID, req)
		cancel()
		if err == nil {
			id, _ := contract.RequestIDOf(wid)
			writeJSON(w, http.StatusAccepted, RequestResponse{RequestID: id, WorkflowID: wid})
			return
		}
	}
	var re *activities.RequestError
	var conflict *ConflictError
	switch {
	case errors.As(err, &re):
		status := http.StatusUnprocessableEntity
		if re.Unknown {
			status = http.StatusNotFound
		}
		writeJSON(w, status, RequestResponse{Error: re.Error(), Fields: []hr.FieldError{{Field: re.Field, Message: re.Msg}}})
	case errors.As(err, &conflict):
		writeJSON(w, http.StatusConflict, RequestResponse{Error: "a request with this id exists", WorkflowID: conflict.WorkflowID,
			Fields: []hr.FieldError{{Field: "id", Message: "in use"}}})
	default:
		s.cfg.Logger.Warn("access request not started", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, RequestResponse{Error: "request not started, retry later: " + err.Error()})
	}
}

var approvalPage = template.Must(template.New("approval").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>{{.Title}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}
button{font-size:1em;padding:.5em 1.5em;margin-right:1em}textarea{width:100%}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{with .Request}}<dl>
<dt>Person</dt><dd>{{.EmployeeID}}</dd>
<dt>Access</dt><dd>group <b>{{.Group}}</b> in <b>{{.Target}}</b> for {{.For}}</dd>
<dt>Requested by</dt><dd>{{.Requester}}</dd>
<dt>Reason</dt><dd>{{.Reason}}</dd>
<dt>Approvals</dt><dd>{{.Approvals}} of {{.Quorum}} (round {{.Round}})</dd>
</dl>{{end}}
{{if .Token}}<form method="post" action="approvals">
<input type="hidden" name="t" value="{{.Token}}">
<p><label>Reason (recorded with your answer)<br><textarea name="reason" rows="3"></textarea></label></p>
<p><button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
<p>You answer as {{.Approver}}. This link works once.</p></form>{{end}}
</body></html>`))

type pageData struct {
	Title, Message, Token, Approver string
	Request                         *workflows.RequestStatus
}

func (s *server) page(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = approvalPage.Execute(w, d)
}

// verifyLink checks a link's token, answering the refusal page itself.
func (s *server) verifyLink(w http.ResponseWriter, tok string) (approval.Link, bool) {
	if len(s.cfg.ApprovalKey) == 0 {
		s.page(w, http.StatusServiceUnavailable, pageData{Title: "Approval links are not enabled", Message: "This server has no " + approval.KeyEnv + "."})
		return approval.Link{}, false
	}
	l, err := approval.Verify(s.cfg.ApprovalKey, tok, s.cfg.Now())
	switch {
	case errors.Is(err, approval.ErrExpired):
		s.page(w, http.StatusGone, pageData{Title: "This link has expired", Message: "Ask for a new one, or answer with starter approve|deny."})
		return l, false
	case err != nil:
		s.cfg.Logger.Warn("approval link refused", zap.Error(err))
		s.page(w, http.StatusForbidden, pageData{Title: "This link is not valid"})
		return l, false
	}
	return l, true
}

// approvalForm answers GET /v1/approvals?t=…: what is asked and two
// buttons. Opening the link decides nothing (mail scanners open links).
func (s *server) approvalForm(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	l, ok := s.verifyLink(w, tok)
	if !ok {
		return
	}
	v, err := s.cfg.Client.QueryWorkflow(r.Context(), l.Workflow, "", contract.QueryRequest)
	var st workflows.RequestStatus
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		s.page(w, http.StatusNotFound, pageData{Title: "This request cannot be found", Message: "It may have ended."})
		return
	}
	title := "Approve access?"
	switch {
	case st.Review != "":
		title = "Approve again after a move?"
	case st.Extending:
		title = "Approve an extension?"
	}
	d := pageData{Title: title, Token: tok, Approver: l.Approver, Request: &st}
	if st.Round != l.Round || st.State == contract.StateCompleted || (!st.Extending && st.Review == "" && st.State != contract.StateWaiting) {
		d.Token, d.Title = "", "This request is no longer waiting for this answer"
		d.Message = "State: " + st.State + " " + st.Outcome
		s.page(w, http.StatusConflict, d)
		return
	}
	s.page(w, http.StatusOK, d)
}

// approvalDecide answers the form's POST: the decision goes to the
// request's workflow as an Update, which refuses a used link, a closed
// round, an approver not asked and a self-approval.
func (s *server) approvalDecide(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.page(w, http.StatusBadRequest, pageData{Title: "Bad form"})
		return
	}
	tok := r.PostForm.Get("t")
	l, ok := s.verifyLink(w, tok)
	if !ok {
		return
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		s.page(w, http.StatusBadRequest, pageData{Title: "decision: approve or deny"})
		return
	}
	d := workflows.ApprovalDecision{Approver: l.Approver, Approve: approve, Reason: strings.TrimSpace(r.PostForm.Get("reason")),
		Via: "link", LinkID: approval.ID(tok), Round: l.Round}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SubmitTimeout)
	defer cancel()
	h, err := s.cfg.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: l.Workflow, UpdateName: contract.UpdateDecide,
		Args: []any{d}, WaitForStage: client.WorkflowUpdateStageCompleted})
	var answer string
	if err == nil {
		err = h.Get(ctx, &answer)
	}
	var app *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &app):
		s.page(w, http.StatusConflict, pageData{Title: "Your answer was not taken", Message: app.Message()})
	case errors.As(err, &nf):
		s.page(w, http.StatusConflict, pageData{Title: "This request has ended"})
	case err != nil:
		s.cfg.Logger.Warn("approval not delivered", zap.Error(err))
		s.page(w, http.StatusServiceUnavailable, pageData{Title: "Try again in a moment", Message: "The answer did not reach jml."})
	default:
		s.page(w, http.StatusOK, pageData{Title: "Thank you", Message: answer})
	}
}
