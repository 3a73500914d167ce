package activities

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// Notes written into the step table.
const (
	NoteCreated             = "account created"
	NoteExisting            = "account existed"
	NoteAdopted             = "existing account adopted; its password kept"
	NotePasswordSet         = "password set: an earlier attempt of this step may have created the account"
	NotePasswordSetByPolicy = "existing account adopted; password set (on_existing_account: set_password)"
	NotePasswordReissued    = "password re-issued: the one set earlier is no longer held (a run that waited for an operator or moved workers does not keep it)"
	NoteNoAccount           = "no account: nothing to do"
)

func (a *Activities) connector(target string) (any, error) {
	c, ok := a.cfg.Targets[target]
	if !ok {
		return nil, permanent("PolicyInvalid", fmt.Errorf("target %q is not configured", target))
	}
	return c, nil
}

func unsupported(target, capability string) error {
	return permanent(ErrTypeUnsupported, fmt.Errorf("target %q cannot %s", target, capability))
}

// env is the template environment of a step: the identity's attributes,
// the run's outputs, the policy's lookup tables; random functions read
// crypto/rand (Config.Rand in tests), which only activities may do.
func (a *Activities) env(attrs map[string]string, in StepInput) (*transform.Env, error) {
	if a.lookupErr != nil {
		return nil, permanent("PolicyInvalid", a.lookupErr)
	}
	r := a.cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	return &transform.Env{Attrs: attrs, Outputs: in.Outputs, Lookups: a.lookups, Rand: r, Now: time.Now()}, nil
}

// render evaluates one template source.
func render(src string, env *transform.Env) (string, error) {
	t, err := transform.Parse(src)
	if err != nil {
		return "", err
	}
	return t.Eval(env)
}

// renderAttributes is policy.RenderAttributes for a sync step against
// attrs, as a Temporal-classified error.
func (a *Activities) renderAttributes(spec *policy.SyncIdentity, attrs map[string]string, in StepInput) (connectors.Attributes, *transform.Env, error) {
	return a.render(policy.RenderAttributes, spec, attrs, in)
}

// renderIdentity is policy.RenderIdentity: a unique identifier no account
// can have (".@example.com") and no valid fallback is an InvalidIdentifier
// error naming the person and the attribute; nothing is sent.
func (a *Activities) renderIdentity(spec *policy.SyncIdentity, attrs map[string]string, in StepInput) (connectors.Attributes, *transform.Env, error) {
	return a.render(policy.RenderIdentity, spec, attrs, in)
}

func (a *Activities) render(fn func(*policy.Policy, policy.SyncIdentity, *transform.Env) (map[string]string, error),
	spec *policy.SyncIdentity, attrs map[string]string, in StepInput) (connectors.Attributes, *transform.Env, error) {
	env, err := a.env(attrs, in)
	if err != nil {
		return nil, nil, err
	}
	out, err := fn(a.cfg.Policy, *spec, env)
	var idErr *policy.IdentifierError
	switch {
	case errors.As(err, &idErr):
		return nil, nil, permanent(ErrTypeInvalidIdentifier, err)
	case err != nil:
		return nil, nil, permanent("PolicyInvalid", err)
	}
	return out, env, nil
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
	uid := a.cfg.Policy.UniqueIdentifier(*spec)
	var old connectors.Attributes
	if in.OldAttributes != nil {
		if old, _, err = a.renderAttributes(spec, in.OldAttributes, in); err != nil {
			return StepResult{}, err
		}
	}
	res := StepResult{EntityType: a.cfg.Policy.EntityType(spec.Target)}
	acct, err := a.linkedAccount(ctx, c, syncer, spec.Target, uid, in)
	if err != nil {
		return StepResult{}, err
	}
	if acct != nil {
		res.Correlation = Linked
		if err := a.keepIdentifier(ctx, syncer, spec, uid, attrs, acct, in.Identifiers[spec.Target]); err != nil {
			return StepResult{}, err
		}
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
			v, err := a.uniqueValue(ctx, syncer, spec, uid, attrs, env)
			if err != nil {
				return StepResult{}, err
			}
			attrs[uid] = v
			// v is free or ours: an earlier attempt may have created it.
			if acct, _, err = find(ctx, syncer, uid, attrs, v); err != nil && !errors.Is(err, connectors.ErrNotFound) {
				return StepResult{}, toTemporal(fmt.Errorf("%s: find account: %w", spec.Target, err))
			}
		}
		if acct != nil {
			res.Correlation = Adopted
			attrs[uid] = acct.Attributes[uid]
		}
	}
	var pw secret.Secret
	if acct == nil {
		if !spec.CreateAllowed {
			return StepResult{}, permanent(ErrTypeNotFound, fmt.Errorf("%s: no account with that %s and create is not allowed", spec.Target, uid))
		}
		if acct, pw, err = a.create(ctx, c, syncer, spec, uid, attrs, in); err != nil {
			return StepResult{}, err
		}
		res.Correlation, res.Note = Created, NoteCreated
	} else {
		if err := a.update(ctx, c, syncer, spec, uid, acct, attrs, old, in.Reactivate); err != nil {
			return StepResult{}, err
		}
		res.Note = NoteExisting
		if res.Correlation == Adopted {
			res.Note = NoteAdopted
		}
		if spec.Password == "generate" && in.Kind == policy.KindJoiner && res.Correlation == Adopted {
			switch {
			case in.Rerun || activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1:
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
	res.Outputs = map[string]string{"id": acct.ID}
	maps.Copy(res.Outputs, attrs)
	if !pw.Empty() {
		h := a.cfg.Vault.Put(in.Owner, pw)
		res.Secrets = map[string]SecretRef{res.EntityType + ".password": {Handle: h, Target: spec.Target, AccountID: acct.ID}}
		res.Queue = a.cfg.HostQueue
	}
	a.log.Info("step done", zap.String("step", in.Step.Name), zap.String("target", spec.Target),
		zap.String("correlation", res.Correlation), zap.String("note", res.Note))
	return res, nil
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
		if _, err := readBack(ctx, c, spec.Target, acct.ID, func(got *connectors.Account) string {
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
func (a *Activities) update(ctx context.Context, c any, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, acct *connectors.Account, attrs, old connectors.Attributes, reactivate bool) error {
	diff := connectors.Diff{}
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
			return toTemporal(fmt.Errorf("%s: update account: %w", spec.Target, err))
		}
	}
	reactivate = reactivate && !acct.Active
	if reactivate {
		r, ok := c.(connectors.Reactivator)
		if !ok {
			return unsupported(spec.Target, "reactivate accounts")
		}
		if err := r.Reactivate(ctx, acct.ID); err != nil {
			return toTemporal(fmt.Errorf("%s: reactivate: %w", spec.Target, err))
		}
	}
	if len(diff) == 0 && !reactivate {
		return nil // nothing written: nothing to verify
	}
	_, err := readBack(ctx, c, spec.Target, acct.ID, func(got *connectors.Account) string {
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
	return err
}

// correlationKeys are the attributes that tie an account to one person.
// An account whose value differs from the rendered one belongs to someone
// else; without any of them an active account found by the unique
// identifier is taken as this person's (adopted).
var correlationKeys = []string{"employee_id", "external_id", "employee_number"}

// belongsTo reports whether acct may be the account of the person whose
// rendered attributes are attrs. Values compare exactly: employee IDs EE1
// and ee1 are two people. An account no one owns that is disabled is not
// adopted: it is likely a former employee's, with their groups and
// password.
func belongsTo(acct *connectors.Account, attrs connectors.Attributes) bool {
	owned := false
	for _, k := range correlationKeys {
		want, got := strings.TrimSpace(attrs[k]), strings.TrimSpace(acct.Attributes[k])
		if got != "" {
			owned = true
		}
		if want != "" && got != "" && want != got {
			return false
		}
	}
	return owned || acct.Active
}

// find looks the account up by the unique identifier uid, trying keys in
// order (a mover's new value, then its old one) and skipping accounts of
// other people. held reports that the first key is another person's.
func find(ctx context.Context, s connectors.AccountSyncer, uid string, attrs connectors.Attributes, keys ...string) (acct *connectors.Account, held bool, err error) {
	tried := 0
	for i, k := range keys {
		if k == "" || slices.Contains(keys[:i], k) {
			continue
		}
		tried++
		acct, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: k})
		if errors.Is(err, connectors.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if belongsTo(acct, attrs) {
			return acct, false, nil
		}
		held = held || i == 0
	}
	if tried == 0 {
		return nil, false, permanent("PolicyInvalid", fmt.Errorf("unique identifier %s renders empty", uid))
	}
	return nil, held, connectors.ErrNotFound
}

// uniqueValue picks the unique identifier of a new account whose first
// choice is another person's: the step's fallbacks in order, each
// NEXT_NUMBER value checked with FindAccount (transform.EvalUnique).
func (a *Activities) uniqueValue(ctx context.Context, s connectors.AccountSyncer, spec *policy.SyncIdentity, uid string, attrs connectors.Attributes, env *transform.Env) (string, error) {
	if len(spec.Fallbacks[uid]) == 0 {
		return "", permanent(ErrTypeConflict, fmt.Errorf("%s: the %s is held by another person's account and the step has no fallbacks for it", spec.Target, uid))
	}
	cands, err := policy.Candidates(a.cfg.Policy, *spec, uid)
	if err != nil {
		return "", permanent("PolicyInvalid", err)
	}
	e := *env
	e.Target = attrs
	taken := func(ctx context.Context, v string) (bool, error) {
		acct, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: v})
		if errors.Is(err, connectors.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return !belongsTo(acct, attrs), nil
	}
	v, err := transform.EvalUnique(ctx, cands, &e, a.cfg.Policy.IdentifierRule(*spec), taken)
	switch {
	case errors.Is(err, transform.ErrNoUniqueValue):
		return "", permanent(ErrTypeConflict, fmt.Errorf("%s: every fallback for %s is taken", spec.Target, uid))
	case err != nil:
		return "", toTemporal(fmt.Errorf("%s: fallbacks for %s: %w", spec.Target, uid, err))
	}
	return v, nil
}

func (a *Activities) setNewPassword(ctx context.Context, c any, target, accountID string) (secret.Secret, error) {
	ps, ok := c.(connectors.PasswordSetter)
	if !ok {
		return secret.Secret{}, unsupported(target, "set passwords")
	}
	pw, err := GeneratePassword(a.cfg.Policy.Password, a.cfg.Rand)
	if err != nil {
		return secret.Secret{}, permanent("PolicyInvalid", err)
	}
	if err := ps.SetPassword(ctx, accountID, pw); err != nil {
		return secret.Secret{}, toTemporal(fmt.Errorf("%s: set password: %w", target, err), pw)
	}
	return pw, nil
}

// accountID finds the account a step acts on: an output of this run, an
// account remembered from earlier runs, or a lookup by the unique
// identifier of the policy's sync step for that target.
func (a *Activities) accountID(ctx context.Context, c any, target string, in StepInput) (string, error) {
	if id := in.Outputs[a.cfg.Policy.EntityType(target)]["id"]; id != "" {
		return id, nil
	}
	if id := in.Accounts[target]; id != "" {
		return id, nil
	}
	syncer, ok := c.(connectors.AccountSyncer)
	if !ok {
		return "", nil
	}
	for _, flow := range []policy.Flow{a.cfg.Policy.Joiner, a.cfg.Policy.Rehire, a.cfg.Policy.Mover} {
		for _, st := range flow.Steps {
			if st.SyncIdentity == nil || st.SyncIdentity.Target != target {
				continue
			}
			attrs, _, err := a.renderIdentity(st.SyncIdentity, in.Attributes, in)
			if err != nil {
				return "", err
			}
			uid := a.cfg.Policy.UniqueIdentifier(*st.SyncIdentity)
			acct, _, err := find(ctx, syncer, uid, attrs, attrs[uid])
			if errors.Is(err, connectors.ErrNotFound) {
				return "", nil
			}
			if err != nil {
				return "", toTemporal(fmt.Errorf("%s: find account: %w", target, err))
			}
			return acct.ID, nil
		}
	}
	return "", nil
}

func (a *Activities) renderList(tmpls []string, attrs map[string]string, in StepInput) (names, blank []string, err error) {
	env, err := a.env(attrs, in)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range tmpls {
		if empty := transform.EmptyAttrs(t, attrs); len(empty) > 0 {
			blank = append(blank, fmt.Sprintf("%s (%s empty)", t, strings.Join(empty, ", ")))
			continue
		}
		v, err := render(t, env)
		if err != nil {
			return nil, nil, permanent("PolicyInvalid", fmt.Errorf("group %q: %v", t, err))
		}
		if v != "" && !slices.Contains(names, v) {
			names = append(names, v)
		}
	}
	return names, blank, nil
}

// GroupDiff compares the groups rendered from the old and the new
// attributes: add are new ones not in the old, remove old ones not in the
// new. A mover removes remove, and ensures every new group (not only add):
// an earlier run may not have granted them.
func GroupDiff(oldGroups, newGroups []string) (add, remove []string) {
	for _, g := range newGroups {
		if !slices.Contains(oldGroups, g) {
			add = append(add, g)
		}
	}
	for _, g := range oldGroups {
		if !slices.Contains(newGroups, g) {
			remove = append(remove, g)
		}
	}
	return add, remove
}

// resolveGroups turns group names into target group IDs (creating missing
// ones when allowed). A connector without GroupFinder takes names as IDs.
func (a *Activities) resolveGroups(ctx context.Context, c any, target string, tmpls []string, attrs map[string]string, in StepInput, create bool) ([]string, error) {
	names, _, err := a.renderList(tmpls, attrs, in)
	if err != nil {
		return nil, err
	}
	return a.groupIDs(ctx, c, target, names, create, false)
}

func (a *Activities) groupIDs(ctx context.Context, c any, target string, names []string, create, skipMissing bool) ([]string, error) {
	var ids []string
	for _, n := range names {
		var g *connectors.Group
		var err error
		if ec, ok := c.(connectors.EntitlementCreator); ok && create {
			g, err = ec.EnsureGroup(ctx, connectors.Group{Name: n})
		} else if gf, ok := c.(connectors.GroupFinder); ok {
			g, err = gf.FindGroup(ctx, n)
			if errors.Is(err, connectors.ErrNotFound) {
				if skipMissing {
					continue
				}
				return nil, permanent("GroupNotFound", fmt.Errorf("%s: group %q does not exist", target, n))
			}
		} else {
			g = &connectors.Group{ID: n, Name: n}
		}
		if err != nil {
			return nil, toTemporal(fmt.Errorf("%s: group %q: %w", target, n, err))
		}
		ids = append(ids, g.ID)
	}
	return ids, nil
}

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
	if in.OldAttributes != nil {
		oldAdd, _, err := a.renderList(spec.Add, in.OldAttributes, in)
		if err != nil {
			return StepResult{}, err
		}
		// Every group the new attributes grant is ensured, not only the
		// new ones: an earlier run may not have granted them (aborted), or
		// someone took them away at the target.
		_, drop := GroupDiff(oldAdd, add)
		remove = append(remove, drop...)
	}
	addIDs, err := a.groupIDs(ctx, c, spec.Target, add, spec.CreateMissing, false)
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
		}
	} else {
		// Leaving a group that does not exist is done.
		if removeIDs, err = a.groupIDs(ctx, c, spec.Target, remove, false, true); err != nil {
			return StepResult{}, err
		}
	}
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
	if len(blank) > 0 {
		note += "; not granted, no value: " + strings.Join(blank, "; ")
	}
	if len(addIDs)+len(removeIDs) > 0 {
		if err := verifyMemberships(ctx, rm, spec.Target, id, addIDs, removeIDs); err != nil {
			return StepResult{}, err
		}
	}
	return StepResult{AccountID: id, Note: note}, nil
}

// verifyNoGroups reads the account's memberships and wants none (a leaver
// with remove_groups whose account read did not list its groups).
func verifyNoGroups(ctx context.Context, c any, target, id string) error {
	rm, ok := c.(connectors.RelationshipManager)
	if !ok {
		return permanent(ErrTypePostcondition, fmt.Errorf("%s: account %s: its groups cannot be read back, so their removal is unproven", target, id))
	}
	gs, err := rm.Memberships(ctx, id)
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

// verifyMemberships reads the account's groups back once: every added
// group present, every removed one gone.
func verifyMemberships(ctx context.Context, rm connectors.RelationshipManager, target, id string, added, removed []string) error {
	gs, err := rm.Memberships(ctx, id)
	if err != nil {
		return toTemporal(fmt.Errorf("%s: read back memberships: %w", target, err))
	}
	in := func(g string) bool {
		return slices.ContainsFunc(gs, func(m connectors.Group) bool { return m.ID == g })
	}
	var bad []string
	for _, g := range added {
		if !in(g) {
			bad = append(bad, "missing group "+g)
		}
	}
	for _, g := range removed {
		if in(g) {
			bad = append(bad, "still in group "+g)
		}
	}
	if len(bad) > 0 {
		return permanent(ErrTypePostcondition, fmt.Errorf("%s: account %s read back %s", target, id, strings.Join(bad, ", ")))
	}
	return nil
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
	derr := d.Deprovision(ctx, id, opts)
	if derr != nil && !errors.Is(derr, connectors.ErrNotFound) && !connectors.IsPermanent(derr) {
		return StepResult{}, toTemporal(fmt.Errorf("%s: deprovision: %w", spec.Target, derr))
	}
	// Done when the target says so: the account reads back disabled (and
	// without groups when they were to go), or absent.
	gone, groupsUnread := false, false
	note, err := readBack(ctx, c, spec.Target, id, func(got *connectors.Account) string {
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
	res := StepResult{AccountID: id, Note: "deprovisioned"}
	if gone {
		res.Note = NoteNoAccount
	}
	if note != "" {
		res.Note += "; " + note
	}
	return res, nil
}

// DeleteIdentity deletes the account. A missing account is done.
func (a *Activities) DeleteIdentity(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.DeleteIdentity
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a delete_identity step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	d, ok := c.(connectors.Deleter)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "delete accounts")
	}
	id, err := a.accountID(ctx, c, spec.Target, in)
	if err != nil {
		return StepResult{}, err
	}
	if id == "" {
		return StepResult{Note: NoteNoAccount}, nil
	}
	if err := d.Delete(ctx, id); err != nil && !errors.Is(err, connectors.ErrNotFound) {
		return StepResult{}, toTemporal(fmt.Errorf("%s: delete: %w", spec.Target, err))
	}
	note, err := readBack(ctx, c, spec.Target, id, func(got *connectors.Account) string {
		if got != nil {
			return fmt.Sprintf("present (status %s), expected absent", got.Status)
		}
		return ""
	})
	if err != nil {
		return StepResult{}, err
	}
	res := StepResult{AccountID: id, Note: "deleted"}
	if note != "" {
		res.Note += "; " + note
	}
	return res, nil
}

// EnableAccount activates an account created inactive before the start date.
func (a *Activities) EnableAccount(ctx context.Context, target, accountID string) error {
	c, err := a.connector(target)
	if err != nil {
		return err
	}
	r, ok := c.(connectors.Reactivator)
	if !ok {
		return unsupported(target, "activate accounts")
	}
	if err := r.Reactivate(ctx, accountID); err != nil {
		return toTemporal(fmt.Errorf("%s: enable: %w", target, err))
	}
	_, err = readBack(ctx, c, target, accountID, wantActive(true))
	return err
}

// CreateEntitlement ensures a group exists.
func (a *Activities) CreateEntitlement(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.CreateEntitlement
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a create_entitlement step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	ec, ok := c.(connectors.EntitlementCreator)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "create entitlements")
	}
	env, err := a.env(in.Attributes, in)
	if err != nil {
		return StepResult{}, err
	}
	name, err := render(spec.Name, env)
	if err != nil {
		return StepResult{}, permanent("PolicyInvalid", fmt.Errorf("create_entitlement.name: %v", err))
	}
	g, err := ec.EnsureGroup(ctx, connectors.Group{Name: name, Description: spec.Description})
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: ensure group: %w", spec.Target, err))
	}
	return StepResult{Outputs: map[string]string{"group_id": g.ID}, Note: "group ensured"}, nil
}

// ResetPassword is RESET_PASSWORD: the temporary password goes into the
// vault; history gets the handle.
func (a *Activities) ResetPassword(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.ResetPassword
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a reset_password step"))
	}
	c, err := a.connector(spec.Target)
	if err != nil {
		return StepResult{}, err
	}
	rp, ok := c.(connectors.PasswordResetter)
	if !ok {
		return StepResult{}, unsupported(spec.Target, "reset passwords")
	}
	id, err := a.accountID(ctx, c, spec.Target, in)
	if err != nil {
		return StepResult{}, err
	}
	if id == "" {
		return StepResult{}, permanent(ErrTypeNotFound, fmt.Errorf("%s: no account to reset", spec.Target))
	}
	pw, err := rp.ResetPassword(ctx, id)
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: reset password: %w", spec.Target, err))
	}
	et := a.cfg.Policy.EntityType(spec.Target)
	h := a.cfg.Vault.Put(in.Owner, pw)
	return StepResult{EntityType: et, AccountID: id, Note: "temporary password issued", Queue: a.cfg.HostQueue,
		Secrets: map[string]SecretRef{et + ".password": {Handle: h, Target: spec.Target, AccountID: id, Temporary: true}}}, nil
}

// SendRESTRequest is SEND_REST_REQUEST (connectors/rest). Secret
// references ({OktaUser.password}) resolve from the vault; a handle lost
// with its worker makes the step set a new password on the account and
// send that one.
func (a *Activities) SendRESTRequest(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.SendRESTRequest
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a send_rest_request step"))
	}
	req, res, err := a.restRequest(ctx, in, spec)
	if err != nil {
		return StepResult{}, err
	}
	out, err := a.rest.Send(ctx, req)
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: %w", in.Step.Name, err), req.Secrets...)
	}
	res.Outputs = out
	if res.Note == "" {
		res.Note = "sent"
	}
	return res, nil
}

// restRequest builds the request of a REST step: target, template
// environment with the run's secrets resolved from the vault (in memory
// only), the secrets themselves (HTTPS only, scrubbed from errors).
func (a *Activities) restRequest(ctx context.Context, in StepInput, spec *policy.RESTRequest) (rest.Request, StepResult, error) {
	var target *rest.Target
	if spec.Target != "" {
		t, ok := a.cfg.Policy.Targets[spec.Target]
		if !ok {
			return rest.Request{}, StepResult{}, permanent("PolicyInvalid", fmt.Errorf("target %q is not configured", spec.Target))
		}
		target = t.RESTTarget()
	}
	outputs := map[string]map[string]string{}
	for et, m := range in.Outputs {
		outputs[et] = maps.Clone(m)
	}
	res := StepResult{EntityType: a.cfg.Policy.EntityType(spec.Target)}
	refs, err := secretRefs(spec)
	if err != nil {
		return rest.Request{}, StepResult{}, err
	}
	var secrets []secret.Secret
	for _, ref := range refs {
		sr, ok := in.Secrets[ref]
		if !ok {
			et, attr, _ := strings.Cut(ref, ".")
			if outputs[et][attr] != "" {
				continue // not a secret of this run: renders from outputs
			}
			// Sending "" would tell the receiver a password that is not the
			// account's: an adopted or linked account keeps its own.
			return rest.Request{}, StepResult{}, permanent(ErrTypeNoPassword, fmt.Errorf(
				"%s: no password of this run to send for {%s}: the account was adopted or linked and keeps its own password; "+
					"skip this step, or set a password yourself and hand it over", in.Step.Name, ref))
		}
		s, err := a.cfg.Vault.Get(sr.Handle)
		if errors.Is(err, secret.ErrUnknownHandle) {
			c, cerr := a.connector(sr.Target)
			if cerr != nil {
				return rest.Request{}, StepResult{}, cerr
			}
			if s, err = a.reissue(ctx, c, sr); err != nil {
				return rest.Request{}, StepResult{}, err
			}
			h := a.cfg.Vault.Put(in.Owner, s)
			if res.Secrets == nil {
				res.Secrets = map[string]SecretRef{}
			}
			res.Secrets[ref] = SecretRef{Handle: h, Target: sr.Target, AccountID: sr.AccountID, Temporary: sr.Temporary}
			res.Queue = a.cfg.HostQueue
			res.Note = NotePasswordReissued
			a.log.Warn("vault handle lost; password re-issued", zap.String("step", in.Step.Name), zap.String("target", sr.Target))
		}
		secrets = append(secrets, s)
		et, attr, _ := strings.Cut(ref, ".")
		if outputs[et] == nil {
			outputs[et] = map[string]string{}
		}
		outputs[et][attr] = s.Reveal()
	}
	env, err := a.env(in.Attributes, in)
	if err != nil {
		return rest.Request{}, StepResult{}, err
	}
	env.Outputs = outputs
	return rest.Request{Spec: spec.RESTSpec(), Target: target, Templates: env, Secrets: secrets}, res, nil
}

// reissue replaces a password whose vault entry was lost with its worker,
// by the rules of the target: a temporary password is expired again (the
// user must still change it at first sign-in), never made permanent.
func (a *Activities) reissue(ctx context.Context, c any, sr SecretRef) (secret.Secret, error) {
	if !sr.Temporary {
		return a.setNewPassword(ctx, c, sr.Target, sr.AccountID)
	}
	rp, ok := c.(connectors.PasswordResetter)
	if !ok {
		return secret.Secret{}, unsupported(sr.Target, "reset passwords")
	}
	pw, err := rp.ResetPassword(ctx, sr.AccountID)
	if err != nil {
		return secret.Secret{}, toTemporal(fmt.Errorf("%s: reset password again: %w", sr.Target, err))
	}
	return pw, nil
}

// secretRefs lists the Entity.password references of a REST spec.
func secretRefs(spec *policy.RESTRequest) ([]string, error) {
	var refs []string
	srcs := []string{spec.URL, spec.Body}
	for _, k := range slices.Sorted(maps.Keys(spec.Headers)) {
		srcs = append(srcs, spec.Headers[k])
	}
	srcs = append(srcs, notifySources(spec)...)
	for _, src := range srcs {
		t, err := transform.Parse(src)
		if err != nil {
			return nil, permanent("PolicyInvalid", fmt.Errorf("rest template: %v", err))
		}
		for _, r := range t.Refs() {
			if r.Entity != "" && r.Entity != "$target" && r.Attr == "password" {
				ref := r.Entity + "." + r.Attr
				if !slices.Contains(refs, ref) {
					refs = append(refs, ref)
				}
			}
		}
	}
	return refs, nil
}

// ForgetSecrets wipes the vault entries of a run. It runs on the queue of
// the worker that holds them (or in the run's worker session); on any
// other worker it finds nothing, which is fine.
func (a *Activities) ForgetSecrets(_ context.Context, owner string) error {
	a.cfg.Vault.DeleteOwner(owner)
	return nil
}
