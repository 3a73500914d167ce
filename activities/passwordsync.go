package activities

// Password sync groups (IdentityNow "password sync group"): one password
// set on every member target of a group, the authoritative target first.
//
// The new password never enters Temporal: the process that receives it
// (the intake or a self-service portal running in a worker process) puts
// it in that worker's vault and starts the PasswordSync workflow with the
// vault handle and the worker's own host task queue
// (workflows.StartPasswordSync). Every activity that reads the password
// runs on that queue, so the handle resolves; if that worker died, the
// handle is gone and the change fails as "PasswordLost" — the user types
// it again. The vault entry is wiped when the workflow ends.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// ErrTypePasswordLost: the vault handle of a password change no longer
// resolves (its worker restarted or the entry expired).
const ErrTypePasswordLost = "PasswordLost"

// PasswordSyncRequest identifies a password change; it holds no secret.
type PasswordSyncRequest struct {
	Group      string        `json:"group"`
	EmployeeID string        `json:"employee_id"`
	Handle     secret.Handle `json:"handle"`
	// Attributes render the group's forbidden words and find accounts;
	// nil: read from the Directory.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Accounts by target, when the caller knows them (several accounts of
	// one user on a target are all changed); nil: the identity's accounts,
	// else a lookup by the target's unique identifier.
	Accounts map[string][]string `json:"accounts,omitempty"`
}

// PasswordCheck is the group policy's verdict. Rule names the failed rule.
type PasswordCheck struct {
	OK      bool   `json:"ok"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message,omitempty"`
}

func (a *Activities) group(name string) (policy.PasswordSyncGroup, error) {
	for _, g := range a.cfg.Policy.PasswordSyncGroups {
		if g.Name == name {
			return g, nil
		}
	}
	return policy.PasswordSyncGroup{}, permanent("PolicyInvalid", fmt.Errorf("no password sync group %q", name))
}

// identityAttrs are the request's attributes or the directory's.
func (a *Activities) identityAttrs(ctx context.Context, req PasswordSyncRequest) (IdentityRecord, error) {
	rec := IdentityRecord{EmployeeID: req.EmployeeID, Attributes: req.Attributes}
	if req.Attributes != nil || a.cfg.Directory == nil {
		return rec, nil
	}
	r, err := a.cfg.Directory.Identity(ctx, req.EmployeeID)
	if errors.Is(err, connectors.ErrNotFound) {
		return rec, permanent(ErrTypeNotFound, fmt.Errorf("identity %s is unknown", req.EmployeeID))
	}
	if err != nil {
		return rec, toTemporal(err)
	}
	return r, nil
}

func (a *Activities) password(h secret.Handle) (secret.Secret, error) {
	pw, err := a.cfg.Vault.Get(h)
	if err != nil {
		return pw, permanent(ErrTypePasswordLost, errors.New("the new password is no longer held by this worker; ask the user to enter it again"))
	}
	return pw, nil
}

// CheckSyncedPassword checks the new password against the group's rules
// (length, classes, forbidden words rendered from the user's attributes)
// and the group against its members' known rules. It changes nothing.
func (a *Activities) CheckSyncedPassword(ctx context.Context, req PasswordSyncRequest) (PasswordCheck, error) {
	g, err := a.group(req.Group)
	if err != nil {
		return PasswordCheck{}, err
	}
	if probs := policy.PasswordGroupProblems(a.cfg.Policy, g); len(probs) > 0 {
		return PasswordCheck{Rule: "group", Message: probs[0]}, nil
	}
	pw, err := a.password(req.Handle)
	if err != nil {
		return PasswordCheck{}, err
	}
	rec, err := a.identityAttrs(ctx, req)
	if err != nil {
		return PasswordCheck{}, err
	}
	var words []string
	for i, src := range g.Rules.ForbiddenWords {
		t, err := transform.Parse(src)
		if err != nil {
			return PasswordCheck{}, permanent("PolicyInvalid", fmt.Errorf("forbidden_words[%d]: %v", i, err))
		}
		w, err := t.Eval(&transform.Env{Attrs: rec.Attributes})
		if err != nil {
			return PasswordCheck{}, permanent("PolicyInvalid", fmt.Errorf("forbidden_words[%d]: %v", i, err))
		}
		words = append(words, w)
	}
	rule, msg := policy.CheckPassword(g.Rules, pw.Reveal(), words)
	return PasswordCheck{OK: rule == "", Rule: rule, Message: redact(msg, pw)}, nil
}

// TargetAccounts are a user's accounts on one target.
type TargetAccounts struct {
	Target string   `json:"target"`
	IDs    []string `json:"ids,omitempty"`
}

// PasswordAccounts finds the accounts of the user on every target of the
// group, the auth target first: the request's, else the identity's known
// account, else a lookup by the unique identifier of the target's
// sync_identity step. A target with no account has no IDs.
func (a *Activities) PasswordAccounts(ctx context.Context, req PasswordSyncRequest) ([]TargetAccounts, error) {
	g, err := a.group(req.Group)
	if err != nil {
		return nil, err
	}
	rec, err := a.identityAttrs(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []TargetAccounts
	for _, target := range g.GroupTargets() {
		ta := TargetAccounts{Target: target, IDs: slices.Clone(req.Accounts[target])}
		if len(ta.IDs) == 0 && rec.Accounts[target] != "" {
			ta.IDs = []string{rec.Accounts[target]}
		}
		if len(ta.IDs) == 0 {
			c, err := a.connector(target)
			if err != nil {
				return nil, err
			}
			id, err := a.accountID(ctx, c, target, StepInput{Attributes: rec.Attributes})
			if err != nil {
				return nil, err
			}
			if id != "" {
				ta.IDs = []string{id}
			}
		}
		out = append(out, ta)
	}
	return out, nil
}

// SetPasswordInput sets the group's new password on one account.
type SetPasswordInput struct {
	Target    string        `json:"target"`
	AccountID string        `json:"account_id"`
	Handle    secret.Handle `json:"handle"`
}

// SetSyncedPassword sets the password on one account. The target decides:
// a disabled account is still attempted and may be refused. Errors are
// scrubbed of the password.
func (a *Activities) SetSyncedPassword(ctx context.Context, in SetPasswordInput) error {
	c, err := a.connector(in.Target)
	if err != nil {
		return err
	}
	ps, ok := c.(connectors.PasswordSetter)
	if !ok {
		return unsupported(in.Target, "set passwords")
	}
	pw, err := a.password(in.Handle)
	if err != nil {
		return err
	}
	if err := ps.SetPassword(ctx, in.AccountID, pw); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return permanent(ErrTypeNotFound, fmt.Errorf("%s: account %s not found", in.Target, in.AccountID))
		}
		return toTemporal(fmt.Errorf("%s: set password: %w", in.Target, err), pw)
	}
	return nil
}
