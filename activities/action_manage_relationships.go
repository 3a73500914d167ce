package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// manageRelationships is manage_relationships (MANAGE_RELATIONSHIPS):
// group memberships of the person's account.
type manageRelationships struct{}

func (manageRelationships) Name() string               { return policy.ActionManageRelationships }
func (manageRelationships) Activity(a *Activities) any { return a.ManageRelationships }
func (manageRelationships) Traits() Traits             { return Traits{UsesAccount: true, Groups: true} }

func (manageRelationships) Supports(c any) bool {
	_, ok := c.(connectors.RelationshipManager)
	return ok
}

func (manageRelationships) Needs(s policy.Step, flow string) []string {
	out := []string{connectors.CapGroups, connectors.CapMembership}
	if s.ManageRelationships.RemoveAll || flow == policy.KindMover {
		out = append(out, connectors.CapMemberships)
	}
	return out
}

func (manageRelationships) plan(ps *PlannedStep) error {
	ps.Destructive = ps.Spec.ManageRelationships.RemoveAll
	return nil
}

func (manageRelationships) sources(_ *policy.Policy, s policy.Step) (string, []string) {
	return "", append(slices.Clone(s.ManageRelationships.Add), s.ManageRelationships.Remove...)
}

func (manageRelationships) secret(policy.Step) bool { return false }

func (manageRelationships) does(s policy.Step, in string) string {
	mr := s.ManageRelationships
	if mr.RemoveAll {
		return "remove all groups" + in
	}
	return fmt.Sprintf("groups%s: +%d −%d", in, len(mr.Add), len(mr.Remove))
}

// Effects: each group added or removed; a group named from empty
// attributes names no group, as in a run.
func (manageRelationships) Effects(pp *Person, ps policy.PlannedStep) ([]Effect, error) {
	m := *ps.Step.ManageRelationships
	var effects []Effect
	var errs error
	for _, set := range []struct {
		kind string
		srcs []string
	}{{EffectGroupAdd, m.Add}, {EffectGroupRemove, m.Remove}} {
		for _, g := range set.srcs {
			if len(transform.EmptyAttrs(g, pp.Attrs)) > 0 {
				continue // names no group, as in a run
			}
			v, err := render(g, pp.Env)
			if err != nil {
				errs = evalFailed(errs, set.kind, err)
				continue
			}
			effects = append(effects, Effect{Kind: set.kind, Group: v})
		}
	}
	if m.RemoveAll {
		effects = append(effects, Effect{Kind: EffectGroupRemove, Group: AllGroups})
	}
	return effects, errs
}

// AllGroups is the group of a planned effect that removes every group.
const AllGroups = "(all groups)"

// ManageRelationships is MANAGE_RELATIONSHIPS: ensure memberships. On a
// mover (OldAttributes set) it applies the group diff.
func (a *Activities) ManageRelationships(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.ManageRelationships
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a manage_relationships step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	rm, ok := c.(connectors.RelationshipManager)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "manage relationships")
	}
	id, err := a.accountID(ctx, c, spec.Target, in)
	if err != nil {
		return StepResult{}, err
	}
	if id == "" && len(in.Step.Revokes) > 0 {
		return StepResult{Note: "no account: nothing to take back"}, nil
	}
	if id == "" {
		return StepResult{}, permanent(ErrTypeNotFound, fmt.Errorf("%s: no account to manage", spec.Target))
	}
	add, blank, err := a.renderList(spec.Add, in.Attributes, in)
	if err != nil {
		return StepResult{}, err
	}
	remove, _, err := a.renderList(spec.Remove, in.Attributes, in)
	if err != nil {
		return StepResult{}, err
	}
	var newly, drop []string // HR's change: the groups it grants and takes away
	if in.OldAttributes != nil {
		oldAdd, _, err := a.renderList(spec.Add, in.OldAttributes, in)
		if err != nil {
			return StepResult{}, err
		}
		// Every group the new attributes grant is ensured, not only the
		// new ones: an earlier run may not have granted them (aborted), or
		// someone took them away at the target.
		newly, drop = GroupDiff(oldAdd, add)
		remove = append(remove, drop...)
	}
	named := map[string]string{} // group ID → name, for the audit trail
	addIDs, err := a.groupIDs(ctx, c, spec.Target, add, spec.CreateMissing, false, named)
	if err != nil {
		return StepResult{}, err
	}
	var removeIDs []string
	if spec.RemoveAll {
		gs, err := rm.Memberships(ctx, id)
		if err != nil {
			return StepResult{}, toTemporal(fmt.Errorf("%s: memberships: %w", spec.Target, err))
		}
		for _, g := range gs {
			removeIDs = append(removeIDs, g.ID)
			named[g.ID] = cmp.Or(g.Name, g.ID)
		}
	} else {
		// Leaving a group that does not exist is done.
		if removeIDs, err = a.groupIDs(ctx, c, spec.Target, remove, false, true, named); err != nil {
			return StepResult{}, err
		}
	}
	var earlier []audit.Effect // changes an earlier attempt made (retried)
	// A group granted here is never also taken away: two names can resolve
	// to one group (dept-sales and dept-Sales at a case-insensitive target).
	removeIDs = slices.DeleteFunc(removeIDs, func(g string) bool { return slices.Contains(addIDs, g) })
	if in.OldAttributes != nil && !spec.RemoveAll {
		// A mover writes only what differs: one read of the account's
		// groups, so the note counts real changes.
		gs, err := rm.Memberships(ctx, id)
		if err != nil {
			return StepResult{}, toTemporal(fmt.Errorf("%s: memberships: %w", spec.Target, err))
		}
		has := func(g string) bool {
			return slices.ContainsFunc(gs, func(m connectors.Group) bool { return m.ID == g })
		}
		if retried(ctx, in) {
			// An earlier attempt of this step may have made HR's change
			// and lost its result (timed out, its worker killed): what of
			// the change is already in place is recorded here, once.
			for _, g := range addIDs {
				if has(g) && containsFold(newly, named[g]) {
					earlier = append(earlier, audit.Effect{Action: audit.GroupAdded, Group: cmp.Or(named[g], g), Detail: "group id " + g + "; " + NoteEarlierAttempt})
				}
			}
			for _, g := range removeIDs {
				if !has(g) && containsFold(drop, named[g]) {
					earlier = append(earlier, audit.Effect{Action: audit.GroupRemoved, Group: cmp.Or(named[g], g), Detail: "group id " + g + "; " + NoteEarlierAttempt})
				}
			}
		}
		addIDs = slices.DeleteFunc(addIDs, has)
		removeIDs = slices.DeleteFunc(removeIDs, func(g string) bool { return !has(g) })
	}
	for _, g := range removeIDs {
		if err := rm.RemoveMember(ctx, g, id); err != nil {
			return StepResult{}, toTemporal(fmt.Errorf("%s: remove member: %w", spec.Target, err))
		}
	}
	for _, g := range addIDs {
		if err := rm.AddMember(ctx, g, id); err != nil {
			return StepResult{}, toTemporal(fmt.Errorf("%s: add member: %w", spec.Target, err))
		}
	}
	note := fmt.Sprintf("%d added, %d removed", len(addIDs), len(removeIDs))
	if len(in.Step.Revokes) > 0 {
		note = "taken back, their condition no longer holds: " + strings.Join(in.Step.Revokes, ", ") + "; " + note
	}
	if len(blank) > 0 {
		note += "; not granted, no value: " + strings.Join(blank, "; ")
	}
	if len(addIDs)+len(removeIDs) > 0 {
		if err := verifyMemberships(ctx, rm, spec.Target, id, addIDs, removeIDs); err != nil {
			return StepResult{}, err
		}
	}
	res := StepResult{AccountID: id, Note: note}
	for _, set := range []struct {
		action string
		ids    []string
	}{{audit.GroupRemoved, removeIDs}, {audit.GroupAdded, addIDs}} {
		for _, g := range set.ids {
			res.Effects = append(res.Effects, audit.Effect{Action: set.action, Target: spec.Target, AccountID: id,
				Group: cmp.Or(named[g], g), Detail: "group id " + g, Verified: true})
		}
	}
	for _, e := range earlier {
		e.Target, e.AccountID, e.Verified = spec.Target, id, true
		res.Effects = append(res.Effects, e)
	}
	if len(res.Effects) == 0 {
		// Nothing to change: the record says the step ran and found the
		// memberships as wanted.
		res.Effects = []audit.Effect{{Action: "group.unchanged", Target: spec.Target, AccountID: id, Detail: note, Verified: true}}
	}
	return res, nil
}

// containsFold: name is in names, whatever the case (a target may answer
// a group's name in its own case).
func containsFold(names []string, name string) bool {
	return name != "" && slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}
