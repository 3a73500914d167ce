package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
)

// wire runs the real connectors of a preview over a targets.Recorder: the
// calls shown are the ones the connector code builds, never a copy.
type wire struct {
	ctx  context.Context
	p    *policy.Policy
	live bool
	// insecure permits plain-http loopback targets (tests' peers).
	insecure bool
	// password stands for a generated password (shown masked).
	password string
	getenv   func(string) string
	rec      *targets.Recorder
	conns    map[string]any
	rest     *rest.Client
}

func newWire(ctx context.Context, p *policy.Policy, live bool) *wire {
	rec := &targets.Recorder{}
	getenv := func(string) string { return "preview" } // no credential is needed: nothing leaves
	if live {
		getenv = os.Getenv
		rec.Live = http.DefaultTransport
	}
	return newWireWith(ctx, p, rec, getenv, !live)
}

// newWireWith is newWire over a given recorder and environment.
func newWireWith(ctx context.Context, p *policy.Policy, rec *targets.Recorder, getenv func(string) string, insecure bool) *wire {
	w := &wire{ctx: ctx, p: p, live: rec.Live != nil, insecure: insecure, conns: map[string]any{}, rec: rec, getenv: getenv, password: secret.Redacted}
	for _, t := range p.Targets {
		if f := t.Auth.TokenField; f != "" {
			w.rec.TokenFields = append(w.rec.TokenFields, f)
		}
	}
	hc := &http.Client{Transport: w.rec}
	w.rest = rest.New(rest.Options{HTTPClient: hc, Getenv: w.getenv, Credentials: p.RESTCredentials(), AllowInsecureLoopback: insecure})
	return w
}

// connector is target's connector, built as the worker builds it.
func (w *wire) connector(target string) (any, error) {
	if c, ok := w.conns[target]; ok {
		return c, nil
	}
	c, err := targets.BuildOne(w.ctx, target, w.p.Targets[target], targets.Options{Getenv: w.getenv,
		HTTPClient: &http.Client{Transport: w.rec}, AllowInsecure: w.insecure})
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}
	w.conns[target] = c
	return c, nil
}

// take returns the calls recorded since the last take.
func (w *wire) take() []previewCall {
	var out []previewCall
	for _, c := range w.rec.Calls() {
		u := c.URL
		if v, err := url.PathUnescape(u); err == nil {
			u = v
		}
		when := c.Answer
		switch c.Answer {
		case "not found":
			when = "answered not found: preview without --live"
		case "blocked":
			when = "a write: not sent"
		}
		out = append(out, previewCall{Method: c.Method, URL: placeholders(u), Body: placeholders(strings.TrimSuffix(c.Body, "\n")), When: when})
	}
	w.rec.Reset()
	return out
}

var previewIDs = regexp.MustCompile(`preview\.([A-Za-z_][A-Za-z0-9_]*)|preview-([0-9]+)`)

// placeholders shows preview IDs as what a run knows them by:
// <OktaUser.id> for an account, <new id 1> for what a write would create.
func placeholders(s string) string {
	return previewIDs.ReplaceAllStringFunc(s, func(m string) string {
		if e, ok := strings.CutPrefix(m, targets.PreviewAccountPrefix); ok {
			return "<" + e + ".id>"
		}
		return "<new id " + strings.TrimPrefix(m, "preview-") + ">"
	})
}

// syncCalls runs a sync step's connector calls as the activity does: find
// by the unique identifier, and create when absent.
func (r *renderer) syncCalls(a policy.SyncIdentity, uid string, attrs map[string]string, groups []string, pw bool) error {
	c, err := r.wire.connector(a.Target)
	if err != nil {
		return err
	}
	s, ok := c.(connectors.AccountSyncer)
	if !ok {
		return fmt.Errorf("target %s cannot sync identities", a.Target)
	}
	ctx := r.wire.ctx
	acct, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: attrs[uid]})
	switch {
	case err == nil:
		r.st.Calls = append(r.st.Calls, r.wire.take()...)
		r.st.Notes = append(r.st.Notes, fmt.Sprintf("found %s %s: a run links it and writes only what differs", uid, acct.Attributes[uid]))
		return nil
	case !errors.Is(err, connectors.ErrNotFound):
		r.st.Calls = append(r.st.Calls, r.wire.take()...)
		return fmt.Errorf("find account: %w", err)
	case !a.CreateAllowed:
		r.st.Calls = append(r.st.Calls, r.wire.take()...)
		r.st.Notes = append(r.st.Notes, "not found and create_allowed is false: the step fails")
		return nil
	}
	opts := connectors.CreateOptions{Activate: true}
	if pw {
		p := secret.New(r.wire.password)
		opts.Password = &p
	}
	for _, g := range groups {
		id := "<group id of " + g + ">"
		if gf, ok := c.(connectors.GroupFinder); ok {
			switch found, err := gf.FindGroup(ctx, g); {
			case err == nil:
				id = found.ID
			case errors.Is(err, connectors.ErrNotFound) && r.wire.live:
				r.st.Calls = append(r.st.Calls, r.wire.take()...)
				return fmt.Errorf("group %q does not exist at the target: a run fails with GroupNotFound", g)
			case errors.Is(err, connectors.ErrNotFound):
				r.st.Notes = appendOnce(r.st.Notes, "group lookups answered not found (no --live): the group IDs are placeholders; a run fails on a group that does not exist")
			default:
				r.st.Calls = append(r.st.Calls, r.wire.take()...)
				return fmt.Errorf("group %s: %w", g, err)
			}
		}
		opts.GroupIDs = append(opts.GroupIDs, id)
	}
	if _, err := s.CreateAccount(ctx, connectors.Attributes(attrs), opts); err != nil {
		r.st.Calls = append(r.st.Calls, r.wire.take()...)
		return fmt.Errorf("create account: %w", err)
	}
	r.st.Calls = append(r.st.Calls, r.wire.take()...)
	return nil
}

// restCalls sends a REST step through the REST connector over the recorder.
func (r *renderer) restCalls(a policy.RESTRequest, when string) error {
	req := rest.Request{Spec: a.RESTSpec(), Templates: r.env}
	if a.Target != "" {
		req.Target = r.p.Targets[a.Target].RESTTarget()
	}
	_, err := r.wire.rest.Send(r.wire.ctx, req)
	calls := r.wire.take()
	if len(calls) > 0 && when != "" {
		calls[len(calls)-1].When += "; " + when
	}
	r.st.Calls = append(r.st.Calls, calls...)
	if err != nil && len(calls) > 0 && !r.wire.live {
		return nil // sent: the synthetic answer may not satisfy success_codes or extract
	}
	return err
}

// accountID is the placeholder account ID of a target's account in a
// preview; the recorder answers reads of it as an active account.
func accountID(entity string) string { return targets.PreviewAccountPrefix + entity }

// accountCalls runs f against target's connector with the placeholder ID of
// the account an earlier step (or the identity's link) provides.
func (r *renderer) accountCalls(target string, f func(ctx context.Context, c any, id string) error) error {
	c, err := r.wire.connector(target)
	if err != nil {
		return err
	}
	err = f(r.wire.ctx, c, accountID(r.p.EntityType(target)))
	r.st.Calls = append(r.st.Calls, r.wire.take()...)
	return err
}

// relationshipCalls resolves group names and adds or removes the account,
// as the activity does.
func (r *renderer) relationshipCalls(a policy.ManageRelationships, add, remove []string) error {
	return r.accountCalls(a.Target, func(ctx context.Context, c any, id string) error {
		rm, ok := c.(connectors.RelationshipManager)
		if !ok {
			return fmt.Errorf("target %s cannot manage group memberships", a.Target)
		}
		groupID := func(name string, create bool) (string, error) {
			if ec, ok := c.(connectors.EntitlementCreator); ok && create {
				g, err := ec.EnsureGroup(ctx, connectors.Group{Name: name})
				if err != nil {
					return "", err
				}
				return g.ID, nil
			}
			if gf, ok := c.(connectors.GroupFinder); ok {
				g, err := gf.FindGroup(ctx, name)
				switch {
				case errors.Is(err, connectors.ErrNotFound) && r.wire.live:
					// The target answered: the run would stop here.
					return "", fmt.Errorf("group %q does not exist at the target and create_missing is not set: a run fails with GroupNotFound", name)
				case errors.Is(err, connectors.ErrNotFound):
					r.st.Notes = appendOnce(r.st.Notes, "group lookups answered not found (no --live): the group IDs are placeholders; a run fails on a group that does not exist unless create_missing is set")
					return "<group id of " + name + ">", nil
				case err != nil:
					return "", err
				}
				return g.ID, nil
			}
			return name, nil
		}
		for _, g := range add {
			gid, err := groupID(g, a.CreateMissing)
			if err != nil {
				return fmt.Errorf("group %s: %w", g, err)
			}
			if err := rm.AddMember(ctx, gid, id); err != nil {
				return fmt.Errorf("add to %s: %w", g, err)
			}
		}
		if a.RemoveAll {
			gs, err := rm.Memberships(ctx, id)
			if err != nil {
				return fmt.Errorf("memberships: %w", err)
			}
			for _, g := range gs {
				remove = append(remove, g.Name)
			}
		}
		for _, g := range remove {
			gid, err := groupID(g, false)
			if err != nil {
				return fmt.Errorf("group %s: %w", g, err)
			}
			if err := rm.RemoveMember(ctx, gid, id); err != nil {
				return fmt.Errorf("remove from %s: %w", g, err)
			}
		}
		return nil
	})
}

func appendOnce(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
