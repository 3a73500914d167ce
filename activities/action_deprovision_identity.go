package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

// deprovisionIdentity is deprovision_identity (DEPROVISION_IDENTITY):
// disable the account, drop its groups, end its sessions.
type deprovisionIdentity struct{}

func (deprovisionIdentity) Name() string               { return policy.ActionDeprovisionIdentity }
func (deprovisionIdentity) Activity(a *Activities) any { return a.DeprovisionIdentity }
func (deprovisionIdentity) Traits() Traits             { return Traits{UsesAccount: true} }

func (deprovisionIdentity) Supports(c any) bool {
	_, ok := c.(connectors.Deprovisioner)
	return ok
}

func (deprovisionIdentity) Needs(s policy.Step, _ string) []string {
	out := []string{connectors.CapUpdate}
	if s.DeprovisionIdentity.RemoveGroups {
		out = append(out, connectors.CapMemberships, connectors.CapMembership)
	}
	return out
}

func (deprovisionIdentity) plan(ps *PlannedStep) error {
	ps.Destructive = true
	return nil
}

func (deprovisionIdentity) sources(*policy.Policy, policy.Step) (string, []string) { return "", nil }
func (deprovisionIdentity) secret(policy.Step) bool                                { return false }
func (deprovisionIdentity) does(_ policy.Step, in string) string                   { return "disable account" + in }

func (deprovisionIdentity) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	d := *ps.Step.DeprovisionIdentity
	out := []Effect{{Kind: EffectDisable, Note: cmp.Or(d.Mode, "suspend")}}
	if d.RemoveGroups {
		out = append(out, Effect{Kind: EffectGroupRemove, Group: AllGroups})
	}
	return out, nil
}

// RollbackStep is the step an abort with rollback runs for an account the
// run created: disable it and drop its groups (never delete).
func RollbackStep(name, target string) PlannedStep {
	return PlannedStep{Name: name, Action: policy.ActionDeprovisionIdentity, Target: target,
		Spec: policy.Step{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: target, RemoveGroups: true}}}
}

// DeprovisionIdentity disables the account, drops its groups and ends its
// sessions as the policy says. A missing account is done.
func (a *Activities) DeprovisionIdentity(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.DeprovisionIdentity
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a deprovision_identity step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	d, ok := c.(connectors.Deprovisioner)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "deprovision")
	}
	id, err := a.accountID(ctx, c, spec.Target, in)
	if err != nil {
		return StepResult{}, err
	}
	if id == "" {
		return StepResult{Note: NoteNoAccount}, nil
	}
	opts := connectors.DeprovisionOptions{Mode: spec.Mode, RemoveGroups: spec.RemoveGroups, ClearSessions: spec.ClearSessions}
	dropped, err := groupsToDrop(ctx, c, spec.Target, id, opts)
	if err != nil {
		return StepResult{}, err
	}
	before, err := a.beforeMove(ctx, c, spec.Target, id)
	if err != nil {
		return StepResult{}, err
	}
	derr := d.Deprovision(ctx, id, opts)
	if derr != nil && !errors.Is(derr, connectors.ErrNotFound) && !connectors.IsPermanent(derr) {
		return StepResult{}, toTemporal(fmt.Errorf("%s: deprovision: %w", spec.Target, derr))
	}
	// Done when the target says so: the account reads back disabled (and
	// without groups when they were to go), or absent.
	gone, groupsUnread := false, false
	var after *connectors.Account
	note, err := a.readBack(ctx, c, spec.Target, id, func(got *connectors.Account) string {
		after = got
		switch {
		case got == nil:
			gone = true
			return ""
		case got.Active:
			return wantDisabled(got)
		case opts.RemoveGroups && derr == nil && len(got.Groups) > 0:
			return fmt.Sprintf("still in %d group(s), expected none", len(got.Groups))
		}
		groupsUnread = got.Groups == nil
		return ""
	})
	if err == nil && opts.RemoveGroups && derr == nil && !gone && groupsUnread {
		// The account read says nothing of its groups: ask for them.
		err = verifyNoGroups(ctx, c, spec.Target, id)
	}
	if err != nil && derr != nil && !errors.Is(derr, connectors.ErrNotFound) {
		return StepResult{}, toTemporal(fmt.Errorf("%s: deprovision: %w", spec.Target, derr))
	}
	if err != nil {
		return StepResult{}, err
	}
	if derr != nil && !errors.Is(derr, connectors.ErrNotFound) {
		// The disable held; what failed after it (groups, sessions) is for
		// an operator, and the message says the account is disabled.
		return StepResult{}, toTemporal(fmt.Errorf("%s: account disabled, then: %w", spec.Target, derr))
	}
	res := StepResult{AccountID: id, Note: "deprovisioned", AccountState: contract.AccountDisabled}
	if gone {
		res.Note, res.AccountState = NoteNoAccount, contract.AccountAbsent
	}
	if note != "" {
		res.Note += "; " + note
	}
	if gone {
		return res, nil
	}
	var more []audit.Effect
	// One record per group dropped: read back none left, above.
	for _, g := range dropped {
		more = append(more, audit.Effect{Action: audit.GroupRemoved, Target: spec.Target, AccountID: id,
			Group: cmp.Or(g.Name, g.ID), Detail: "group id " + g.ID + "; remove_groups", Verified: true})
	}
	more = append(more, movedEffect(spec.Target, before, after)...)
	if len(more) > 0 {
		res.Effects = append(in.Step.AuditEffects(res), more...)
	}
	return res, nil
}

// beforeMove reads the account before a deprovision that may move it (a
// directory with a disabled container), so the move is recorded with
// where it was (movedEffect); nil when none can, at no request.
func (a *Activities) beforeMove(ctx context.Context, c any, target, id string) (*connectors.Account, error) {
	r, ok := c.(connectors.AccountReader)
	if !ok || a.cfg.Policy.Targets[target].DisabledContainer == "" {
		return nil, nil
	}
	acct, err := r.ReadAccount(ctx, id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, toTemporal(fmt.Errorf("%s: read account before deprovision: %w", target, err))
	}
	return acct, nil
}

// groupsToDrop are the groups remove_groups is about to drop, read first
// so the audit trail names each (the connector drops them all at once).
// An attempt retried after an earlier one dropped them finds none: the
// earlier attempt's drops are then unnamed in the trail, its disable not.
func groupsToDrop(ctx context.Context, c any, target, id string, opts connectors.DeprovisionOptions) ([]connectors.Group, error) {
	rm, ok := c.(connectors.RelationshipManager)
	if !opts.RemoveGroups || !ok {
		return nil, nil
	}
	gs, err := rm.Memberships(ctx, id)
	if err != nil && !errors.Is(err, connectors.ErrNotFound) {
		return nil, toTemporal(fmt.Errorf("%s: memberships: %w", target, err))
	}
	return gs, nil
}

// verifyNoGroups reads the account's memberships and wants none (a leaver
// with remove_groups whose account read did not list its groups).
func verifyNoGroups(ctx context.Context, c any, target, id string) error {
	rm, ok := c.(connectors.RelationshipManager)
	if !ok {
		return permanent(ErrTypePostcondition, fmt.Errorf("%s: account %s: its groups cannot be read back, so their removal is unproven", target, id))
	}
	gs, err := rm.Memberships(ctx, id)
	if previewing(ctx) {
		return nil
	}
	if err != nil {
		// (Not found here may be a missing /Groups endpoint, not a gone
		// account: it proves nothing either way.)
		return toTemporal(fmt.Errorf("%s: read back memberships: %w", target, err))
	}
	if len(gs) > 0 {
		names := make([]string, len(gs))
		for i, g := range gs {
			names[i] = cmp.Or(g.Name, g.ID)
		}
		return permanent(ErrTypePostcondition, fmt.Errorf("%s: account %s read back still in %d group(s) (%s), expected none",
			target, id, len(gs), strings.Join(names, ", ")))
	}
	return nil
}
