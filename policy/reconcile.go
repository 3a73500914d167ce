package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jml-dev/jml/transform"
)

// Reconcile turns on reconciliation in the attribute sync's cycles
// (docs/reconciliation.md): group drift on managed groups, and accounts
// that no active person explains. Absent: off.
type Reconcile struct {
	// Orphans is what happens to an active account matched to nobody:
	// report (default) or disable.
	Orphans string `yaml:"orphans" json:"orphans,omitempty"`
	// Leftovers is what happens to an active account of a terminated
	// person: report (default) or disable.
	Leftovers string `yaml:"leftovers" json:"leftovers,omitempty"`
	// MaxGroupRemovalPercent: a cycle that would remove more than this
	// share of a managed group's members blocks for an operator instead.
	// Default: safety.max_destructive_percent, else 20.
	MaxGroupRemovalPercent float64 `yaml:"max_group_removal_percent" json:"max_group_removal_percent,omitempty"`
	// Targets holds per-target settings by target name.
	Targets map[string]ReconcileTarget `yaml:"targets" json:"targets,omitempty"`
}

// ReconcileTarget is one target's reconciliation settings.
type ReconcileTarget struct {
	// ManagedGroups are group names or patterns ("app-*") jml manages on
	// top of those its relationship rules can produce.
	ManagedGroups []string `yaml:"managed_groups" json:"managed_groups,omitempty"`
	// NeverTouch lists accounts (target IDs or unique identifiers such as
	// logins) reconciliation never changes nor reports as orphans:
	// service accounts, break-glass accounts.
	NeverTouch []string `yaml:"never_touch" json:"never_touch,omitempty"`
}

// Values of Reconcile.Orphans and Reconcile.Leftovers.
const (
	ReconcileReport  = "report"
	ReconcileDisable = "disable"
)

// DefaultGroupRemovalPercent is the mass-removal share when neither
// reconcile.max_group_removal_percent nor safety.max_destructive_percent
// is set.
const DefaultGroupRemovalPercent = 20

// Enabled reports whether the policy asks for reconciliation.
func (r Reconcile) Enabled() bool {
	return r.Orphans != "" || r.Leftovers != "" || r.MaxGroupRemovalPercent != 0 || len(r.Targets) > 0
}

// GroupRemovalPercent is the share of a group's managed members one cycle
// may remove without an operator.
func (p *Policy) GroupRemovalPercent() float64 {
	switch {
	case p.Reconcile.MaxGroupRemovalPercent > 0:
		return p.Reconcile.MaxGroupRemovalPercent
	case p.Safety.MaxDestructivePercent > 0:
		return p.Safety.MaxDestructivePercent
	}
	return DefaultGroupRemovalPercent
}

// GroupRule is one relationship rule of a target: a group template a
// person is due when the step's condition (its flow's scope and its when)
// holds.
type GroupRule struct {
	When          string `json:"when,omitempty"`
	Group         string `json:"group"` // template
	CreateMissing bool   `json:"create_missing,omitempty"`
}

// granter is an action that grants groups: their templates and whether
// missing ones are created.
type granter interface {
	grants() (groups []string, create bool)
}

func (a *ManageRelationships) grants() ([]string, bool) { return a.Add, a.CreateMissing }
func (a *SyncIdentity) grants() ([]string, bool)        { return a.Groups, false }

// GroupRules are the groups the policy grants in target: the add lists of
// the joiner, rehire and mover manage_relationships steps and the groups of
// their sync_identity steps, each with its step's condition. Leaver flows
// and remove lists grant nothing.
func (p *Policy) GroupRules(target string) []GroupRule {
	var out []GroupRule
	for _, f := range p.GrantingFlows() {
		for _, st := range f.Steps {
			for _, a := range setActions(st) {
				g, ok := a.spec.(granter)
				if !ok || a.target != target {
					continue
				}
				groups, create := g.grants()
				for _, g := range groups {
					r := GroupRule{When: StepCondition(f, st), Group: g, CreateMissing: create}
					if !slices.Contains(out, r) {
						out = append(out, r)
					}
				}
			}
		}
	}
	return out
}

// RevokeStep names a mover's step that takes back conditional grants in
// target (Revocations).
func RevokeStep(target string) string { return target + ".revoke" }

// Revocations are what a mover takes back because a grant follows its
// condition: per target, the groups a conditional rule (GroupRules with a
// when or a scope) granted under previous and no longer grants under
// attrs, less every group some rule still grants under attrs (that
// membership stays). Each is a manage_relationships step removing them,
// named RevokeStep(target), after the flow's steps. A group whose
// template fails or names no group for these attributes is left alone:
// only what a rule certainly granted is taken back.
func (p *Policy) Revocations(attrs, previous map[string]string) ([]PlannedStep, error) {
	tables, err := p.Tables()
	if err != nil {
		return nil, err
	}
	render := func(src string, a map[string]string) string {
		if len(transform.EmptyAttrs(src, a)) > 0 {
			return ""
		}
		v, err := (&transform.Env{Attrs: a, Lookups: tables}).Render(src, nil)
		if err != nil {
			return ""
		}
		return v
	}
	var out []PlannedStep
	for _, target := range slices.Sorted(maps.Keys(p.Targets)) {
		var held, gone []string
		for _, r := range p.GroupRules(target) {
			c, err := CompileCondition(r.When)
			if r.When != "" && err != nil {
				return nil, fmt.Errorf("policy: group %s: when: %w", r.Group, err)
			}
			if r.When == "" || c.Eval(attrs) {
				if g := render(r.Group, attrs); g != "" {
					held = append(held, strings.ToLower(g))
				}
				continue
			}
			if c.Eval(previous) {
				if g := render(r.Group, previous); g != "" && !slices.ContainsFunc(gone, func(o string) bool { return strings.EqualFold(o, g) }) {
					gone = append(gone, g)
				}
			}
		}
		gone = slices.DeleteFunc(gone, func(g string) bool { return slices.Contains(held, strings.ToLower(g)) })
		if len(gone) == 0 {
			continue
		}
		remove := make([]string, len(gone))
		for i, g := range gone {
			remove[i] = strings.NewReplacer("{", `\{`, "}", `\}`).Replace(g) // a name, not a template
		}
		name := RevokeStep(target)
		st := Step{Name: name, ManageRelationships: &ManageRelationships{Target: target, Remove: remove}}
		out = append(out, PlannedStep{Name: name, Action: ActionManageRelationships, Target: target, Step: st,
			Revokes: gone})
	}
	return out, nil
}

// ManagedGroupPatterns are the group names and patterns ("dept-*") jml
// manages in target: every group a rule can produce, plus the target's
// reconcile.targets.T.managed_groups. A rule that can produce any name
// (a template that is one placeholder) adds nothing: list its groups in
// managed_groups. Patterns compare case-insensitively.
func (p *Policy) ManagedGroupPatterns(target string) []string {
	var out []string
	add := func(s string) {
		if s != "" && s != "*" && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, s) }) {
			out = append(out, s)
		}
	}
	for _, r := range p.GroupRules(target) {
		if t, err := transform.Parse(r.Group); err == nil {
			add(t.Pattern())
		}
	}
	for _, g := range p.Reconcile.Targets[target].ManagedGroups {
		add(g)
	}
	return out
}

// MatchGroup reports whether name matches one of the patterns ("*" is any
// run of characters), case-insensitively.
func MatchGroup(patterns []string, name string) bool {
	name = strings.ToLower(name)
	for _, p := range patterns {
		if glob(strings.ToLower(p), name) {
			return true
		}
	}
	return false
}

func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

func (c *checker) validateReconcile(p *Policy) {
	r := p.Reconcile
	for _, f := range []struct{ path, v string }{{"reconcile.orphans", r.Orphans}, {"reconcile.leftovers", r.Leftovers}} {
		if f.v != "" && f.v != ReconcileReport && f.v != ReconcileDisable {
			c.at(f.path, "%q: want report or disable", f.v)
		}
	}
	if r.MaxGroupRemovalPercent < 0 || r.MaxGroupRemovalPercent > 100 {
		c.at("reconcile.max_group_removal_percent", "%v: want a percentage between 0 and 100", r.MaxGroupRemovalPercent)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Targets)) {
		path := "reconcile.targets." + name
		if _, ok := p.Targets[name]; !ok {
			c.at(path+"#key", "unknown target %q%s", name, didYouMean(name, slices.Sorted(maps.Keys(p.Targets))))
		}
		for i, g := range r.Targets[name].ManagedGroups {
			if strings.TrimSpace(g) == "" || strings.Trim(g, "*") == "" {
				c.at(fmt.Sprintf("%s.managed_groups[%d]", path, i), "%q: name a group or a pattern with a fixed part (app-*), not every group", g)
			}
		}
		for i, a := range r.Targets[name].NeverTouch {
			if strings.TrimSpace(a) == "" {
				c.at(fmt.Sprintf("%s.never_touch[%d]", path, i), "empty: name an account ID or login")
			}
		}
	}
}
