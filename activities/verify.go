package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"go.temporal.io/sdk/temporal"
)

// ErrTypePostcondition is a step whose write the target does not show when
// read back: the run goes to an operator with what was expected and read.
const ErrTypePostcondition = "PostconditionFailed"

// postcondition is err's application error when it is a failed
// read-back (ErrTypePostcondition).
func postcondition(err error) (*temporal.ApplicationError, bool) {
	var app *temporal.ApplicationError
	return app, errors.As(err, &app) && app.Type() == ErrTypePostcondition
}

// ErrTypeNoPassword: a step would send a password this run never set (the
// account was adopted or linked); it is not sent empty.
const ErrTypeNoPassword = "NoPassword"

// rereads are the pauses before reading back again when the first read
// disagrees: some targets (Entra) are eventually consistent. A read that
// agrees at once costs exactly one request. A target whose description
// bounds its consistency (Description.Consistency) is read again with
// backoff for that long; others for about 2 s.
func (a *Activities) rereads(target string) []time.Duration {
	bound := 2 * time.Second
	if a.cfg.Policy == nil {
		return []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}
	}
	if d, ok := policy.Describe(a.cfg.Policy.Targets[target].Type); ok && d.Consistency > bound {
		bound = d.Consistency
	}
	var out []time.Duration
	var total time.Duration
	for wait := 500 * time.Millisecond; total < bound; wait = min(2*wait, 4*time.Second) {
		wait = min(wait, bound-total)
		out = append(out, wait)
		total += wait
	}
	return out
}

// readBack reads the account by ID and asks check whether it is in the
// intended state (check returns "" when it is, else what it found wrong;
// a nil account means the target says the account is absent). A target
// without AccountReader cannot be verified; the note says so.
func (a *Activities) readBack(ctx context.Context, c any, target, id string, check func(*connectors.Account) string) (note string, err error) {
	r, ok := c.(connectors.AccountReader)
	if !ok {
		return "not verified: the connector cannot read accounts back", nil
	}
	rereads := a.rereads(target)
	for i := 0; ; i++ {
		acct, err := r.ReadAccount(ctx, id)
		if errors.Is(err, connectors.ErrNotFound) {
			acct, err = nil, nil
		}
		if previewing(ctx) {
			check(acct) // (for what it notes of the account, as in a run)
			return "", nil
		}
		if err != nil {
			return "", toTemporal(fmt.Errorf("%s: read back: %w", target, err))
		}
		wrong := check(acct)
		if wrong == "" {
			return "", nil
		}
		if i == len(rereads) {
			return "", permanent(ErrTypePostcondition, fmt.Errorf("%s: account %s read back %s", target, id, wrong))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(rereads[i]):
		}
	}
}

// attrsDiffer lists the written attributes the account shows with another
// value (compared as the attribute sync compares them, AttrEqual). An attribute the target does not return is not compared (targets
// drop what they do not store; the attribute sync's loop guard knows them),
// except the unique identifier, which every target returns.
func attrsDiffer(acct *connectors.Account, want map[string]string, uid string) string {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		got, ok := acct.Attributes[k]
		if (!ok || got == "") && k != uid {
			continue
		}
		if !AttrEqual(k, want[k], got) {
			bad = append(bad, fmt.Sprintf("%s=%q (expected %q)", k, got, want[k]))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "with " + strings.Join(bad, ", ")
}

// wantDisabled is the check of a disable without group removal: the
// account reads back inactive, or the target says it is gone.
func wantDisabled(a *connectors.Account) string {
	if a != nil && a.Active {
		return fmt.Sprintf("active (status %s), expected disabled", a.Status)
	}
	return ""
}

// wantActive is the check of a disable or an enable.
func wantActive(active bool) func(*connectors.Account) string {
	return func(a *connectors.Account) string {
		switch {
		case a == nil:
			return "absent"
		case a.Active != active:
			return fmt.Sprintf("active=%t (status %s), expected active=%t", a.Active, a.Status, active)
		}
		return ""
	}
}
