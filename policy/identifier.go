package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jml-dev/jml/transform"
)

// IdentifierError is a sync step's unique identifier rendering to a value
// no account can have (Policy.CheckIdentifier): empty before @ (a name
// ASCII empties), white space, quotes, over 64 octets before @, a bad
// domain, or beyond the target's own limits. It names the person and the
// attribute, never a secret.
type IdentifierError struct {
	EmployeeID string
	Target     string
	Attribute  string
	Value      string
	Reason     error
}

func (e *IdentifierError) Error() string {
	return fmt.Sprintf("employee %s: %s: unique identifier %s renders %q: %v "+
		"(give the step a fallback for %s, e.g. 'e{employee_id}@…'; see docs/policy.md)",
		e.EmployeeID, e.Target, e.Attribute, e.Value, e.Reason, e.Attribute)
}

func (e *IdentifierError) Unwrap() error { return e.Reason }

// RenderIdentity is RenderAttributes for a step that creates or finds an
// account: when the unique identifier's template renders a value no
// account can have, the step's fallbacks for it are tried in order (the
// first valid one is used, before any $target attribute reads it); when
// none gives one the error is an *IdentifierError.
func RenderIdentity(p *Policy, step SyncIdentity, env *transform.Env) (map[string]string, error) {
	return renderAttributes(p, step, env, p.UniqueIdentifier(step), nil)
}

// RenderPinned is RenderAttributes with the unique identifier fixed to v,
// the one the step settled on (a fallback, or the linked account's own):
// every attribute that reads {$target.<uid>} renders from v, not from the
// first choice.
func RenderPinned(p *Policy, step SyncIdentity, env *transform.Env, v string) (map[string]string, error) {
	return renderAttributes(p, step, env, "", map[string]string{p.UniqueIdentifier(step): v})
}

// CheckIdentifier is the one identifier rule: why v cannot be the value of
// attribute attr of an account in target (the rule every target shares,
// transform.CheckIdentifier, then the target's own limits from its
// connector's description); nil when it can. The run, the preview and the
// population dry run reach it through RenderIdentity and IdentifierRule.
func (p *Policy) CheckIdentifier(target, attr, v string) error {
	if err := transform.CheckIdentifier(v); err != nil {
		return err
	}
	if d, ok := Describe(p.Targets[target].Type); ok {
		return d.CheckIdentifier(attr, v)
	}
	return nil
}

// IdentifierRule is CheckIdentifier for the unique identifier of step, as
// transform.EvalUnique takes it.
func (p *Policy) IdentifierRule(step SyncIdentity) func(string) error {
	uid := p.UniqueIdentifier(step)
	return func(v string) error { return p.CheckIdentifier(step.Target, uid, v) }
}

// validIdentifier returns v, or the first valid value of the step's
// fallbacks for uid when v is not one.
func validIdentifier(p *Policy, step SyncIdentity, uid, v string, env *transform.Env) (string, error) {
	reason := p.CheckIdentifier(step.Target, uid, v)
	if reason == nil {
		return v, nil
	}
	idErr := &IdentifierError{EmployeeID: env.Attrs["employee_id"], Target: step.Target, Attribute: uid, Value: v, Reason: reason}
	if len(step.Fallbacks[uid]) == 0 {
		return "", idErr
	}
	cands, err := Candidates(p, step, uid)
	if err != nil {
		return "", err
	}
	free := func(context.Context, string) (bool, error) { return false, nil }
	got, err := transform.EvalUnique(context.Background(), cands[1:], env, p.IdentifierRule(step), free)
	if errors.Is(err, transform.ErrNoUniqueValue) {
		return "", idErr
	}
	if err != nil {
		return "", fmt.Errorf("policy: attribute %s: %w", uid, err)
	}
	return got, nil
}
