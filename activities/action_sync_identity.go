package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// syncIdentity is sync_identity (SYNC_IDENTITIES): the person's account,
// linked, adopted or created, with the step's attributes.
type syncIdentity struct{}

func (syncIdentity) Name() string               { return policy.ActionSyncIdentity }
func (syncIdentity) Activity(a *Activities) any { return a.SyncIdentity }
func (syncIdentity) Traits() Traits             { return Traits{Links: true} }

func (syncIdentity) Supports(c any) bool {
	_, ok := c.(connectors.AccountSyncer)
	return ok
}

func (syncIdentity) Needs(s policy.Step, _ string) []string {
	a := s.SyncIdentity
	out := []string{connectors.CapLookup, connectors.CapUpdate}
	if a.CreateAllowed {
		out = append(out, connectors.CapCreate)
	}
	if len(a.Groups) > 0 {
		out = append(out, connectors.CapGroups)
	}
	return out
}

func (syncIdentity) plan(*PlannedStep) error { return nil }

func (syncIdentity) sources(p *policy.Policy, s policy.Step) (string, []string) {
	a := s.SyncIdentity
	var srcs []string
	for _, k := range slices.Sorted(maps.Keys(a.Attributes)) {
		srcs = append(srcs, a.Attributes[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.Fallbacks)) {
		srcs = append(srcs, a.Fallbacks[k]...)
	}
	return p.EntityType(a.Target), append(srcs, a.Groups...)
}

func (syncIdentity) secret(s policy.Step) bool { return s.SyncIdentity.Password != "" }

func (syncIdentity) does(_ policy.Step, in string) string { return "create or update account" + in }

// Effects: a joiner that may create counts a create with every attribute;
// any other flow an update of every synced attribute (what differs from
// the account only a run can read); then the groups of the create.
func (syncIdentity) Effects(pp *Person, ps policy.PlannedStep) ([]Effect, error) {
	p, a := pp.Policy, *ps.Step.SyncIdentity
	attrs, err := policy.RenderIdentity(p, a, pp.Env)
	if err != nil {
		return nil, evalFailed(nil, "", err)
	}
	uid := p.UniqueIdentifier(a)
	if pp.Claim != nil {
		if err := pp.Claim(a, uid, attrs); err != nil {
			return nil, err
		}
	}
	entity := p.EntityType(a.Target)
	out := maps.Clone(attrs)
	out["id"] = "<" + entity + ".id>"
	pp.Env.Outputs[entity] = out
	synced := map[string]bool{}
	for k := range attrs {
		synced[k] = !slices.Contains(a.NotContinuouslySynced, k) && (k != uid || a.Rename == policy.RenameAllowed)
	}
	eff := Effect{Kind: EffectUpdate, Attrs: attrs, Synced: synced, UID: uid}
	if pp.Kind == policy.KindJoiner && a.CreateAllowed {
		eff.Kind = EffectCreate
	} else {
		// A mover writes only what differs from the account, which only a
		// run can read: every synced attribute is counted.
		eff.Attrs = map[string]string{}
		for k, v := range attrs {
			if synced[k] {
				eff.Attrs[k] = v
			}
		}
	}
	effects := []Effect{eff}
	var errs error
	for _, g := range a.Groups {
		v, err := render(g, pp.Env)
		if err != nil {
			errs = evalFailed(errs, "groups", err)
			continue
		}
		effects = append(effects, Effect{Kind: EffectGroupAdd, Group: v})
	}
	return effects, errs
}

// pinIdentifier renders the step's attributes again with the unique
// identifier fixed to v (policy.RenderPinned).
func (a *Activities) pinIdentifier(spec *policy.SyncIdentity, v string, env *transform.Env) (connectors.Attributes, error) {
	out, err := policy.RenderPinned(a.cfg.Policy, *spec, env, v)
	if err != nil {
		return nil, permanent("PolicyInvalid", err)
	}
	return out, nil
}

// SyncIdentity is SYNC_IDENTITIES. The account is, in order: the one this
// person's link names (Linked); an unlinked account found by the unique
// identifier whose correlation keys match (Adopted); a new one (Created),
// whose identifier comes from the step's fallbacks (NEXT_NUMBER) when the
// first choice is another person's. A linked account keeps its identifier
// unless the step allows renames, and is never renamed onto a value another
// account holds. Passwords: a created account gets the generated one; an
// adopted one keeps its own unless on_existing_account is set_password or
// this step's earlier attempt may have created it; a linked one is never
// touched. Every write is read back before the step is done.
func (a *Activities) SyncIdentity(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.SyncIdentity
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a sync_identity step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	syncer, ok := c.(connectors.AccountSyncer)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "sync identities")
	}
	attrs, env, err := a.renderIdentity(spec, in.Attributes, in)
	if err != nil && in.Identifiers[spec.Target] != "" && spec.Rename != policy.RenameAllowed {
		// A linked account keeps the identifier it was created with; the
		// new rendering of it is not used.
		attrs, env, err = a.renderAttributes(spec, in.Attributes, in)
	}
	if err != nil {
		return StepResult{}, err
	}
	if err := a.resolveReferences(ctx, spec.Target, attrs); err != nil {
		return StepResult{}, err
	}
	uid := a.cfg.Policy.UniqueIdentifier(*spec)
	var old connectors.Attributes
	if in.OldAttributes != nil {
		if old, _, err = a.renderAttributes(spec, in.OldAttributes, in); err != nil {
			return StepResult{}, err
		}
	}
	res := StepResult{EntityType: a.cfg.Policy.EntityType(spec.Target)}
	first := attrs[uid]
	acct, err := a.linkedAccount(ctx, c, syncer, spec.Target, uid, in)
	if err != nil {
		return StepResult{}, err
	}
	if acct != nil {
		res.Correlation = Linked
		if err := a.keepIdentifier(ctx, syncer, spec, uid, attrs, acct, in.Identifiers[spec.Target]); err != nil {
			return StepResult{}, err
		}
	} else if acct, err = correlate(ctx, c, attrs); err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: correlate: %w", spec.Target, err))
	} else if acct != nil {
		// The target's own correlation key (an LDAP employeeID) named
		// the account: it is this person's whatever its login.
		res.Correlation = Adopted
		attrs[uid] = acct.Attributes[uid]
	} else {
		var held bool
		acct, held, err = find(ctx, syncer, uid, attrs, attrs[uid], old[uid])
		if err != nil && !errors.Is(err, connectors.ErrNotFound) {
			return StepResult{}, toTemporal(fmt.Errorf("%s: find account: %w", spec.Target, err))
		}
		if acct == nil && held {
			if !spec.CreateAllowed {
				return StepResult{}, permanent(ErrTypeConflict, fmt.Errorf("%s: the %s is held by another person's account", spec.Target, uid))
			}
			// v is free or ours (acct: an earlier attempt may have created it).
			var v string
			if v, acct, err = a.uniqueValue(ctx, syncer, spec, uid, attrs, env, attrs[uid]); err != nil {
				return StepResult{}, err
			}
			attrs[uid] = v
		}
		if acct != nil {
			res.Correlation = Adopted
			attrs[uid] = acct.Attributes[uid]
		}
	}
	if attrs[uid] != first {
		// A fallback, or the account's own identifier: {$target.<uid>}
		// in the other attributes renders the identifier used.
		if attrs, err = a.pinIdentifier(spec, attrs[uid], env); err != nil {
			return StepResult{}, err
		}
	}
	var pw secret.Secret
	var updated []audit.Effect // what an update of an existing account wrote
	if acct == nil {
		if !spec.CreateAllowed {
			return StepResult{}, permanent(ErrTypeNotFound, fmt.Errorf("%s: no account with that %s and create is not allowed", spec.Target, uid))
		}
		if acct, pw, err = a.create(ctx, c, syncer, spec, uid, attrs, in); err != nil {
			return StepResult{}, err
		}
		res.Correlation, res.Note = Created, NoteCreated
	} else {
		diff, reactivated, after, err := a.update(ctx, c, syncer, spec, uid, acct, attrs, old, in.Reactivate)
		if err != nil {
			return StepResult{}, err
		}
		detail := ""
		if len(diff) == 0 && old != nil && retried(ctx, in) {
			// An earlier attempt of this step may have written HR's change
			// and lost its result: what of it is in place is recorded
			// here, once.
			diff = changed(spec, attrs, old, acct)
			detail = NoteEarlierAttempt
		}
		if len(diff) > 0 {
			written := map[string]string{}
			for k, v := range diff {
				if !a.cfg.Policy.Audit.Auditable(k) {
					v = "" // the name only: the policy does not mark it auditable
				}
				written[k] = v
			}
			updated = append(updated, audit.Effect{Action: audit.AccountUpdated, Target: spec.Target, AccountID: acct.ID, Attributes: written, Detail: detail, Verified: true})
		}
		if reactivated {
			updated = append(updated, audit.Effect{Action: audit.AccountEnabled, Target: spec.Target, AccountID: acct.ID, Verified: true})
		}
		// A directory moves the account when its container's attributes
		// change, or out of the disabled container on a rehire.
		updated = append(updated, movedEffect(spec.Target, acct, after)...)
		res.Note = NoteExisting
		if res.Correlation == Adopted {
			res.Note = NoteAdopted
		}
		if spec.Password == "generate" && in.Kind == policy.KindJoiner && res.Correlation == Adopted {
			switch {
			case retried(ctx, in):
				// This step's earlier attempt may have created the account
				// and lost the password with its result: set a fresh one
				// rather than hand out nothing.
				res.Note = NotePasswordSet
			case spec.OnExistingAccount == policy.SetPassword:
				res.Note = NotePasswordSetByPolicy
			}
			if res.Note != NoteAdopted {
				if pw, err = a.setNewPassword(ctx, c, spec.Target, acct.ID); err != nil {
					return StepResult{}, err
				}
			}
		}
	}
	res.AccountID, res.Identifier = acct.ID, attrs[uid]
	res.AccountState = contract.AccountDisabled
	if res.Correlation == Created && !in.Inactive || res.Correlation != Created && (acct.Active || in.Reactivate) {
		res.AccountState = contract.AccountActive
	}
	res.Outputs = map[string]string{"id": acct.ID}
	maps.Copy(res.Outputs, attrs)
	if !pw.Empty() {
		h := a.cfg.Vault.Put(in.Owner, pw)
		res.Secrets = map[string]SecretRef{res.EntityType + ".password": {Handle: h, Target: spec.Target, AccountID: acct.ID}}
		res.Queue = a.cfg.HostQueue
	}
	res.Effects = append(in.Step.AuditEffects(StepResult{AccountID: res.AccountID, Identifier: res.Identifier, Correlation: res.Correlation, Note: res.Note, Secrets: res.Secrets}), updated...)
	a.log.Info("step done", zap.String("step", in.Step.Name), zap.String("target", spec.Target),
		zap.String("correlation", res.Correlation), zap.String("note", res.Note))
	return res, nil
}

// resolveReferences replaces, in the attributes the target describes as
// references to another person's account (Entra's manager), a value that
// is an HR employee ID with that person's account ID on the same target,
// read from the person's link (the identity's record): HR says "E0007",
// Graph needs E0007's object ID. A value no identity has is left as is
// (an account ID or user name the policy wrote); a person jml knows with
// no account on the target yet is a retryable error (that person's joiner
// may still be running).
func (a *Activities) resolveReferences(ctx context.Context, target string, attrs connectors.Attributes) error {
	d, ok := policy.Describe(a.cfg.Policy.Targets[target].Type)
	if !ok || a.cfg.Directory == nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		spec, ok := d.Attribute(k)
		v := attrs[k]
		if !ok || !spec.Reference || v == "" {
			continue
		}
		rec, err := a.cfg.Directory.Identity(ctx, v)
		switch {
		case errors.Is(err, connectors.ErrNotFound):
			continue
		case err != nil:
			return toTemporal(fmt.Errorf("%s: %s: read the identity it names: %w", target, k, err))
		case rec.Accounts[target] == "":
			return toTemporal(connectors.Transient(fmt.Errorf("%s: %s: the person it names has no account on %s yet", target, k, target)))
		}
		attrs[k] = rec.Accounts[target]
	}
	return nil
}

// correlate finds the person's account by the target's own correlation
// key, when its connector has one (connectors.Correlator); nil when none.
func correlate(ctx context.Context, c any, attrs connectors.Attributes) (*connectors.Account, error) {
	k, ok := c.(connectors.Correlator)
	if !ok {
		return nil, nil
	}
	acct, err := k.Correlate(ctx, attrs)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, nil
	}
	return acct, err
}

// linkedAccount reads the account this person's link names. A link whose
// account is gone (deleted outside jml) is dropped: the step correlates
// again.
func (a *Activities) linkedAccount(ctx context.Context, c any, s connectors.AccountSyncer, target, uid string, in StepInput) (*connectors.Account, error) {
	id := in.Accounts[target]
	if id == "" {
		return nil, nil
	}
	var acct *connectors.Account
	var err error
	if r, ok := c.(connectors.AccountReader); ok {
		acct, err = r.ReadAccount(ctx, id)
	} else if v := in.Identifiers[target]; v != "" {
		if acct, err = s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: v}); err == nil && acct.ID != id {
			acct, err = nil, connectors.ErrNotFound
		}
	} else {
		return nil, nil
	}
	if errors.Is(err, connectors.ErrNotFound) {
		a.log.Warn("linked account is gone; correlating again", zap.String("target", target))
		return nil, nil
	}
	if err != nil {
		return nil, toTemporal(fmt.Errorf("%s: read linked account: %w", target, err))
	}
	return acct, nil
}

// keepIdentifier decides the unique identifier of a linked account: its
// own, unless the step allows renames and the new value is free.
func (a *Activities) keepIdentifier(ctx context.Context, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, attrs connectors.Attributes, acct *connectors.Account, linked string) error {
	cur := acct.Attributes[uid]
	if cur == "" {
		cur = linked
	}
	if cur == "" || AttrEqual(uid, attrs[uid], cur) {
		attrs[uid] = cur
		return nil
	}
	if spec.Rename != policy.RenameAllowed {
		attrs[uid] = cur
		return nil
	}
	other, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: attrs[uid]})
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return nil
	case err != nil:
		return toTemporal(fmt.Errorf("%s: find account: %w", spec.Target, err))
	case other.ID != acct.ID:
		return permanent(ErrTypeConflict, fmt.Errorf("%s: cannot rename the linked account: the new %s is held by another account", spec.Target, uid))
	}
	return nil
}

// create makes the account (with a generated password when the step says
// so) and checks the created account shows what was written.
func (a *Activities) create(ctx context.Context, c any, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, attrs connectors.Attributes, in StepInput) (*connectors.Account, secret.Secret, error) {
	var pw secret.Secret
	opts := connectors.CreateOptions{Activate: !in.Inactive}
	var err error
	if spec.Password == "generate" {
		if pw, err = GeneratePassword(a.cfg.Policy.Password, a.cfg.Rand); err != nil {
			return nil, pw, permanent("PolicyInvalid", err)
		}
		opts.Password = &pw
	}
	if opts.GroupIDs, err = a.resolveGroups(ctx, c, spec.Target, spec.Groups, in.Attributes, in, false); err != nil {
		return nil, pw, err
	}
	acct, err := s.CreateAccount(ctx, attrs, opts)
	if err != nil {
		return nil, pw, toTemporal(fmt.Errorf("%s: create account: %w", spec.Target, err), pw)
	}
	// The create answer is the target's stored representation: it is the
	// read-back, at no extra request. Only a disagreement reads again.
	if attrsDiffer(acct, attrs, uid) != "" || acct.Active == in.Inactive {
		if _, err := a.readBack(ctx, c, spec.Target, acct.ID, func(got *connectors.Account) string {
			if got == nil {
				return "absent after create"
			}
			if d := attrsDiffer(got, attrs, uid); d != "" {
				return d
			}
			return wantActive(!in.Inactive)(got)
		}); err != nil {
			return nil, pw, err
		}
	}
	return acct, pw, nil
}

// update writes what differs (a mover: only what the HR change touched),
// reactivates when asked, and reads the account back.
// retried: this step ran before in this run (a retry after a failure or
// a timeout, or a rerun after a lost worker): what it finds done may be
// its own earlier attempt's work.
func retried(ctx context.Context, in StepInput) bool {
	return in.Rerun || activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1
}

// changed is HR's change as the account holds it: the attributes whose
// values differ between the old and the new rendering and that the
// account already has (an update's diff finds them done).
func changed(spec *policy.SyncIdentity, attrs, old connectors.Attributes, acct *connectors.Account) connectors.Diff {
	d := connectors.Diff{}
	for k, v := range attrs {
		if old[k] != v && acct.Attributes[k] == v && !slices.Contains(spec.NotContinuouslySynced, k) {
			d[k] = v
		}
	}
	return d
}

func (a *Activities) update(ctx context.Context, c any, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, acct *connectors.Account, attrs, old connectors.Attributes, reactivate bool) (diff connectors.Diff, reactivated bool, after *connectors.Account, err error) {
	diff = connectors.Diff{}
	for k, v := range attrs {
		if slices.Contains(spec.NotContinuouslySynced, k) {
			continue
		}
		if old != nil && old[k] == v && acct.Attributes[k] != "" {
			continue // mover: only what the HR change touched
		}
		if acct.Attributes[k] != v {
			diff[k] = v
		}
	}
	if len(diff) > 0 {
		if err := s.UpdateAccount(ctx, acct.ID, diff); err != nil {
			return nil, false, nil, toTemporal(fmt.Errorf("%s: update account: %w", spec.Target, err))
		}
	}
	reactivate = reactivate && !acct.Active
	if reactivate {
		r, ok := c.(connectors.Reactivator)
		if !ok {
			return nil, false, nil, unsupported(spec.Target, "reactivate accounts")
		}
		if err := r.Reactivate(ctx, acct.ID); err != nil {
			return nil, false, nil, toTemporal(fmt.Errorf("%s: reactivate: %w", spec.Target, err))
		}
	}
	if len(diff) == 0 && !reactivate {
		return nil, false, nil, nil // nothing written: nothing to verify
	}
	_, err = a.readBack(ctx, c, spec.Target, acct.ID, func(got *connectors.Account) string {
		after = got
		if got == nil {
			return "absent after update"
		}
		if d := attrsDiffer(got, diff, uid); d != "" {
			return d
		}
		if reactivate {
			return wantActive(true)(got)
		}
		return ""
	})
	return diff, reactivate, after, err
}

// uniqueValue picks the unique identifier of a new account whose first
// choice is another person's: the step's fallbacks in order, each
// NEXT_NUMBER value checked with FindAccount (transform.EvalUnique). held
// is the value already found to be another person's, which is not asked
// again. A value whose account belongs to this person (an earlier attempt
// created it) is returned with that account, so the caller adopts it
// without a second lookup.
func (a *Activities) uniqueValue(ctx context.Context, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, attrs connectors.Attributes, env *transform.Env, held string) (string, *connectors.Account, error) {
	if len(spec.Fallbacks[uid]) == 0 {
		return "", nil, permanent(ErrTypeConflict, fmt.Errorf("%s: the %s is held by another person's account and the step has no fallbacks for it", spec.Target, uid))
	}
	cands, err := policy.Candidates(a.cfg.Policy, *spec, uid)
	if err != nil {
		return "", nil, permanent("PolicyInvalid", err)
	}
	e := *env
	e.Target = attrs
	var mine *connectors.Account
	taken := func(ctx context.Context, v string) (bool, error) {
		if v == held {
			return true, nil
		}
		acct, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: v})
		if errors.Is(err, connectors.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if belongsTo(acct, attrs) {
			mine = acct
			return false, nil
		}
		return true, nil
	}
	v, err := transform.EvalUnique(ctx, cands, &e, a.cfg.Policy.IdentifierRule(*spec), taken)
	switch {
	case errors.Is(err, transform.ErrNoUniqueValue):
		return "", nil, permanent(ErrTypeConflict, fmt.Errorf("%s: every fallback for %s is taken", spec.Target, uid))
	case err != nil:
		return "", nil, toTemporal(fmt.Errorf("%s: fallbacks for %s: %w", spec.Target, uid, err))
	}
	return v, mine, nil
}
