package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// resetPassword is reset_password (RESET_PASSWORD): a temporary password,
// into the vault.
type resetPassword struct{}

func (resetPassword) Name() string               { return policy.ActionResetPassword }
func (resetPassword) Activity(a *Activities) any { return a.ResetPassword }
func (resetPassword) Traits() Traits             { return Traits{UsesAccount: true} }

func (resetPassword) Supports(c any) bool {
	_, ok := c.(connectors.PasswordResetter)
	return ok
}

func (resetPassword) Needs(policy.Step, string) []string { return nil }
func (resetPassword) plan(*PlannedStep) error            { return nil }

func (resetPassword) sources(p *policy.Policy, s policy.Step) (string, []string) {
	return p.EntityType(s.ResetPassword.Target), nil
}

func (resetPassword) secret(policy.Step) bool              { return true }
func (resetPassword) does(_ policy.Step, in string) string { return "reset password" + in }

func (resetPassword) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	return []Effect{{Kind: EffectOther, Note: ps.Action}}, nil
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
