package rest

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// Outcomes a notify step may subscribe to (policy notify.on).
const (
	OnCompleted      = "completed"
	OnNeedsAttention = "needs_attention"
	OnFailed         = "failed"
	OnAborted        = "aborted" // an operator aborted the run
)

// Event is the workflow outcome a notification reports. Its fields are
// available to the notify templates as {Run.kind}, {Run.workflow},
// {Run.workflow_id}, {Run.employee_id}, {Run.failed_step}, {Run.error},
// {Run.ui_url} and {Run.message}.
type Event struct {
	Kind       string // OnCompleted, OnNeedsAttention or OnFailed
	Workflow   string // joiner, mover, leaver
	WorkflowID string
	EmployeeID string
	FailedStep string
	Error      string
	UIURL      string // link to the run in the Web UI, if known
}

// Subscribed reports whether a notify step fires for kind (an empty On
// means completed only).
func Subscribed(spec policy.RESTRequest, kind string) bool {
	if len(spec.On) == 0 {
		return kind == OnCompleted
	}
	return slices.Contains(spec.On, kind)
}

// Message is the default one-line text of an event. It names the run and
// the failed step, never the error text or attributes (the channel may be
// wider than the operators).
func (e Event) Message() string {
	var b strings.Builder
	b.WriteString("jml " + e.Workflow + " " + e.WorkflowID)
	switch e.Kind {
	case OnNeedsAttention:
		b.WriteString(" needs attention: step " + e.FailedStep + " failed")
	case OnAborted:
		b.WriteString(" aborted by an operator")
		if e.FailedStep != "" {
			b.WriteString(" at step " + e.FailedStep)
		}
	case OnFailed:
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

// Notify sends r for ev if r.Spec subscribes to ev.Kind, reporting whether
// it sent. Without a body it POSTs {"text": ev.Message()}.
func (c *Client) Notify(ctx context.Context, r Request, ev Event) (bool, error) {
	if !Subscribed(r.Spec, ev.Kind) {
		return false, nil
	}
	env := transform.Env{}
	if r.Env != nil {
		env = *r.Env
	}
	env.Outputs = maps.Clone(env.Outputs)
	if env.Outputs == nil {
		env.Outputs = map[string]map[string]string{}
	}
	env.Outputs["Run"] = map[string]string{
		"kind":        ev.Kind,
		"workflow":    ev.Workflow,
		"workflow_id": ev.WorkflowID,
		"employee_id": ev.EmployeeID,
		"failed_step": ev.FailedStep,
		"error":       ev.Error,
		"ui_url":      ev.UIURL,
		"message":     ev.Message(),
	}
	r.Env = &env
	if strings.TrimSpace(r.Spec.Body) == "" && (r.Spec.Method == "" || strings.EqualFold(r.Spec.Method, "POST")) {
		r.Spec.Method, r.Spec.Body = "POST", defaultNotifyBody
	}
	_, err := c.Send(ctx, r)
	return err == nil, err
}
