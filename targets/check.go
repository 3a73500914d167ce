package targets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/ldap"
	"github.com/jml-dev/jml/policy"
)

// Report is what `starter targets check` found for one target.
type Report struct {
	Target       string                  `json:"target"`
	Type         string                  `json:"type"`
	Capabilities []connectors.Capability `json:"capabilities,omitempty"`
	// Missing are the policy's steps that need a capability the target
	// lacks: they would fail at run time.
	Missing []Need `json:"missing,omitempty"`
	Error   string `json:"error,omitempty"` // the target could not be built or probed
}

// Need is a step of the policy and a capability it relies on.
type Need struct {
	Step       string `json:"step"` // joiner.okta.sync_identity
	Capability string `json:"capability"`
	Detail     string `json:"detail,omitempty"`
}

// Check probes every account target of p (read-only unless write) and
// matches what it found against what the policy's steps need.
func Check(ctx context.Context, p *policy.Policy, o Options, write bool) []Report {
	needs := Needs(p)
	var out []Report
	for _, name := range slices.Sorted(maps.Keys(p.Targets)) {
		t := p.Targets[name]
		d, ok := policy.Describe(t.Type)
		if !ok || d.Build == nil {
			continue // rest and smtp: no accounts to probe
		}
		r := Report{Target: name, Type: t.Type}
		c, err := BuildOne(ctx, name, t, o)
		if err == nil {
			r.Capabilities, err = Probe(ctx, c, d, write)
		}
		if err != nil {
			r.Error = err.Error()
			for _, n := range needs[name] {
				r.Missing = append(r.Missing, Need{Step: n.Step, Capability: n.Capability, Detail: "target unreachable"})
			}
			out = append(out, r)
			continue
		}
		for _, n := range needs[name] {
			i := slices.IndexFunc(r.Capabilities, func(c connectors.Capability) bool { return c.Name == n.Capability })
			if i >= 0 && r.Capabilities[i].Status == connectors.CapUnsupported {
				n.Detail = r.Capabilities[i].Detail
				r.Missing = append(r.Missing, n)
			}
		}
		r.Missing = append(r.Missing, unsupported(c, p, name)...)
		r.Missing = append(r.Missing, unmapped(ctx, c, p, name)...)
		out = append(out, r)
	}
	return out
}

// unsupported lists the steps on target whose action calls what its
// connector does not implement (activities.Action.Supports).
func unsupported(c any, p *policy.Policy, target string) []Need {
	var out []Need
	for _, f := range p.Flows() {
		for _, s := range f.Flow.Steps {
			if a := activities.StepActionOf(s); a != nil && policy.StepTarget(s) == target && !a.Supports(c) {
				out = append(out, Need{Step: f.Name + "." + policy.StepName(s), Capability: a.Name(),
					Detail: fmt.Sprintf("the connector cannot run %s", a.Name())})
			}
		}
	}
	return out
}

// attributeValidator is a connector that checks attribute names against
// the target's own schema (SCIM /Schemas) before any event runs.
type attributeValidator interface {
	ValidateAttributes(ctx context.Context, names ...string) error
}

// unmapped lists the sync steps on target whose attributes the target's
// schema does not have, which would fail at run time (ScimMapping).
func unmapped(ctx context.Context, c any, p *policy.Policy, target string) []Need {
	v, ok := c.(attributeValidator)
	if !ok {
		return nil
	}
	var out []Need
	for _, f := range p.Flows() {
		for _, s := range f.Flow.Steps {
			if s.SyncIdentity == nil || s.SyncIdentity.Target != target {
				continue
			}
			if err := v.ValidateAttributes(ctx, slices.Sorted(maps.Keys(s.SyncIdentity.Attributes))...); err != nil {
				out = append(out, Need{Step: f.Name + "." + policy.StepName(s), Capability: "schemas", Detail: err.Error()})
			}
		}
	}
	return out
}

// Probe asks a connector that probes itself (connectors.Prober); any other
// is probed through its capability interfaces: a lookup of an account and
// of a group that do not exist, and a one-account page.
func Probe(ctx context.Context, c any, d *connectors.Description, write bool) ([]connectors.Capability, error) {
	if p, ok := c.(connectors.Prober); ok {
		return p.Probe(ctx, write)
	}
	var out []connectors.Capability
	probe := func(name string, err error, ok string) error {
		switch {
		case err == nil || errors.Is(err, connectors.ErrNotFound):
			out = append(out, connectors.Capability{Name: name, Status: connectors.CapWorks, Detail: ok})
		case connectors.IsPermanent(err):
			out = append(out, connectors.Capability{Name: name, Status: connectors.CapUnsupported, Detail: err.Error()})
		default:
			return fmt.Errorf("%s: %w", name, err) // unreachable, not a missing capability
		}
		return nil
	}
	const absent = "jml-probe-absent@probe.invalid"
	if s, ok := c.(connectors.AccountSyncer); ok {
		_, err := s.FindAccount(ctx, connectors.Key{Attribute: d.UniqueIdentifier, Value: absent})
		if err := probe(connectors.CapLookup, err, "find by "+d.UniqueIdentifier); err != nil {
			return nil, err
		}
	}
	if g, ok := c.(connectors.GroupFinder); ok {
		_, err := g.FindGroup(ctx, "jml-probe-absent")
		if err := probe(connectors.CapGroups, err, "find a group by name"); err != nil {
			return nil, err
		}
	}
	if l, ok := c.(connectors.AccountLister); ok {
		_, _, err := l.ListAccounts(ctx, "", 1)
		if err := probe(connectors.CapList, err, "read accounts in pages"); err != nil {
			return nil, err
		}
	}
	writes := []string{connectors.CapCreate, connectors.CapUpdate, connectors.CapDelete}
	if write && d.Type == "okta" { // entra user names must be in a verified domain jml does not know
		out = append(out, writeProbe(ctx, c, d)...)
		writes = nil
	}
	for _, n := range append(writes, connectors.CapMembership) {
		detail := "a write: run with --write-probe"
		if write {
			detail = "no write probe for " + d.Type
		}
		out = append(out, connectors.Capability{Name: n, Status: connectors.CapUntested, Detail: detail})
	}
	return out, nil
}

// writeProbe creates a clearly named user (jml-probe-…) with the catalog's
// required attributes, changes it and deletes it.
func writeProbe(ctx context.Context, c any, d *connectors.Description) (out []connectors.Capability) {
	res := func(name string, err error, ok string) {
		if err != nil {
			out = append(out, connectors.Capability{Name: name, Status: connectors.CapUnsupported, Detail: err.Error()})
			return
		}
		out = append(out, connectors.Capability{Name: name, Status: connectors.CapWorks, Detail: ok})
	}
	s, ok := c.(connectors.AccountSyncer)
	del, okd := c.(connectors.Deleter)
	if !ok || !okd {
		return nil
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	login := "jml-probe-" + hex.EncodeToString(b[:]) + "@example.com"
	attrs := connectors.Attributes{}
	for _, r := range d.Required() {
		attrs[r] = login
	}
	attrs["first_name"], attrs["last_name"] = "jml", "probe (safe to delete)"
	acct, err := s.CreateAccount(ctx, attrs, connectors.CreateOptions{Activate: false})
	res(connectors.CapCreate, err, "created and deleted user "+login)
	if err != nil {
		return out
	}
	res(connectors.CapUpdate, s.UpdateAccount(ctx, acct.ID, connectors.Diff{"last_name": "probe (updated)"}), "changed last_name")
	res(connectors.CapDelete, del.Delete(ctx, acct.ID), "deleted "+login)
	return out
}

// Needs lists, per target, the capabilities the policy's steps rely on.
func Needs(p *policy.Policy) map[string][]Need {
	out := map[string][]Need{}
	add := func(target, step string, caps ...string) {
		for _, c := range caps {
			out[target] = append(out[target], Need{Step: step, Capability: c})
		}
	}
	for _, f := range p.Flows() {
		for _, s := range f.Flow.Steps {
			if a := activities.StepActionOf(s); a != nil {
				add(policy.StepTarget(s), f.Name+"."+policy.StepName(s), a.Needs(s, f.Kind)...)
			}
			// Every step on a directory reads or writes in its containers
			// (a leaver moves the account to disabled_container) and
			// through its schema: one missing fails those steps.
			if typ := p.Targets[policy.StepTarget(s)].Type; typ == ldap.TypeAD || typ == ldap.TypeOpenLDAP {
				add(policy.StepTarget(s), f.Name+"."+policy.StepName(s), ldap.CapContainers, ldap.CapSchema)
			}
		}
	}
	// A mover takes back conditional grants (policy.Revocations): it reads
	// the account's groups and leaves some.
	for name := range p.Targets {
		if slices.ContainsFunc(p.GroupRules(name), func(r policy.GroupRule) bool { return r.When != "" }) {
			add(name, policy.KindMover+"."+policy.RevokeStep(name), connectors.CapMembership, connectors.CapMemberships)
		}
	}
	for _, t := range p.AttributeSync.Targets {
		add(t, "attribute_sync", connectors.CapList)
	}
	return out
}
