package activities

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// Notes written into the step table.
const (
	NoteCreated     = "account created"
	NoteExisting    = "account existed"
	NoteAdopted     = "existing account adopted; its password kept"
	NotePasswordSet = "password set: an earlier attempt of this step may have created the account"
	// NoteEarlierAttempt: a retried step found (part of) its change made.
	NoteEarlierAttempt      = "an earlier attempt of this step may have made this change (it lost its result)"
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
	for _, flow := range a.cfg.Policy.GrantingFlows() {
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
	return a.groupIDs(ctx, c, target, names, create, false, nil)
}

func (a *Activities) groupIDs(ctx context.Context, c any, target string, names []string, create, skipMissing bool, named map[string]string) ([]string, error) {
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
				return nil, permanent(ErrTypeGroupNotFound, fmt.Errorf("%s: group %q does not exist", target, n))
			}
		} else {
			g = &connectors.Group{ID: n, Name: n}
		}
		if err != nil {
			return nil, toTemporal(fmt.Errorf("%s: group %q: %w", target, n, err))
		}
		ids = append(ids, g.ID)
		if named != nil {
			named[g.ID] = n
		}
	}
	return ids, nil
}

// verifyMemberships reads the account's groups back once: every added
// group present, every removed one gone.
func verifyMemberships(ctx context.Context, rm connectors.RelationshipManager, target, id string, added, removed []string) error {
	gs, err := rm.Memberships(ctx, id)
	if previewing(ctx) {
		return nil
	}
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
	_, err = a.readBack(ctx, c, target, accountID, wantActive(true))
	return err
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
