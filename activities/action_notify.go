package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/notify"
	"github.com/jml-dev/jml/policy"
)

// notifyAction is notify (NOTIFY): a message on the run's outcomes or
// right after a step, by webhook, e-mail, Slack or Teams.
type notifyAction struct{}

func (notifyAction) Name() string                       { return policy.ActionNotify }
func (notifyAction) Activity(a *Activities) any         { return a.Notify }
func (notifyAction) Traits() Traits                     { return Traits{Notification: true} }
func (notifyAction) Supports(any) bool                  { return true } // sends its own messages
func (notifyAction) Needs(policy.Step, string) []string { return nil }

func (notifyAction) plan(ps *PlannedStep) error {
	notifyPlan(ps, *ps.Spec.Notify)
	return nil
}

func (notifyAction) sources(p *policy.Policy, s policy.Step) (string, []string) {
	return requestSources(p, s.Notify)
}

func (notifyAction) secret(s policy.Step) bool { return requestSecret(s.Notify) }

func (notifyAction) does(s policy.Step, _ string) string {
	if r := s.Notify; r.Channel != "" && r.Channel != policy.ChannelWebhook {
		return "notify by " + r.Channel + paren(r.Target)
	}
	return requestDoes(s.Notify)
}

func (notifyAction) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	return []Effect{{Kind: EffectOther, Note: ps.Action}}, nil
}

// Notify is NOTIFY: it fires when the step subscribes to in.Outcome (a run
// completed, needing attention, blocked or aborted; a step with after:
// fires when that step is done). The message is rendered here, on the
// worker whose vault holds the run's secrets, and sent by its channel:
// webhook (connectors/rest), email (notify.SMTP), slack or teams
// (notify.Webhook). History gets only the step's note.
func (a *Activities) Notify(ctx context.Context, in StepInput) (_ StepResult, err error) {
	spec := in.Step.Spec.Notify
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a notify step"))
	}
	ev := rest.Event{Kind: in.Outcome, Workflow: in.Kind, WorkflowID: in.Owner,
		EmployeeID: in.Attributes["employee_id"], FailedStep: in.FailedStep, Error: in.Error,
		UIURL: a.uiURL(ctx, in.Owner)}
	if ev.Kind == "" {
		ev.Kind = contract.OnCompleted
	}
	if ev.Kind == contract.OnNeedsAttention && !contract.Subscribed(spec.On, ev.Kind) && contract.Subscribed(spec.On, contract.OnFailed) {
		ev.Kind = contract.OnFailed // a run waiting for an operator is what "failed" subscribers want to hear
	}
	ch := a.cfg.Policy.NotifyChannel(*spec)
	sent := true
	defer func() { a.countNotification(ch, ev.Kind, sent, err) }()
	if ch == policy.ChannelWebhook {
		var res StepResult
		res, sent, err = a.notifyWebhook(ctx, in, spec, ev)
		return res, err
	}
	if !contract.Subscribed(spec.On, ev.Kind) {
		sent = false
		return StepResult{Note: "not subscribed to " + ev.Kind}, nil
	}
	msg, res, err := a.renderNotification(ctx, in, spec, ev)
	if err != nil {
		return StepResult{}, err
	}
	switch ch {
	case policy.ChannelEmail:
		err = a.sendEmail(ctx, in, spec, ev, msg)
	case policy.ChannelSlack, policy.ChannelTeams:
		u := a.getenv(spec.URLEnv)
		if u == "" {
			return StepResult{}, permanent("PolicyInvalid", fmt.Errorf("%s: environment variable %s (url_env) is empty or unset", in.Step.Name, spec.URLEnv))
		}
		err = notify.Webhook{HTTPClient: a.cfg.HTTPClient, AllowInsecureLoopback: a.cfg.AllowInsecureLoopback}.
			Post(ctx, ch, u, notify.Chat{Title: msg.subject, Text: msg.text, Link: ev.UIURL, Secret: len(msg.secrets) > 0})
	default:
		return StepResult{}, permanent("PolicyInvalid", fmt.Errorf("%s: unknown channel %q", in.Step.Name, ch))
	}
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: %w", in.Step.Name, err), msg.secrets...)
	}
	a.log.Info("notification sent", zap.String("step", in.Step.Name), zap.String("channel", ch),
		zap.String("outcome", ev.Kind), zap.Int("recipients", len(msg.to)+len(msg.cc)+len(msg.bcc)))
	if res.Note == "" {
		res.Note = "sent by " + ch
		if n := len(msg.to) + len(msg.cc) + len(msg.bcc); n > 0 {
			res.Note += fmt.Sprintf(" to %d recipient(s)", n)
		}
	}
	to := strings.Join(slices.Concat(msg.to, msg.cc, msg.bcc), ", ")
	if to == "" {
		to = spec.URLEnv
	}
	res.Effects = deliveryEffects(audit.NotificationSent, ch, to, len(msg.secrets) > 0)
	return res, nil
}

// countNotification counts one notify attempt in the worker's metrics.
func (a *Activities) countNotification(channel, event string, sent bool, err error) {
	if a.cfg.Metrics == nil {
		return
	}
	result := "sent"
	switch {
	case err != nil:
		result = "failed"
	case !sent:
		result = "not_subscribed"
	}
	a.cfg.Metrics.Notification(channel, event, result)
}

// notifyPlan derives when a notify step fires.
func notifyPlan(ps *PlannedStep, spec policy.RESTRequest) {
	ps.OnCompleted = contract.Subscribed(spec.On, contract.OnCompleted) || spec.After != ""
	ps.OnNeedsAttention = contract.Subscribed(spec.On, contract.OnNeedsAttention) || contract.Subscribed(spec.On, contract.OnFailed)
	ps.OnAborted = contract.Subscribed(spec.On, contract.OnAborted)
	ps.OnBlocked = contract.Subscribed(spec.On, contract.OnBlocked)
	ps.MaxAttempts = spec.MaxAttempts
}

// placeAfter moves every notify step with after: right behind the step it
// names (after steps already placed there, in policy order).
func placeAfter(steps []PlannedStep) []PlannedStep {
	var others, moved []PlannedStep
	for _, s := range steps {
		if s.Traits().Notification && s.Spec.Notify != nil && s.Spec.Notify.After != "" {
			moved = append(moved, s)
		} else {
			others = append(others, s)
		}
	}
	if len(moved) == 0 {
		return steps
	}
	out := make([]PlannedStep, 0, len(steps))
	for _, s := range others {
		out = append(out, s)
		for _, m := range moved {
			if m.Spec.Notify.After == s.Name {
				if s.SkipReason != "" && m.SkipReason == "" {
					m.SkipReason = "after " + s.Name + ", which is skipped"
				}
				out = append(out, m)
			}
		}
	}
	for _, m := range moved { // after a step not in the plan: keep at the end
		if !slices.ContainsFunc(out, func(o PlannedStep) bool { return o.Name == m.Name }) {
			out = append(out, m)
		}
	}
	return out
}
