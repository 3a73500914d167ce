package activities

import (
	"errors"
	"slices"

	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// Action is one kind of policy step (sync_identity, notify, …). Each is one
// type in its own file (action_<name>.go) holding its execution (the
// activity) and everything known of it before a run, and is listed once in
// actionTable. Whatever depends on the kind of a step asks it: the plan
// (the facts the workflow acts on, the step's summary), the workflow (which
// activity runs it, what it does to the person's account), `targets check`
// (Needs, Supports) and the population dry run (Effects). Its policy fields
// and their validation are the policy's (policy.Step): the policy is
// loaded and checked by processes that run nothing.
type Action interface {
	// Name is the step's key in the policy.
	Name() string
	// Activity is the activity that runs the step, as a method value of a:
	// the workflow passes it with a nil a. Its Temporal name is the
	// method's name, which running histories record: never rename one.
	Activity(a *Activities) any
	// Traits are what the workflow knows of the step's kind.
	Traits() Traits
	// Supports reports whether connector c has the interfaces the step
	// calls (nil for steps that need no connector).
	Supports(c any) bool
	// Needs are the capabilities (connectors.Cap*) the step relies on in
	// its target, in flow, for `targets check`.
	Needs(s policy.Step, flow string) []string
	// Effects are what the step would do for one person, computed without
	// asking any target (the population dry run). A failure for this
	// person is an *EffectError (or the error of Person.Claim); several
	// are joined; effects before a failure are returned with it.
	Effects(pp *Person, ps policy.PlannedStep) ([]Effect, error)

	// plan fills the facts of a planned step (Destructive, Delay,
	// notification subscriptions).
	plan(ps *PlannedStep) error
	// sources are the step's templates (for Uses) and the entity type
	// whose outputs it records ({OktaUser.id}), "" for none.
	sources(p *policy.Policy, s policy.Step) (produces string, srcs []string)
	// secret reports whether the step makes or reads a secret.
	secret(s policy.Step) bool
	// does says what the step does, without its name, with in = " in
	// <target>" ("" without a target).
	does(s policy.Step, in string) string
}

// actionTable lists every action, in the policy's documentation order.
func actionTable() []Action {
	return []Action{syncIdentity{}, manageRelationships{}, deprovisionIdentity{}, deleteIdentity{},
		createEntitlement{}, resetPassword{}, sendRESTRequest{}, notifyAction{}, approvalAction{}}
}

// ActionOf is the action named name (policy.StepAction), nil for none.
func ActionOf(name string) Action {
	i := slices.IndexFunc(actionTable(), func(a Action) bool { return a.Name() == name })
	if i < 0 {
		return nil
	}
	return actionTable()[i]
}

// StepActionOf is the action of a policy step, nil for none.
func StepActionOf(s policy.Step) Action { return ActionOf(policy.StepAction(s)) }

// Traits are what the workflow knows of a kind of step.
type Traits struct {
	// Links: the step creates, adopts or finds the person's account in its
	// target and returns it (StepResult.AccountID, Identifier).
	Links bool
	// UsesAccount: the step acts on the account of its target, which an
	// earlier step of the run may create.
	UsesAccount bool
	// Unlinks: after the step the account is gone.
	Unlinks bool
	// Groups: the step changes group memberships (an abort lists them).
	Groups bool
	// Notification: the step fires on the run's outcomes (On*), not in
	// order, and gets the outcome in its input.
	Notification bool
}

// Traits are the traits of the step's action (none for steps of no
// policy action, such as a pre-hire's enable).
func (s PlannedStep) Traits() Traits {
	if a := ActionOf(s.Action); a != nil {
		return a.Traits()
	}
	return Traits{}
}

// Activity is the activity that runs the step, as a method value of a nil
// *Activities (workflow.ExecuteActivity's argument); nil for none.
func (s PlannedStep) Activity() any {
	a := ActionOf(s.Action)
	if a == nil {
		return nil
	}
	var acts *Activities
	return a.Activity(acts)
}

// Kinds of planned effect, as the population dry run counts them.
const (
	EffectCreate      = "create"
	EffectUpdate      = "update"
	EffectGroupAdd    = "group_add"
	EffectGroupRemove = "group_remove"
	EffectDisable     = "disable"
	EffectDelete      = "delete"
	EffectOther       = "other" // reset_password, send_rest_request, notify, create_entitlement
)

// Effect is one thing a step would do to one person's account.
type Effect struct {
	Kind string
	// Attrs are the rendered attributes of a create, the ones an update
	// writes (value: the new one).
	Attrs map[string]string
	// Synced are the attribute names an update may write (an attribute
	// sync or mover writes only these).
	Synced map[string]bool
	UID    string // the unique identifier attribute of a create
	Group  string
	Note   string
}

// Person is one person's event as the dry run evaluates it.
type Person struct {
	Policy *policy.Policy
	// Kind is the plan's kind (policy.KindJoiner, …).
	Kind  string
	Attrs map[string]string
	// Env renders the person's templates; steps add their outputs to it.
	Env *transform.Env
	// Claim gives the person the unique identifier uid of a sync step in
	// its target, as a run would: it may replace attrs[uid] by a fallback.
	// Its error stops the person's run. Nil: every identifier is free.
	Claim func(a policy.SyncIdentity, uid string, attrs map[string]string) error
}

// EffectError is a step that fails for one person: Attr names what
// failed ("groups", "group_add", …; "" for the step).
type EffectError struct {
	Attr string
	Err  error
}

func (e *EffectError) Error() string { return e.Err.Error() }
func (e *EffectError) Unwrap() error { return e.Err }

// evalFailed joins a failure to errs.
func evalFailed(errs error, attr string, err error) error {
	return errors.Join(errs, &EffectError{Attr: attr, Err: err})
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
