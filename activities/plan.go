package activities

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jml-dev/jml/policy"
)

// Lifecycle kinds.
const (
	KindJoiner = "joiner"
	KindMover  = "mover"
	KindLeaver = "leaver"
)

// Actions (the step table's Action column).
const (
	ActionSyncIdentity        = "sync_identity"
	ActionManageRelationships = "manage_relationships"
	ActionDeprovision         = "deprovision_identity"
	ActionDelete              = "delete_identity"
	ActionCreateEntitlement   = "create_entitlement"
	ActionResetPassword       = "reset_password"
	ActionSendREST            = "send_rest_request"
	ActionNotify              = "notify"
)

// PlanInput asks which steps a lifecycle run performs.
type PlanInput struct {
	Kind       string            `json:"kind"`
	Rehire     bool              `json:"rehire,omitempty"`
	Attributes map[string]string `json:"attributes"`
}

// Plan is the policy evaluated for one run. It is an activity result, so a
// running workflow keeps the steps it started with when the policy file
// changes (replay stays deterministic).
type Plan struct {
	Steps            []PlannedStep `json:"steps"`
	StepTimeout      time.Duration `json:"step_timeout"`
	SessionHeartbeat time.Duration `json:"session_heartbeat"`
	// NeedsSession: some step makes or reads a secret, so the run's steps
	// share one worker (the vault is in its memory).
	NeedsSession bool `json:"needs_session,omitempty"`
	// MaxDestructivePerHour is the governor threshold (0: no limit).
	MaxDestructivePerHour int `json:"max_destructive_per_hour,omitempty"`
}

// PlannedStep is one policy step with its derived facts.
type PlannedStep struct {
	Name   string      `json:"name"`
	Action string      `json:"action"`
	Target string      `json:"target,omitempty"`
	Spec   policy.Step `json:"spec"`
	// Destructive steps ask the governor first.
	Destructive bool `json:"destructive,omitempty"`
	// Delay is a durable wait before the step (DeleteIdentity.After).
	Delay time.Duration `json:"delay,omitempty"`
	// OnCompleted / OnNeedsAttention: when a notify step fires.
	OnCompleted      bool `json:"on_completed,omitempty"`
	OnNeedsAttention bool `json:"on_needs_attention,omitempty"`
}

// Summary is the PII-free line the Temporal UI shows for the step.
func (s PlannedStep) Summary() string {
	if s.Target == "" {
		return strings.ReplaceAll(s.Action, "_", " ")
	}
	return strings.ReplaceAll(s.Action, "_", " ") + " in " + s.Target
}

// Plan evaluates the policy flow for in.Kind: conditions against the
// attributes, step names, actions, delays.
func (a *Activities) Plan(_ context.Context, in PlanInput) (Plan, error) {
	p := a.cfg.Policy
	flow, err := flowFor(p, in.Kind, in.Rehire)
	if err != nil {
		return Plan{}, permanent("PolicyInvalid", err)
	}
	plan := Plan{
		StepTimeout:           a.cfg.StepTimeout,
		SessionHeartbeat:      a.cfg.SessionHeartbeat,
		MaxDestructivePerHour: p.Safety.MaxDestructivePerHour,
	}
	seen := map[string]bool{}
	for i, st := range flow.Steps {
		ok, err := evalCondition(st.When, in.Attributes)
		if err != nil {
			return Plan{}, permanent("PolicyInvalid", fmt.Errorf("%s step %d: when: %w", in.Kind, i+1, err))
		}
		if !ok {
			continue
		}
		ps, err := planStep(st)
		if err != nil {
			return Plan{}, permanent("PolicyInvalid", fmt.Errorf("%s step %d: %w", in.Kind, i+1, err))
		}
		if seen[ps.Name] {
			return Plan{}, permanent("PolicyInvalid", fmt.Errorf("%s step %d: duplicate step name %q", in.Kind, i+1, ps.Name))
		}
		seen[ps.Name] = true
		if usesSecret(st) {
			plan.NeedsSession = true
		}
		plan.Steps = append(plan.Steps, ps)
	}
	return plan, nil
}

func flowFor(p *policy.Policy, kind string, rehire bool) (policy.Flow, error) {
	switch kind {
	case KindJoiner:
		if rehire && len(p.Rehire.Steps) > 0 {
			return p.Rehire, nil
		}
		return p.Joiner, nil
	case KindMover:
		return p.Mover, nil
	case KindLeaver:
		return p.Leaver, nil
	}
	return policy.Flow{}, fmt.Errorf("unknown lifecycle kind %q", kind)
}

// TODO(policy): replace with policy.StepAction/StepTarget/StepName once the
// policy loader lands.
func planStep(st policy.Step) (PlannedStep, error) {
	ps := PlannedStep{Spec: st}
	switch {
	case st.SyncIdentity != nil:
		ps.Action, ps.Target = ActionSyncIdentity, st.SyncIdentity.Target
	case st.ManageRelationships != nil:
		ps.Action, ps.Target = ActionManageRelationships, st.ManageRelationships.Target
		ps.Destructive = st.ManageRelationships.RemoveAll
	case st.DeprovisionIdentity != nil:
		ps.Action, ps.Target = ActionDeprovision, st.DeprovisionIdentity.Target
		ps.Destructive = true
	case st.DeleteIdentity != nil:
		ps.Action, ps.Target = ActionDelete, st.DeleteIdentity.Target
		ps.Destructive = true
		if st.DeleteIdentity.After != "" {
			d, err := parseDuration(st.DeleteIdentity.After)
			if err != nil {
				return ps, fmt.Errorf("delete_identity.after: %w", err)
			}
			ps.Delay = d
		}
	case st.CreateEntitlement != nil:
		ps.Action, ps.Target = ActionCreateEntitlement, st.CreateEntitlement.Target
	case st.ResetPassword != nil:
		ps.Action, ps.Target = ActionResetPassword, st.ResetPassword.Target
	case st.SendRESTRequest != nil:
		ps.Action, ps.Target = ActionSendREST, st.SendRESTRequest.Target
	case st.Notify != nil:
		ps.Action, ps.Target = ActionNotify, st.Notify.Target
		if len(st.Notify.On) == 0 {
			ps.OnCompleted = true
		}
		for _, on := range st.Notify.On {
			switch on {
			case "completed":
				ps.OnCompleted = true
			case "needs_attention", "failed":
				ps.OnNeedsAttention = true
			default:
				return ps, fmt.Errorf("notify.on: unknown event %q", on)
			}
		}
	default:
		return ps, fmt.Errorf("step has no action")
	}
	ps.Name = st.Name
	if ps.Name == "" {
		if ps.Target != "" {
			ps.Name = ps.Target + "." + ps.Action
		} else {
			ps.Name = ps.Action
		}
	}
	return ps, nil
}

func usesSecret(st policy.Step) bool {
	if st.ResetPassword != nil || (st.SyncIdentity != nil && st.SyncIdentity.Password != "") {
		return true
	}
	for _, r := range []*policy.RESTRequest{st.SendRESTRequest, st.Notify} {
		if r == nil {
			continue
		}
		if strings.Contains(r.Body, ".password") || strings.Contains(r.URL, ".password") {
			return true
		}
		for _, h := range r.Headers {
			if strings.Contains(h, ".password") {
				return true
			}
		}
	}
	return false
}

// ScheduleInput asks when an HR event's run starts.
type ScheduleInput struct {
	Kind        string            `json:"kind"`
	EffectiveAt time.Time         `json:"effective_at"`
	Attributes  map[string]string `json:"attributes,omitempty"`
}

// Schedule is when a run starts and, for a pre-hire, when its accounts are
// enabled. Zero times mean "now".
type Schedule struct {
	RunAt    time.Time `json:"run_at"`
	EnableAt time.Time `json:"enable_at,omitempty"`
}

// Schedule computes the effective times of an event from the policy flow:
// Offset shifts the effective time (pre-hire: "-3d"); LocalTime runs it at
// that wall-clock time in the employee's time_zone on the effective day.
// It runs as a local activity: time zone data and the policy file are
// outside the workflow's deterministic world.
func (a *Activities) Schedule(_ context.Context, in ScheduleInput) (Schedule, error) {
	if in.EffectiveAt.IsZero() {
		return Schedule{}, nil
	}
	flow, err := flowFor(a.cfg.Policy, in.Kind, false)
	if err != nil {
		return Schedule{}, permanent("PolicyInvalid", err)
	}
	at := in.EffectiveAt
	if flow.LocalTime != "" {
		loc := time.UTC
		if tz := in.Attributes["time_zone"]; tz != "" {
			if loc, err = time.LoadLocation(tz); err != nil {
				return Schedule{}, permanent("InvalidTimeZone", fmt.Errorf("time_zone: unknown zone"))
			}
		}
		hm, err := time.Parse("15:04", flow.LocalTime)
		if err != nil {
			return Schedule{}, permanent("PolicyInvalid", fmt.Errorf("%s.local_time: want HH:MM", in.Kind))
		}
		d := at.In(loc)
		at = time.Date(d.Year(), d.Month(), d.Day(), hm.Hour(), hm.Minute(), 0, 0, loc).UTC()
	}
	s := Schedule{RunAt: at}
	if flow.Offset != "" {
		off, err := parseDuration(flow.Offset)
		if err != nil {
			return Schedule{}, permanent("PolicyInvalid", fmt.Errorf("%s.offset: %w", in.Kind, err))
		}
		s.RunAt = at.Add(off)
		if off < 0 && in.Kind == KindJoiner {
			s.EnableAt = at
		}
	}
	return s, nil
}

// parseDuration is time.ParseDuration plus a "d" (24h) unit.
// TODO(policy): use policy.ParseDuration once it lands.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// evalCondition evaluates a small SCIM-filter-like condition:
// `attr op "value"` terms (eq, ne, sw, ew, co, pr) joined by "and".
// TODO(policy): use policy.EvalCondition once it lands (or, not, parens).
func evalCondition(when string, attrs map[string]string) (bool, error) {
	when = strings.TrimSpace(when)
	if when == "" {
		return true, nil
	}
	for _, term := range strings.Split(when, " and ") {
		f := strings.SplitN(strings.TrimSpace(term), " ", 3)
		if len(f) < 2 {
			return false, fmt.Errorf("bad term %q", term)
		}
		v := attrs[f[0]]
		op := strings.ToLower(f[1])
		if op == "pr" {
			if v == "" {
				return false, nil
			}
			continue
		}
		if len(f) != 3 {
			return false, fmt.Errorf("bad term %q", term)
		}
		want, err := strconv.Unquote(f[2])
		if err != nil {
			return false, fmt.Errorf("bad value in %q", term)
		}
		var ok bool
		switch op {
		case "eq":
			ok = strings.EqualFold(v, want)
		case "ne":
			ok = !strings.EqualFold(v, want)
		case "sw":
			ok = strings.HasPrefix(strings.ToLower(v), strings.ToLower(want))
		case "ew":
			ok = strings.HasSuffix(strings.ToLower(v), strings.ToLower(want))
		case "co":
			ok = strings.Contains(strings.ToLower(v), strings.ToLower(want))
		default:
			return false, fmt.Errorf("unknown operator %q", op)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// entityType names a target's outputs ({OktaUser.login}).
// TODO(policy): use (*Policy).EntityType once it lands.
func entityType(p *policy.Policy, target string) string {
	t, ok := p.Targets[target]
	if !ok {
		return target
	}
	if t.EntityType != "" {
		return t.EntityType
	}
	switch t.Type {
	case "okta":
		return "OktaUser"
	case "scim":
		return "ScimUser"
	case "entra":
		return "EntraUser"
	}
	return target
}
