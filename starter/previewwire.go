package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
)

// Verdicts of a previewed step, from the real activity's outcome.
const (
	verdictCreate     = "would create"
	verdictLink       = "would link"
	verdictRun        = "would run"
	verdictConflict   = "conflict"
	verdictFail       = "would fail"
	verdictNotReached = "not reached"
	verdictNotSent    = "not sent"
)

// previewer is a run that does not write: the worker's activities, with the
// connectors built as the worker builds them but over a targets.Recorder,
// called in plan order with each step's outputs threaded as the lifecycle
// workflow threads them. Nothing here knows what a step means.
type previewer struct {
	p     *policy.Policy
	rec   *targets.Recorder
	vault *secret.Vault
	acts  *activities.Activities
}

// previewOptions configure a previewer; tests set Rand to share a password
// generator with the run they compare against.
type previewOptions struct {
	getenv   func(string) string
	insecure bool // plain-http loopback targets (tests' peers)
	rand     io.Reader
	// dir is where a run finds other people's links (a manager's
	// account); nil: an offline preview assumes every person a reference
	// names is linked (assumedPeople).
	dir activities.Directory
}

func newPreviewer(ctx context.Context, p *policy.Policy, rec *targets.Recorder, o previewOptions) (*previewer, error) {
	for _, t := range p.Targets {
		if f := t.Auth.TokenField; f != "" {
			rec.TokenFields = append(rec.TokenFields, f)
		}
	}
	hc := &http.Client{Transport: rec}
	conns, err := targets.Build(ctx, p, targets.Options{Getenv: o.getenv, HTTPClient: hc, AllowInsecure: o.insecure, Operations: rec})
	if err != nil {
		return nil, err
	}
	vault := secret.NewVault(time.Hour)
	if o.dir == nil {
		o.dir = assumedPeople{p}
	}
	acts := activities.New(activities.Config{Policy: p, Targets: conns, Vault: vault, HTTPClient: hc,
		Getenv: o.getenv, AllowInsecureLoopback: o.insecure, Rand: o.rand, Directory: o.dir})
	return &previewer{p: p, rec: rec, vault: vault, acts: acts}, nil
}

// previewGetenv is the environment of a preview without --live: the real
// one where set (a url_env), else a stand-in credential, which never
// leaves: the recorder answers every request.
func previewGetenv(getenv func(string) string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return "preview"
	}
}

// known is what jml stores about a person (the identity workflow's record),
// what a run starts from; the zero value is a person jml does not know.
type known struct {
	activities.IdentityRecord
	found bool
}

// kindOf is the run an event starts for a person in status (as the identity
// workflow decides it).
func kindOf(ev hr.Event, status string) (kind string, rehire bool) {
	switch ev.Type {
	case hr.Change:
		return policy.KindMover, false
	case hr.Terminate:
		return policy.KindLeaver, false
	}
	return policy.KindJoiner, ev.Type == hr.Rehire || status == contract.StatusDeprovisioned
}

// run previews ev for the person st describes: the Plan activity, then
// every step's activity as the run calls it.
func (pv *previewer) run(ctx context.Context, ev hr.Event, st known) (*previewResult, error) {
	kind, rehire := kindOf(ev, st.Status)
	var previous map[string]string
	if kind == policy.KindMover && st.found {
		previous = st.Attributes
	}
	plan, err := pv.p.Plan(ev, previous)
	if err != nil {
		return nil, err
	}
	res := &previewResult{EventID: ev.EventID, EventType: ev.Type, EmployeeID: plan.EmployeeID,
		Workflow: workflowName(kind), WorkflowID: contract.LifecycleWorkflowID(kind, plan.EmployeeID, ev.EventID),
		Flow: plan.Flow, Scope: plan.Scope, Scopes: plan.Scopes, Effective: plan.EffectiveAt, RunAt: plan.RunAt, Known: st.found}
	attrs := maps.Clone(st.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, ev.Employee)
	ctx = activities.Preview(ctx)
	steps, err := pv.acts.Plan(ctx, activities.PlanInput{Kind: kind, Rehire: rehire, EventID: ev.EventID, Attributes: attrs,
		OldAttributes: previous})
	if err != nil {
		return nil, err
	}
	sched, err := pv.acts.Schedule(ctx, activities.ScheduleInput{Kind: kind, EffectiveAt: ev.EffectiveAt, Attributes: attrs,
		OldAttributes: previous})
	if err != nil {
		return nil, err
	}
	in := activities.StepInput{
		Owner: res.WorkflowID, Kind: kind, Attributes: attrs,
		Outputs: map[string]map[string]string{}, Secrets: map[string]activities.SecretRef{},
		Accounts: maps.Clone(st.Accounts), Identifiers: maps.Clone(st.Identifiers),
		Inactive:   !sched.EnableAt.IsZero() && sched.EnableAt.After(plan.RunAt),
		Reactivate: kind == policy.KindJoiner,
	}
	if in.Accounts == nil {
		in.Accounts = map[string]string{}
	}
	if in.Identifiers == nil {
		in.Identifiers = map[string]string{}
	}
	if kind == policy.KindMover && st.found {
		in.OldAttributes = st.Attributes
	}
	stopped := ""
	for _, ps := range steps.Steps {
		if ps.Action == policy.ActionNotify && !ps.OnCompleted {
			continue // fires only when a run waits or stops
		}
		s := previewStep{Name: ps.Name, Action: ps.Action, Target: ps.Target, When: ps.Spec.When,
			Skip: ps.SkipReason != "", SkipReason: ps.SkipReason, Revokes: ps.Revokes}
		switch {
		case s.Skip:
		case stopped != "":
			s.Verdict = verdictNotReached
			s.Notes = append(s.Notes, "the run waits for an operator at "+stopped)
		case ps.Action == policy.ActionNotify && pv.p.NotifyChannel(*ps.Spec.Notify) == policy.ChannelEmail:
			// SMTP does not go through the recorder: nothing is sent.
			s.Verdict = verdictNotSent
			s.Notes = append(s.Notes, "an e-mail: a run sends it through "+ps.Target+"; a preview sends no mail")
		default:
			in.Step = ps
			out, err := pv.step(ctx, in)
			s.Calls = pv.take()
			s.Verdict, s.Note = verdict(ps, out, err)
			if err != nil {
				s.Error, stopped = errorText(err), ps.Name
				break
			}
			thread(&in, ps, out)
			s.Outputs = out.Outputs
		}
		res.Steps = append(res.Steps, s)
	}
	res.secrets = in.Secrets
	return res, nil
}

// step calls the step's activity from the action table, as the lifecycle
// workflow does.
func (pv *previewer) step(ctx context.Context, in activities.StepInput) (activities.StepResult, error) {
	act := activities.ActionOf(in.Step.Action)
	if act == nil {
		return activities.StepResult{}, fmt.Errorf("unknown action %q", in.Step.Action)
	}
	f, ok := act.Activity(pv.acts).(func(context.Context, activities.StepInput) (activities.StepResult, error))
	if !ok {
		return activities.StepResult{}, fmt.Errorf("action %q: not a step activity", in.Step.Action)
	}
	return f(ctx, in)
}

// thread carries a step's result into the next steps' input, as the
// lifecycle workflow records it.
func thread(in *activities.StepInput, ps activities.PlannedStep, res activities.StepResult) {
	if res.EntityType != "" && len(res.Outputs) > 0 {
		if in.Outputs[res.EntityType] == nil {
			in.Outputs[res.EntityType] = map[string]string{}
		}
		maps.Copy(in.Outputs[res.EntityType], res.Outputs)
	}
	maps.Copy(in.Secrets, res.Secrets)
	switch ps.Action {
	case policy.ActionSyncIdentity:
		if res.AccountID != "" {
			in.Accounts[ps.Target] = res.AccountID
			if res.Identifier != "" {
				in.Identifiers[ps.Target] = res.Identifier
			}
		}
	case policy.ActionDeleteIdentity:
		delete(in.Accounts, ps.Target)
		delete(in.Identifiers, ps.Target)
	}
}

// verdict is what the run would do, read from the activity's outcome.
func verdict(ps activities.PlannedStep, res activities.StepResult, err error) (string, string) {
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &app) && app.Type() == activities.ErrTypeConflict:
		return verdictConflict, ""
	case err != nil:
		return verdictFail, ""
	case res.Correlation == activities.Created:
		return verdictCreate, res.Note
	case res.Correlation != "":
		return verdictLink, res.Correlation + ": " + res.Note
	}
	return verdictRun, res.Note
}

// errorText is an activity error as the step table shows it.
func errorText(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type() + ": " + app.Message()
	}
	return err.Error()
}

// take returns the calls recorded since the last take.
func (pv *previewer) take() []previewCall {
	var out []previewCall
	for _, c := range pv.rec.Calls() {
		out = append(out, previewCall{Method: c.Method, URL: c.URL, Body: strings.TrimSuffix(c.Body, "\n"), When: c.Answer})
	}
	pv.rec.Reset()
	return out
}

// redact masks the run's secrets (generated and temporary passwords) in
// the recorded bodies, raw and JSON-escaped.
func (pv *previewer) redact(res *previewResult) {
	var olds []string
	for _, r := range res.secrets {
		s, err := pv.vault.Get(r.Handle)
		if err != nil || s.Empty() {
			continue
		}
		v := s.Reveal()
		q := strconv.Quote(v)
		olds = append(olds, v, q[1:len(q)-1], url.QueryEscape(v))
	}
	pv.vault.DeleteOwner(res.WorkflowID)
	if len(olds) == 0 {
		return
	}
	var pairs []string
	for _, o := range olds {
		pairs = append(pairs, o, secret.Redacted)
	}
	r := strings.NewReplacer(pairs...)
	for i := range res.Steps {
		for j := range res.Steps[i].Calls {
			c := &res.Steps[i].Calls[j]
			c.Body, c.URL = r.Replace(c.Body), r.Replace(c.URL)
		}
	}
}

var (
	previewIDs = regexp.MustCompile(`preview-([0-9]+)`)
	linkedIDs  = regexp.MustCompile(regexp.QuoteMeta(targets.PreviewAccountPrefix) + `([A-Za-z_][A-Za-z0-9_]*)`)
)

// shown is a recorded call as printed: the URL unescaped, the IDs the
// recorder gave unsent writes as <new id N>, the answer in words.
func shown(c previewCall) previewCall {
	if v, err := url.PathUnescape(c.URL); err == nil {
		c.URL = v
	}
	c.URL, c.Body = shownIDs(c.URL), shownIDs(c.Body)
	switch c.When {
	case "not found":
		c.When = "answered not found: preview without --live"
	case "blocked":
		c.When = "a write: not sent"
	}
	return c
}

// shownIDs names the IDs of a preview as a run knows them: <new id N>
// for what an unsent write would create, <OktaUser.id> for a stand-in link.
func shownIDs(s string) string {
	s = previewIDs.ReplaceAllString(s, "<new id $1>")
	return linkedIDs.ReplaceAllString(s, "<$1.id>")
}

// storedState reads what jml stores about a person from the identity
// workflow's record (the memo the attribute sync reads): links, the
// identifiers chosen at creation and the attributes last applied.
func storedState(ctx context.Context, dir activities.Directory, employeeID string) (known, error) {
	rec, err := dir.Identity(ctx, employeeID)
	if errors.Is(err, connectors.ErrNotFound) {
		return known{}, nil
	}
	if err != nil {
		return known{}, err
	}
	return known{IdentityRecord: rec, found: true}, nil
}

// assumedPeople is the directory of an offline preview: a person a
// reference names (a manager's employee ID; a value with an @ is a user
// name, not a person) is taken to be linked to one account in every
// account target, shown as <Person_E0007.id>, as a run that finds the
// manager's link sends that account's ID.
type assumedPeople struct{ p *policy.Policy }

func (assumedPeople) ListIdentities(context.Context, []byte, int) ([]activities.IdentityRecord, []byte, error) {
	return nil, nil, nil
}

func (d assumedPeople) Identity(_ context.Context, employeeID string) (activities.IdentityRecord, error) {
	if strings.Contains(employeeID, "@") || !previewName.MatchString(employeeID) {
		return activities.IdentityRecord{}, fmt.Errorf("identity %s: %w", employeeID, connectors.ErrNotFound)
	}
	rec := activities.IdentityRecord{EmployeeID: employeeID, Accounts: map[string]string{}}
	for name, t := range d.p.Targets {
		if dd, ok := policy.Describe(t.Type); ok && dd.Build != nil {
			rec.Accounts[name] = targets.PreviewAccountPrefix + "Person_" + employeeID
		}
	}
	return rec, nil
}

var previewName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// assumeLinked is the stand-in for a person an offline preview of a mover
// or leaver acts on: linked to one account in every account target, which
// the recorder reads as active and in no group.
func assumeLinked(p *policy.Policy) known {
	st := known{IdentityRecord: activities.IdentityRecord{Accounts: map[string]string{}}}
	for name, t := range p.Targets {
		if d, ok := policy.Describe(t.Type); ok && d.Build != nil {
			st.Accounts[name] = targets.PreviewAccountPrefix + p.EntityType(name)
		}
	}
	return st
}
