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
//
// Whose accounts change is the identity's word alone: the request names
// the person and the group, and the accounts are the person's links and
// the forbidden words the person's own attributes, both read from the
// Directory (the Identity workflow's record). Nothing a caller sends can
// point the change at another account.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// Error types of password sync.
const (
	// ErrTypePasswordLost: the vault handle of a password change no longer
	// resolves (its worker restarted or the entry expired).
	ErrTypePasswordLost = "PasswordLost"
	// ErrTypeAccountDisabled: the account is disabled on its target, so its
	// password is left alone.
	ErrTypeAccountDisabled = "AccountDisabled"
	// ErrTypePasswordRefused: the change was refused before anything was
	// written (PasswordCheck.Refusal says why).
	ErrTypePasswordRefused = "PasswordRefused"
)

// Why a password change is refused before anything is written.
const (
	RefusedUnknownGroup  = "unknown_group"  // no such password sync group
	RefusedGroupInvalid  = "group_invalid"  // the group cannot work (PasswordGroupProblems)
	RefusedUnknownPerson = "unknown_person" // no identity with that employee ID
	RefusedTerminated    = "terminated"     // the person has left: their accounts stay as the leaver left them
	RefusedNoAccount     = "no_account"     // no account on the group's authoritative target yet
	RefusedRules         = "rules"          // the password breaks rules (Failures)
)

// PasswordSyncRequest names a password change: the group and the person,
// nothing else about them. It holds no secret. (Runs started before the
// person's record became the only word also carried attributes and
// accounts; they are ignored.)
type PasswordSyncRequest struct {
	Group      string        `json:"group"`
	EmployeeID string        `json:"employee_id"`
	Handle     secret.Handle `json:"handle"`
}

// PasswordCheck is the verdict on a change before anything is written.
type PasswordCheck struct {
	OK bool `json:"ok"`
	// Refusal is a Refused* code when not OK.
	Refusal string `json:"refusal,omitempty"`
	// Rule is the first failed rule, or the refusal when it is not about
	// rules (as runs started before Refusal reported it).
	Rule     string               `json:"rule,omitempty"`
	Message  string               `json:"message,omitempty"`
	Failures []policy.RuleFailure `json:"failures,omitempty"`
}

func refuse(code, format string, args ...any) PasswordCheck {
	return PasswordCheck{Refusal: code, Rule: code, Message: fmt.Sprintf(format, args...)}
}

func (a *Activities) group(name string) (policy.PasswordSyncGroup, bool) {
	for _, g := range a.cfg.Policy.PasswordSyncGroups {
		if g.Name == name {
			return g, true
		}
	}
	return policy.PasswordSyncGroup{}, false
}

// passwordPerson reads the person a change is for and whether their
// accounts may change: known, not terminated, linked to an account on
// the group's authoritative target. A refusal has OK false.
func (a *Activities) passwordPerson(ctx context.Context, g policy.PasswordSyncGroup, employeeID string) (IdentityRecord, PasswordCheck, error) {
	if a.cfg.Directory == nil {
		return IdentityRecord{}, PasswordCheck{}, permanent("PolicyInvalid", errors.New("password sync needs the identity directory"))
	}
	rec, err := a.cfg.Directory.Identity(ctx, employeeID)
	if errors.Is(err, connectors.ErrNotFound) {
		return rec, refuse(RefusedUnknownPerson, "no person with employee ID %s is known to jml", employeeID), nil
	}
	if err != nil {
		return rec, PasswordCheck{}, toTemporal(err)
	}
	if rec.Status == contract.StatusDeprovisioned {
		return rec, refuse(RefusedTerminated, "%s is terminated: the password of a terminated person's accounts is not changed", employeeID), nil
	}
	if rec.Accounts[g.Auth] == "" {
		return rec, refuse(RefusedNoAccount, "%s has no account on %s, the group's authoritative target, yet (a hire before the start date has none)", employeeID, g.Auth), nil
	}
	return rec, PasswordCheck{OK: true}, nil
}

// CheckPasswordChange is the whole verdict on a change before anything is
// written: the group exists and can work; the person is known, not
// terminated and has an account on the group's authoritative target; the
// password keeps every rule of the group (forbidden words rendered from
// the person's own attributes) and of each member target. The endpoint
// answers it at once; the run asks it again (CheckSyncedPassword). The
// error is for a directory that cannot answer, never for a refusal.
func (a *Activities) CheckPasswordChange(ctx context.Context, group, employeeID string, pw secret.Secret) (PasswordCheck, error) {
	g, ok := a.group(group)
	if !ok {
		return refuse(RefusedUnknownGroup, "no password sync group %q in the policy", group), nil
	}
	if probs := policy.PasswordGroupProblems(a.cfg.Policy, g); len(probs) > 0 {
		return refuse(RefusedGroupInvalid, "password sync group %q cannot work: %s", group, probs[0]), nil
	}
	rec, verdict, err := a.passwordPerson(ctx, g, employeeID)
	if err != nil || !verdict.OK {
		return verdict, err
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
	fails := policy.CheckSyncedPassword(a.cfg.Policy, g, pw.Reveal(), words)
	if len(fails) == 0 {
		return PasswordCheck{OK: true}, nil
	}
	for i := range fails {
		fails[i].Message = redact(fails[i].Message, pw)
	}
	return PasswordCheck{Refusal: RefusedRules, Rule: fails[0].Rule, Message: fails[0].Message, Failures: fails}, nil
}

func (a *Activities) password(h secret.Handle) (secret.Secret, error) {
	pw, err := a.cfg.Vault.Get(h)
	if err != nil {
		return pw, permanent(ErrTypePasswordLost, errors.New("the new password is no longer held by this worker; ask the user to enter it again"))
	}
	return pw, nil
}

// CheckSyncedPassword is CheckPasswordChange in the run, with the
// password from the vault. It changes nothing.
func (a *Activities) CheckSyncedPassword(ctx context.Context, req PasswordSyncRequest) (PasswordCheck, error) {
	pw, err := a.password(req.Handle)
	if err != nil {
		return PasswordCheck{}, err
	}
	return a.CheckPasswordChange(ctx, req.Group, req.EmployeeID, pw)
}

// TargetAccounts are a user's accounts on one target.
type TargetAccounts struct {
	Target string   `json:"target"`
	IDs    []string `json:"ids,omitempty"`
}

// PasswordAccounts are the person's linked accounts on every target of
// the group, the auth target first, read again from the identity (a
// termination since the check refuses the change). A target the person
// has no account on has no IDs; no account is looked up by name, which
// could find someone else's.
func (a *Activities) PasswordAccounts(ctx context.Context, req PasswordSyncRequest) ([]TargetAccounts, error) {
	g, ok := a.group(req.Group)
	if !ok {
		return nil, permanent(ErrTypePasswordRefused, fmt.Errorf("no password sync group %q", req.Group))
	}
	rec, verdict, err := a.passwordPerson(ctx, g, req.EmployeeID)
	if err != nil {
		return nil, err
	}
	if !verdict.OK {
		return nil, permanent(ErrTypePasswordRefused, errors.New(verdict.Message))
	}
	var out []TargetAccounts
	for _, target := range g.GroupTargets() {
		ta := TargetAccounts{Target: target}
		if id := rec.Accounts[target]; id != "" {
			ta.IDs = []string{id}
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

// SetSyncedPassword sets the password on one account after reading it
// back: a disabled account is left alone (ErrTypeAccountDisabled), since a
// new password must not wait on an account someone turned off. Errors are
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
	rd, ok := c.(connectors.AccountReader)
	if !ok {
		return unsupported(in.Target, "read an account's state before setting its password")
	}
	pw, err := a.password(in.Handle)
	if err != nil {
		return err
	}
	acct, err := rd.ReadAccount(ctx, in.AccountID)
	if errors.Is(err, connectors.ErrNotFound) {
		return permanent(ErrTypeNotFound, fmt.Errorf("%s: account %s not found", in.Target, in.AccountID))
	}
	if err != nil {
		return toTemporal(fmt.Errorf("%s: read account %s: %w", in.Target, in.AccountID, err))
	}
	if !acct.Active {
		return permanent(ErrTypeAccountDisabled, fmt.Errorf("%s: account %s is disabled (%s): password left unchanged", in.Target, in.AccountID, acct.Status))
	}
	if err := ps.SetPassword(ctx, in.AccountID, pw); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return permanent(ErrTypeNotFound, fmt.Errorf("%s: account %s not found", in.Target, in.AccountID))
		}
		return toTemporal(fmt.Errorf("%s: set password: %w", in.Target, err), pw)
	}
	return nil
}
