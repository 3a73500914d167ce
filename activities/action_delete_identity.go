package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// deleteIdentity is delete_identity (DELETE_IDENTITY), optionally after a
// durable delay.
type deleteIdentity struct{}

func (deleteIdentity) Name() string               { return policy.ActionDeleteIdentity }
func (deleteIdentity) Activity(a *Activities) any { return a.DeleteIdentity }
func (deleteIdentity) Traits() Traits             { return Traits{UsesAccount: true, Unlinks: true} }

func (deleteIdentity) Supports(c any) bool {
	_, ok := c.(connectors.Deleter)
	return ok
}

func (deleteIdentity) Needs(policy.Step, string) []string { return []string{connectors.CapDelete} }

func (deleteIdentity) plan(ps *PlannedStep) error {
	ps.Destructive = true
	d, err := policy.ParseDuration(ps.Spec.DeleteIdentity.After)
	if err != nil {
		return fmt.Errorf("delete_identity.after: %w", err)
	}
	ps.Delay = d
	return nil
}

func (deleteIdentity) sources(*policy.Policy, policy.Step) (string, []string) { return "", nil }
func (deleteIdentity) secret(policy.Step) bool                                { return false }
func (deleteIdentity) does(_ policy.Step, in string) string                   { return "delete account" + in }

func (deleteIdentity) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	eff := Effect{Kind: EffectDelete}
	if after := ps.Step.DeleteIdentity.After; after != "" {
		eff.Note = "after " + after
	}
	return []Effect{eff}, nil
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
	note, err := a.readBack(ctx, c, spec.Target, id, func(got *connectors.Account) string {
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
