package rest

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/jml-dev/jml/contract"
)

// Event is the workflow outcome a notification reports. Its fields are
// available to the notify templates as {Run.kind}, {Run.workflow},
// {Run.workflow_id}, {Run.employee_id}, {Run.failed_step}, {Run.error},
// {Run.ui_url} and {Run.message}.
type Event struct {
	Kind       string // contract.OnCompleted, OnNeedsAttention, OnFailed, …
	Workflow   string // joiner, mover, leaver
	WorkflowID string
	EmployeeID string
	FailedStep string
	Error      string
	UIURL      string // link to the run in the Web UI, if known
}

// Message is the default one-line text of an event. It names the run and
// the failed step, never the error text or attributes (the channel may be
// wider than the operators).
func (e Event) Message() string {
	var b strings.Builder
	b.WriteString("jml " + e.Workflow + " " + e.WorkflowID)
	switch e.Kind {
	case contract.OnNeedsAttention:
		b.WriteString(" needs attention: step " + e.FailedStep + " failed")
	case contract.OnAborted:
		b.WriteString(" aborted by an operator")
		if e.FailedStep != "" {
			b.WriteString(" at step " + e.FailedStep)
		}
	case contract.OnFailed:
		b.WriteString(" failed")
		if e.FailedStep != "" {
			b.WriteString(" at step " + e.FailedStep)
		}
	default:
		b.WriteString(" completed")
	}
	if e.UIURL != "" {
		b.WriteString(" — " + e.UIURL)
	}
	return b.String()
}

// defaultNotifyBody is accepted by Slack, Mattermost and Teams incoming
// webhooks.
const defaultNotifyBody = `{"text": "{Run.message}"}`

// Fields are the event as the {Run.*} outputs of the notify templates.
func (e Event) Fields() map[string]string {
	return map[string]string{
		"kind":        e.Kind,
		"workflow":    e.Workflow,
		"workflow_id": e.WorkflowID,
		"employee_id": e.EmployeeID,
		"failed_step": e.FailedStep,
		"error":       e.Error,
		"ui_url":      e.UIURL,
		"message":     e.Message(),
	}
}

// Notify sends r for ev if r.Spec subscribes to ev.Kind, reporting whether
// it sent. Without a body it POSTs {"text": ev.Message()}. r.Templates must
// render {Run.*} as ev.Fields(); without Templates, templates are sent as
// written.
func (c *Client) Notify(ctx context.Context, r Request, ev Event) (bool, error) {
	if !contract.Subscribed(r.Spec.On, ev.Kind) {
		return false, nil
	}
	if strings.TrimSpace(r.Spec.Body) == "" && (r.Spec.Method == "" || strings.EqualFold(r.Spec.Method, "POST")) {
		r.Spec.Method, r.Spec.Body = "POST", defaultNotifyBody
		if r.Templates == nil { // nothing renders {Run.message}: write it in
			b, err := json.Marshal(map[string]string{"text": ev.Message()})
			if err != nil {
				return false, err
			}
			r.Spec.Body = string(b)
		}
	}
	_, err := c.Send(ctx, r)
	return err == nil, err
}
