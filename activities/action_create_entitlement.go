package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// createEntitlement is create_entitlement (CREATE_ENTITLEMENT): a group
// that exists.
type createEntitlement struct{}

func (createEntitlement) Name() string               { return policy.ActionCreateEntitlement }
func (createEntitlement) Activity(a *Activities) any { return a.CreateEntitlement }
func (createEntitlement) Traits() Traits             { return Traits{} }

func (createEntitlement) Supports(c any) bool {
	_, ok := c.(connectors.EntitlementCreator)
	return ok
}

func (createEntitlement) Needs(policy.Step, string) []string { return []string{connectors.CapGroups} }
func (createEntitlement) plan(*PlannedStep) error            { return nil }

func (createEntitlement) sources(_ *policy.Policy, s policy.Step) (string, []string) {
	return "", []string{s.CreateEntitlement.Name, s.CreateEntitlement.Description}
}

func (createEntitlement) secret(policy.Step) bool              { return false }
func (createEntitlement) does(_ policy.Step, in string) string { return "create group" + in }

func (createEntitlement) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	return []Effect{{Kind: EffectOther, Note: ps.Action}}, nil
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
	desc, err := render(spec.Description, env)
	if err != nil {
		return StepResult{}, permanent("PolicyInvalid", fmt.Errorf("create_entitlement.description: %v", err))
	}
	g, err := ec.EnsureGroup(ctx, connectors.Group{Name: name, Description: desc})
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: ensure group: %w", spec.Target, err))
	}
	return StepResult{Outputs: map[string]string{"group_id": g.ID}, Note: "group ensured"}, nil
}
