package policy

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/transform"
)

// Action names (StepAction): the ones connectors declare they can run.
const (
	ActionSyncIdentity        = connectors.ActionSyncIdentity
	ActionManageRelationships = connectors.ActionManageRelationships
	ActionDeprovisionIdentity = connectors.ActionDeprovision
	ActionDeleteIdentity      = connectors.ActionDelete
	ActionCreateEntitlement   = connectors.ActionCreateEntitlement
	ActionResetPassword       = connectors.ActionResetPassword
	ActionSendRESTRequest     = connectors.ActionSendRESTRequest
	ActionNotify              = connectors.ActionNotify
	// ActionApproval waits for people's approval (docs/approvals.md); a
	// denial ends the run.
	ActionApproval = "approval"
)

// Actions lists every action name in documentation order.
var actions = []string{ActionSyncIdentity, ActionManageRelationships, ActionDeprovisionIdentity,
	ActionDeleteIdentity, ActionCreateEntitlement, ActionResetPassword, ActionSendRESTRequest, ActionNotify, ActionApproval}

// stepAction is an action set on a step: its name, target and fields.
type stepAction struct {
	name, target string
	spec         actionSpec
}

// actionSpec is the policy fields of one action, which check themselves
// (validate.go).
type actionSpec interface {
	check(c *checker, p *Policy, tables map[string]bool, path string, sc scope)
}

// setActions lists the actions set on s: the one place that maps the
// step's fields to action names.
func setActions(s Step) []stepAction {
	var out []stepAction
	add := func(ok bool, name, target string, spec actionSpec) {
		if ok {
			out = append(out, stepAction{name: name, target: target, spec: spec})
		}
	}
	add(s.SyncIdentity != nil, ActionSyncIdentity, get(s.SyncIdentity, func(a *SyncIdentity) string { return a.Target }), s.SyncIdentity)
	add(s.ManageRelationships != nil, ActionManageRelationships, get(s.ManageRelationships, func(a *ManageRelationships) string { return a.Target }), s.ManageRelationships)
	add(s.DeprovisionIdentity != nil, ActionDeprovisionIdentity, get(s.DeprovisionIdentity, func(a *DeprovisionIdentity) string { return a.Target }), s.DeprovisionIdentity)
	add(s.DeleteIdentity != nil, ActionDeleteIdentity, get(s.DeleteIdentity, func(a *DeleteIdentity) string { return a.Target }), s.DeleteIdentity)
	add(s.CreateEntitlement != nil, ActionCreateEntitlement, get(s.CreateEntitlement, func(a *CreateEntitlement) string { return a.Target }), s.CreateEntitlement)
	add(s.ResetPassword != nil, ActionResetPassword, get(s.ResetPassword, func(a *ResetPassword) string { return a.Target }), s.ResetPassword)
	add(s.SendRESTRequest != nil, ActionSendRESTRequest, get(s.SendRESTRequest, func(a *RESTRequest) string { return a.Target }), s.SendRESTRequest)
	add(s.Approval != nil, ActionApproval, "", s.Approval)
	add(s.Notify != nil, ActionNotify, get(s.Notify, func(a *RESTRequest) string { return a.Target }), (*notifySpec)(s.Notify))
	return out
}

func get[T any](p *T, f func(*T) string) string {
	if p == nil {
		return ""
	}
	return f(p)
}

// StepAction is the step's action name ("sync_identity", …), "" if none.
func StepAction(s Step) string {
	if set := setActions(s); len(set) > 0 {
		return set[0].name
	}
	return ""
}

// StepTarget is the target the step's action addresses ("" for a REST
// request or notification with an absolute URL).
func StepTarget(s Step) string {
	if set := setActions(s); len(set) > 0 {
		return set[0].target
	}
	return ""
}

// StepName is the stable step name: Name, else "<target>.<action>", else
// the action alone (okta.sync_identity, notify).
func StepName(s Step) string {
	if s.Name != "" {
		return s.Name
	}
	if t := StepTarget(s); t != "" {
		return t + "." + StepAction(s)
	}
	return StepAction(s)
}

// Flow names of the lifecycle kinds.
const (
	KindJoiner = "joiner"
	KindMover  = "mover"
	KindLeaver = "leaver"
	KindRehire = "rehire"
)

// Kind maps an HR event type to the lifecycle flow it runs: hire→joiner,
// change→mover, terminate→leaver, rehire→rehire. "" for an unknown type.
func Kind(eventType string) string {
	switch eventType {
	case hr.Hire:
		return KindJoiner
	case hr.Change:
		return KindMover
	case hr.Terminate:
		return KindLeaver
	case hr.Rehire:
		return KindRehire
	}
	return ""
}

// Flow returns the kind's own flow an HR event type runs (hire→Joiner,
// change→Mover, terminate→Leaver, rehire→Rehire, or Joiner when no
// rehire flow is set). SelectFlow is the flow a person's event runs.
func (p *Policy) Flow(eventType string) Flow {
	switch eventType {
	case hr.Hire:
		return p.Joiner
	case hr.Change:
		return p.Mover
	case hr.Terminate:
		return p.Leaver
	case hr.Rehire:
		if p.hasRehire() {
			return p.Rehire
		}
		return p.Joiner
	}
	return Flow{}
}

// hasRehire reports whether the policy has a rehire flow of its own.
func (p *Policy) hasRehire() bool {
	return len(p.Rehire.Steps) > 0 || slices.ContainsFunc(p.ScopedFlows, func(f Flow) bool { return f.Kind == KindRehire })
}

// FlowsOf lists the flows an event of a kind may run, in the order their
// scopes are tried: the flows: of that kind in file order, then the
// kind's own flow. A rehire without a rehire flow tries the joiner's.
func (p *Policy) FlowsOf(kind string) []NamedFlow {
	if kind == KindRehire && !p.hasRehire() {
		kind = KindJoiner
	}
	var out []NamedFlow
	for i := range p.ScopedFlows {
		if f := &p.ScopedFlows[i]; f.Kind == kind {
			out = append(out, NamedFlow{Kind: kind, Name: f.Name, Flow: f})
		}
	}
	for _, f := range p.ownFlows() {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

// SelectFlow is the flow an event runs for a person: the first of FlowsOf
// whose scope holds for the change from previous (a mover's attributes
// before it; nil otherwise) to attrs. ok is false when none does: the
// event runs no step.
func (p *Policy) SelectFlow(eventType string, attrs, previous map[string]string) (f NamedFlow, ok bool, err error) {
	for _, f := range p.FlowsOf(Kind(eventType)) {
		in, err := EvalChange(f.Flow.Scope, attrs, previous)
		if err != nil {
			return f, false, fmt.Errorf("policy: flow %s: scope: %w", f.Name, err)
		}
		if in {
			return f, true, nil
		}
	}
	return NamedFlow{}, false, nil
}

// StepCondition is the condition under which a step of f runs: its
// flow's scope and its own when ("" for always).
func StepCondition(f Flow, s Step) string {
	switch {
	case f.Scope == "":
		return s.When
	case s.When == "":
		return f.Scope
	}
	return "(" + f.Scope + ") and (" + s.When + ")"
}

// EntityType names the outputs of a target's steps: its entity_type, else
// OktaUser for okta, ScimUser for scim, EntraUser for entra, the target
// name for rest.
func (p *Policy) EntityType(target string) string {
	t, ok := p.Targets[target]
	if !ok {
		return ""
	}
	if t.EntityType != "" {
		return t.EntityType
	}
	if d, ok := Describe(t.Type); ok && d.EntityType != "" {
		return d.EntityType
	}
	return target
}

// Tables parses the lookup tables for LOOKUP. Load inlines files into
// Lookup.CSV, so this reads no files.
func (p *Policy) Tables() (map[string]*transform.Table, error) {
	out := make(map[string]*transform.Table, len(p.Lookups))
	for _, name := range slices.Sorted(maps.Keys(p.Lookups)) {
		t, err := parseTable(p.Lookups[name])
		if err != nil {
			return nil, fmt.Errorf("policy: lookup %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func parseTable(l Lookup) (*transform.Table, error) {
	if l.CSV == "" {
		return nil, fmt.Errorf("no data (set csv, or file when loading from disk)")
	}
	r := csv.NewReader(strings.NewReader(l.CSV))
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	key := l.Key
	if key == "" {
		key = header[0]
	}
	ki := slices.Index(header, key)
	if ki < 0 {
		return nil, fmt.Errorf("key column %q not in the header (%s)", key, strings.Join(header, ", "))
	}
	t := &transform.Table{Columns: header, Key: key, Rows: map[string]map[string]string{}}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		row := make(map[string]string, len(header))
		for i, c := range header {
			row[c] = strings.TrimSpace(rec[i])
		}
		k := row[key]
		if _, dup := t.Rows[k]; dup {
			line, _ := r.FieldPos(0)
			return nil, fmt.Errorf("line %d: duplicate key %q", line, k)
		}
		t.Rows[k] = row
	}
	return t, nil
}

// ParseDuration is time.ParseDuration plus a "d" (24h) unit: "30d",
// "-3d", "1d12h". The empty string is 0.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	var total time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		days, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || days < 0 || days > 36500 {
			return 0, fmt.Errorf("bad duration %q: want e.g. 30d, -3d, 72h, 1d12h", s)
		}
		total = time.Duration(days * float64(24*time.Hour))
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("bad duration %q: want e.g. 30d, -3d, 72h, 1d12h", s)
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// RenderAttributes evaluates the common attributes and then the step's
// attributes (a step attribute replaces a common one of the same name).
// $target references are resolved in dependency order. env is not
// modified; env.Target is ignored.
func RenderAttributes(p *Policy, step SyncIdentity, env *transform.Env) (map[string]string, error) {
	return renderAttributes(p, step, env, "", nil)
}

// renderAttributes is RenderAttributes; a uid other than "" is checked
// as the unique identifier (RenderIdentity); pinned attributes take the
// given value instead of their template (RenderPinned).
func renderAttributes(p *Policy, step SyncIdentity, env *transform.Env, uid string, pinned map[string]string) (map[string]string, error) {
	srcs := mergedAttributes(p, step)
	tmpls := make(map[string]*transform.Template, len(srcs))
	for _, name := range slices.Sorted(maps.Keys(srcs)) {
		t, err := transform.Parse(srcs[name])
		if err != nil {
			return nil, fmt.Errorf("policy: attribute %s: %w", name, err)
		}
		tmpls[name] = t
	}
	order, err := targetOrder(tmpls)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	e := transform.Env{}
	if env != nil {
		e = *env
	}
	out := make(map[string]string, len(order))
	e.Target = out
	for _, name := range order {
		if v, ok := pinned[name]; ok {
			out[name] = v
			continue
		}
		v, err := tmpls[name].Eval(&e)
		if err != nil {
			return nil, fmt.Errorf("policy: attribute %s: %w", name, err)
		}
		if name == uid {
			if v, err = validIdentifier(p, step, uid, v, &e); err != nil {
				return nil, err
			}
		}
		out[name] = v
	}
	return out, nil
}

// Candidates are the templates tried in order for a destination attribute:
// its template, then its fallbacks (transform.EvalUnique).
func Candidates(p *Policy, step SyncIdentity, attr string) ([]*transform.Template, error) {
	src, ok := mergedAttributes(p, step)[attr]
	if !ok {
		return nil, fmt.Errorf("policy: no attribute %s", attr)
	}
	var out []*transform.Template
	for _, s := range append([]string{src}, step.Fallbacks[attr]...) {
		t, err := transform.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("policy: attribute %s: %w", attr, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// UniqueIdentifier is the attribute a sync step finds accounts by: its
// unique_identifier, else login (okta), user_name (scim, entra).
func (p *Policy) UniqueIdentifier(step SyncIdentity) string {
	uid := step.UniqueIdentifier
	d, described := Describe(p.Targets[step.Target].Type)
	switch {
	case uid != "":
	case described && d.UniqueIdentifier != "":
		uid = d.UniqueIdentifier
	default:
		uid = "user_name"
	}
	if !described {
		return uid
	}
	// The catalog's aliases name one attribute (Entra: user_name and
	// user_principal_name): the identifier is the name the step writes it
	// under, whichever the step and the default chose.
	attrs := mergedAttributes(p, step)
	if _, written := attrs[uid]; written {
		return uid
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if d.Canonical(k) == d.Canonical(uid) {
			return k
		}
	}
	return uid
}

func mergedAttributes(p *Policy, step SyncIdentity) map[string]string {
	m := make(map[string]string, len(p.CommonAttributes)+len(step.Attributes))
	maps.Copy(m, p.CommonAttributes)
	maps.Copy(m, step.Attributes)
	return m
}

// targetOrder sorts attributes so each comes after the $target attributes
// it reads (ties by name, for a stable order). A cycle is an error.
func targetOrder(tmpls map[string]*transform.Template) ([]string, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var order []string
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("$target cycle: %s", strings.Join(append(path, name), " → "))
		}
		state[name] = visiting
		for _, r := range tmpls[name].Refs() {
			if r.Entity != transform.TargetEntity {
				continue
			}
			if _, ok := tmpls[r.Attr]; !ok {
				return fmt.Errorf("attribute %s: unknown attribute $target.%s", name, r.Attr)
			}
			if err := visit(r.Attr, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(tmpls)) {
		if err := visit(name, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// PlannedStep is one step of a lifecycle run as the policy plans it.
type PlannedStep struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	Step   Step   `json:"step"`
	// Skip is true when the step's condition is false for this identity.
	Skip       bool   `json:"skip,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	// Revokes are the groups a revoke step (Revocations) takes back: their
	// conditions held before the change and no longer do.
	Revokes []string `json:"revokes,omitempty"`
}

// Plan is what a lifecycle run does for one HR event.
type Plan struct {
	// Kind is the workflow kind: joiner, mover or leaver (a rehire runs a
	// joiner: the rehire flow, or the joiner flow with reactivation).
	Kind string `json:"kind"`
	// Flow is the policy flow used: joiner, mover, leaver, rehire or the
	// name of a scoped flow; "" when no flow's scope holds (Scopes says
	// which were tried).
	Flow string `json:"flow"`
	// Scope is the chosen flow's scope ("" for everyone); Scopes lists,
	// when the event runs no flow, the scopes that did not hold.
	Scope       string    `json:"scope,omitempty"`
	Scopes      []string  `json:"scopes,omitempty"`
	EmployeeID  string    `json:"employee_id"`
	EventID     string    `json:"event_id"`
	EffectiveAt time.Time `json:"effective_at"`
	// RunAt is when the steps start: the effective time moved to the flow's
	// local_time in the employee's time zone, plus the flow's offset.
	RunAt time.Time     `json:"run_at"`
	Steps []PlannedStep `json:"steps"`
}

// CheckEvent lists what is wrong with an HR event for this policy (nil
// when nothing is).
func (p *Policy) CheckEvent(ev hr.Event) []string {
	var probs []string
	if strings.TrimSpace(ev.EventID) == "" {
		probs = append(probs, "event_id: required")
	}
	if Kind(ev.Type) == "" {
		probs = append(probs, fmt.Sprintf("type: %q is not one of hire, change, terminate, rehire", ev.Type))
	}
	if ev.EffectiveAt.IsZero() {
		probs = append(probs, "effective_at: required (RFC 3339 with a zone, e.g. 2026-12-01T09:00:00-05:00)")
	}
	if strings.TrimSpace(ev.EmployeeID()) == "" {
		probs = append(probs, "employee.employee_id: required")
	}
	for _, a := range p.RequiredFor(ev.Type) {
		if a == "employee_id" {
			continue
		}
		if strings.TrimSpace(ev.Employee[a]) == "" {
			probs = append(probs, fmt.Sprintf("employee.%s: required by the policy", a))
		}
	}
	if tz := ev.Employee["time_zone"]; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			probs = append(probs, fmt.Sprintf("employee.time_zone: %q is not an IANA time zone", tz))
		}
	}
	return probs
}

// Plan computes the steps an HR event runs. previous are the person's
// attributes before the event (a mover's; nil for a person jml knew
// nothing of): conditions and scopes may read the change. It is pure (no
// clock, no I/O), so the preview and the workflows share it.
func (p *Policy) Plan(ev hr.Event, previous map[string]string) (*Plan, error) {
	if probs := p.CheckEvent(ev); len(probs) > 0 {
		return nil, fmt.Errorf("policy: bad event:\n%s", strings.Join(probs, "\n"))
	}
	kind := Kind(ev.Type)
	if kind == KindRehire {
		kind = KindJoiner
	}
	plan := &Plan{Kind: kind, EmployeeID: ev.EmployeeID(), EventID: ev.EventID, EffectiveAt: ev.EffectiveAt, RunAt: ev.EffectiveAt}
	nf, ok, err := p.SelectFlow(ev.Type, ev.Employee, previous)
	if err != nil {
		return nil, err
	}
	if !ok {
		for _, f := range p.FlowsOf(Kind(ev.Type)) {
			plan.Scopes = append(plan.Scopes, f.Name+": "+f.Flow.Scope)
		}
		return plan, nil
	}
	flow := *nf.Flow
	plan.Flow, plan.Scope = nf.Name, flow.Scope
	if plan.RunAt, err = RunAt(flow, ev); err != nil {
		return nil, err
	}
	for _, s := range flow.Steps {
		ps := PlannedStep{Name: StepName(s), Action: StepAction(s), Target: StepTarget(s), Step: s}
		ok, err := EvalChange(s.When, ev.Employee, previous)
		if err != nil {
			return nil, fmt.Errorf("policy: step %s: when: %w", ps.Name, err)
		}
		if !ok {
			ps.Skip, ps.SkipReason = true, "condition is false: "+s.When
		}
		plan.Steps = append(plan.Steps, ps)
	}
	if kind == KindMover && previous != nil {
		rs, err := p.Revocations(ev.Employee, previous)
		if err != nil {
			return nil, err
		}
		plan.Steps = append(plan.Steps, rs...)
	}
	return plan, nil
}

// RunAt is when a flow's steps start for an event: on the effective day at
// the flow's local_time in the employee's time_zone (when set), plus the
// flow's offset.
func RunAt(f Flow, ev hr.Event) (time.Time, error) {
	at := ev.EffectiveAt
	if f.LocalTime != "" {
		hh, mm, err := parseClock(f.LocalTime)
		if err != nil {
			return time.Time{}, fmt.Errorf("policy: local_time: %w", err)
		}
		loc := at.Location()
		if tz := ev.Employee["time_zone"]; tz != "" {
			if loc, err = time.LoadLocation(tz); err != nil {
				return time.Time{}, fmt.Errorf("policy: employee time_zone %q: %w", tz, err)
			}
		}
		d := at.In(loc)
		at = time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, loc)
	}
	off, err := ParseDuration(f.Offset)
	if err != nil {
		return time.Time{}, fmt.Errorf("policy: offset: %w", err)
	}
	return at.Add(off), nil
}

func parseClock(s string) (hh, mm int, err error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a wall-clock time like 17:00", s)
	}
	return t.Hour(), t.Minute(), nil
}

// NamedFlow is one of a policy's flows, its kind and name.
type NamedFlow struct {
	Kind string // KindJoiner, …
	// Name is the kind for a kind's own flow, else the flows: entry's.
	Name string
	Flow *Flow
}

// ownFlows are the kinds' own flows: joiner, mover, leaver, rehire.
func (p *Policy) ownFlows() []NamedFlow {
	return []NamedFlow{{KindJoiner, KindJoiner, &p.Joiner}, {KindMover, KindMover, &p.Mover},
		{KindLeaver, KindLeaver, &p.Leaver}, {KindRehire, KindRehire, &p.Rehire}}
}

// Flows lists the policy's flows: joiner, mover, leaver, rehire, then the
// scoped ones (flows:). It is the one list of them; callers that want
// some filter it.
func (p *Policy) Flows() []NamedFlow {
	out := p.ownFlows()
	for i := range p.ScopedFlows {
		f := &p.ScopedFlows[i]
		out = append(out, NamedFlow{Kind: f.Kind, Name: f.Name, Flow: f})
	}
	return out
}

// GrantingFlows are the flows that give access, in the order their steps
// are read when several write the same thing: joiner, rehire, mover, each
// in the order its scopes are tried. A step's condition there is
// StepCondition (its flow's scope and its when).
func (p *Policy) GrantingFlows() []Flow {
	var out []Flow
	for _, kind := range []string{KindJoiner, KindRehire, KindMover} {
		for _, f := range p.FlowsOf(kind) {
			if kind == KindRehire && f.Kind != KindRehire {
				continue // no rehire flow: the joiner's, listed already
			}
			out = append(out, *f.Flow)
		}
	}
	return out
}
