package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// PlanInput asks which steps a lifecycle run performs.
type PlanInput struct {
	Kind       string            `json:"kind"` // policy.KindJoiner, KindMover or KindLeaver
	Rehire     bool              `json:"rehire,omitempty"`
	EventID    string            `json:"event_id,omitempty"`
	Attributes map[string]string `json:"attributes"`
	// OldAttributes are a mover's attributes before the change: its
	// conditions and scopes read them (changed(x), previous.x), and the
	// grants whose condition turned false are taken back. Plans made
	// before this field have none: conditions then read every previous
	// value as empty, and nothing is taken back.
	OldAttributes map[string]string `json:"old_attributes,omitempty"`
}

// Plan is the policy evaluated for one run. It is an activity result, so a
// running workflow keeps the steps it started with when the policy file
// changes (replay stays deterministic).
type Plan struct {
	// Flow is the policy flow chosen (policy.Plan.Flow): a kind's own or
	// a scoped flow's name, "" when no scope holds.
	Flow             string        `json:"flow,omitempty"`
	Steps            []PlannedStep `json:"steps"`
	StepTimeout      time.Duration `json:"step_timeout"`
	SessionHeartbeat time.Duration `json:"session_heartbeat"`
	// NeedsSession: some step makes or reads a secret, so the run's steps
	// share one worker (the vault is in its memory).
	NeedsSession bool `json:"needs_session,omitempty"`
	// HostTimeout is the schedule-to-start timeout of a step sent to the
	// worker that holds the run's secrets (runs without sessions).
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
	// MaxDestructivePerHour and MaxDestructivePercent are the governor
	// thresholds (policy safety; 0: no limit).
	MaxDestructivePerHour int     `json:"max_destructive_per_hour,omitempty"`
	MaxDestructivePercent float64 `json:"max_destructive_percent,omitempty"`
	// Audit: the planning worker has an audit store; the run records its
	// effects and decisions (RecordAudit).
	Audit bool `json:"audit,omitempty"`
	// GrantReview (a mover): what the run does to the person's time-bound
	// grants first (policy.OnMoveReapprove or OnMoveRevoke; empty: keep),
	// and why (the watched attributes that changed).
	GrantReview    string `json:"grant_review,omitempty"`
	GrantReviewWhy string `json:"grant_review_why,omitempty"`
}

// Limited reports whether destructive steps must ask the governor.
func (p Plan) Limited() bool { return p.MaxDestructivePerHour > 0 || p.MaxDestructivePercent > 0 }

// PlannedStep is a policy.PlannedStep with the facts the workflow acts on,
// in the form recorded in history. (The JSON keys predate policy's own
// PlannedStep and stay, so runs started by an older worker keep their
// step specs.)
type PlannedStep struct {
	Name   string      `json:"name"`
	Action string      `json:"action"` // policy.Action*
	Target string      `json:"target,omitempty"`
	Spec   policy.Step `json:"spec"`
	// SkipReason is set when the step's condition is false: it shows in the
	// step table and never runs.
	SkipReason string `json:"skip_reason,omitempty"`
	// Secret: the step makes or reads a secret, so it runs on the worker
	// whose vault holds the run's secrets.
	Secret bool `json:"secret,omitempty"`
	// Destructive steps ask the governor first.
	Destructive bool `json:"destructive,omitempty"`
	// Delay is a durable wait before the step (DeleteIdentity.After).
	Delay time.Duration `json:"delay,omitempty"`
	// OnCompleted / OnNeedsAttention: when a notify step fires
	// (rest.Subscribed).
	OnCompleted      bool `json:"on_completed,omitempty"`
	OnNeedsAttention bool `json:"on_needs_attention,omitempty"`
	OnAborted        bool `json:"on_aborted,omitempty"`
	OnBlocked        bool `json:"on_blocked,omitempty"`
	// MaxAttempts bounds a step's attempts (notify max_attempts; 0: the
	// workflow's default).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Produces is the entity type whose outputs the step records
	// ({OktaUser.id}); Uses the entity types its templates reference. The
	// workflow refuses to skip a step later steps depend on.
	Produces string   `json:"produces,omitempty"`
	Uses     []string `json:"uses,omitempty"`
	// Revokes are the groups a mover's revoke step takes back (their
	// grant's condition no longer holds: policy.Revocations).
	Revokes []string `json:"revokes,omitempty"`
}

// Summary is the PII-free line the Temporal UI shows for the step: its
// name, then what it does, e.g. "hrportal.handoff — POST /accounts
// (hrportal)". Templates are shown unrendered, so no attribute value
// reaches the history.
func (s PlannedStep) Summary() string {
	what := s.Does()
	if s.Name == "" || s.Name == what {
		return what
	}
	return s.Name + " — " + what
}

// Does says what the step does, without its name.
func (s PlannedStep) Does() string {
	in := ""
	if s.Target != "" {
		in = " in " + s.Target
	}
	if a := ActionOf(s.Action); a != nil && policy.StepAction(s.Spec) == s.Action {
		return a.does(s.Spec, in)
	}
	return strings.ReplaceAll(s.Action, "_", " ") + in
}

// dependencies fills Produces and Uses (see PlannedStep).
func dependencies(p *policy.Policy, ps *PlannedStep) {
	a := ActionOf(ps.Action)
	if a == nil {
		return
	}
	var srcs []string
	ps.Produces, srcs = a.sources(p, ps.Spec)
	for _, src := range srcs {
		t, err := transform.Parse(policy.NotifySource(src))
		if err != nil {
			continue // the step itself reports it
		}
		for _, r := range t.Refs() {
			e := r.Entity
			if e == policy.EntityLogin {
				e = "" // the run's password: any step that made one
			}
			if e != "" && e != transform.TargetEntity && e != policy.EntityRun && e != policy.EntityManager && !slices.Contains(ps.Uses, e) {
				ps.Uses = append(ps.Uses, e)
			}
		}
	}
}

// eventType is the HR event type a lifecycle kind runs for.
func eventType(kind string, rehire bool) string {
	switch {
	case kind == policy.KindJoiner && rehire:
		return hr.Rehire
	case kind == policy.KindJoiner:
		return hr.Hire
	case kind == policy.KindMover:
		return hr.Change
	case kind == policy.KindLeaver:
		return hr.Terminate
	}
	return kind
}

// Plan evaluates the policy for one run (policy.Plan: flow, conditions,
// step names) and derives what the workflow needs: delays, destructive
// steps, notification subscriptions, whether a worker session is needed.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	p := a.cfg.Policy
	ev := hr.Event{EventID: in.EventID, Type: eventType(in.Kind, in.Rehire), Employee: in.Attributes,
		// The run starts now; its effective time was waited for already.
		EffectiveAt: time.Now()}
	if ev.EventID == "" {
		ev.EventID = activity.GetInfo(ctx).WorkflowExecution.ID
	}
	var previous map[string]string
	if in.Kind == policy.KindMover {
		previous = in.OldAttributes
	}
	pp, err := p.Plan(ev, previous)
	if err != nil {
		return Plan{}, permanent("PolicyInvalid", err)
	}
	plan := Plan{
		Flow:                  pp.Flow,
		StepTimeout:           a.cfg.StepTimeout,
		SessionHeartbeat:      a.cfg.SessionHeartbeat,
		HostTimeout:           a.cfg.HostTimeout,
		MaxDestructivePerHour: p.Safety.MaxDestructivePerHour,
		MaxDestructivePercent: p.Safety.MaxDestructivePercent,
		Audit:                 a.cfg.Audit != nil,
	}
	if in.Kind == policy.KindMover && len(p.Approvals.Requestable) > 0 {
		if act, why := p.Approvals.OnMove.Review(in.OldAttributes, in.Attributes); act != policy.OnMoveKeep {
			plan.GrantReview, plan.GrantReviewWhy = act, why
		}
	}
	seen := map[string]bool{}
	for _, s := range pp.Steps {
		if seen[s.Name] {
			return Plan{}, permanent("PolicyInvalid", fmt.Errorf("%s: duplicate step name %q", pp.Flow, s.Name))
		}
		seen[s.Name] = true
		ps, err := planStep(s)
		if err != nil {
			return Plan{}, permanent("PolicyInvalid", fmt.Errorf("%s step %s: %w", pp.Flow, s.Name, err))
		}
		dependencies(p, &ps)
		if !s.Skip && ActionOf(s.Action).secret(s.Step) {
			plan.NeedsSession = true
			ps.Secret = true
		}
		plan.Steps = append(plan.Steps, ps)
	}
	plan.Steps = placeAfter(plan.Steps)
	return plan, nil
}

func planStep(s policy.PlannedStep) (PlannedStep, error) {
	ps := PlannedStep{Name: s.Name, Action: s.Action, Target: s.Target, Spec: s.Step, Revokes: s.Revokes}
	if s.Skip {
		ps.SkipReason = s.SkipReason
	}
	a := ActionOf(s.Action)
	if a == nil {
		return ps, fmt.Errorf("step has no action")
	}
	return ps, a.plan(&ps)
}

// ScheduleInput asks when an HR event's run starts.
type ScheduleInput struct {
	Kind        string            `json:"kind"`
	EffectiveAt time.Time         `json:"effective_at"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	// OldAttributes are a mover's attributes before the change (a scope
	// may read the change).
	OldAttributes map[string]string `json:"old_attributes,omitempty"`
}

// Schedule is when a run starts and, for a pre-hire, when its accounts are
// enabled. Zero times mean "now".
type Schedule struct {
	RunAt    time.Time `json:"run_at"`
	EnableAt time.Time `json:"enable_at,omitempty"`
}

// Schedule computes the effective times of an event from the policy flow
// (policy.RunAt: local_time in the employee's time_zone, then offset). A
// joiner with a negative offset (pre-hire) is enabled at the unshifted
// time. It runs as a local activity: time zone data and the policy file
// are outside the workflow's deterministic world.
func (a *Activities) Schedule(_ context.Context, in ScheduleInput) (Schedule, error) {
	if in.EffectiveAt.IsZero() {
		return Schedule{}, nil
	}
	ev := hr.Event{Type: eventType(in.Kind, false), EffectiveAt: in.EffectiveAt, Employee: in.Attributes}
	nf, ok, err := a.cfg.Policy.SelectFlow(ev.Type, in.Attributes, in.OldAttributes)
	if err != nil {
		return Schedule{}, permanent("InvalidSchedule", err)
	}
	if !ok {
		return Schedule{RunAt: in.EffectiveAt.UTC()}, nil // no flow: the run plans no step
	}
	flow := *nf.Flow
	runAt, err := policy.RunAt(flow, ev)
	if err != nil {
		return Schedule{}, permanent("InvalidSchedule", err)
	}
	s := Schedule{RunAt: runAt.UTC()}
	if off, _ := policy.ParseDuration(flow.Offset); off < 0 && in.Kind == policy.KindJoiner {
		s.EnableAt = runAt.Add(-off).UTC()
	}
	return s, nil
}
