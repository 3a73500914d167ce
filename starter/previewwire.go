package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
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
	ctx    context.Context
	p      *policy.Policy
	live   bool
	getenv func(string) string
	rec    *targets.Recorder
	conns  map[string]any
	rest   *rest.Client
}

func newWire(ctx context.Context, p *policy.Policy, live bool) *wire {
	w := &wire{ctx: ctx, p: p, live: live, conns: map[string]any{}, rec: &targets.Recorder{}}
	w.getenv = func(string) string { return "preview" } // no credential is needed: nothing leaves
	if live {
		w.getenv = os.Getenv
		w.rec.Live = http.DefaultTransport
	}
	for _, t := range p.Targets {
		if f := t.Auth.TokenField; f != "" {
			w.rec.TokenFields = append(w.rec.TokenFields, f)
		}
	}
	hc := &http.Client{Transport: w.rec}
	w.rest = rest.New(rest.Options{HTTPClient: hc, Getenv: w.getenv, Credentials: p.RESTCredentials(), AllowInsecureLoopback: true})
	return w
}

// connector is target's connector, built as the worker builds it.
func (w *wire) connector(target string) (any, error) {
	if c, ok := w.conns[target]; ok {
		return c, nil
	}
	c, err := targets.BuildOne(w.ctx, target, w.p.Targets[target], targets.Options{Getenv: w.getenv,
		HTTPClient: &http.Client{Transport: w.rec}, AllowInsecure: !w.live})
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
		out = append(out, previewCall{Method: c.Method, URL: u, Body: strings.TrimSuffix(c.Body, "\n"), When: when})
	}
	w.rec.Reset()
	return out
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
		p := secret.New(secret.Redacted)
		opts.Password = &p
	}
	for _, g := range groups {
		opts.GroupIDs = append(opts.GroupIDs, "<group id of "+g+">")
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
