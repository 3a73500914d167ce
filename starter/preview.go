package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// previewResult is what `starter preview --json` prints.
type previewResult struct {
	Policy     string        `json:"policy"`
	EventID    string        `json:"event_id"`
	EventType  string        `json:"event_type"`
	EmployeeID string        `json:"employee_id"`
	Workflow   string        `json:"workflow"`
	WorkflowID string        `json:"workflow_id"`
	Flow       string        `json:"flow"`
	Effective  time.Time     `json:"effective_at"`
	RunAt      time.Time     `json:"run_at"`
	Steps      []previewStep `json:"steps"`
	// Live: the connectors' reads went to the targets (--live).
	Live bool `json:"live"`
}

type previewStep struct {
	Name       string            `json:"name"`
	Action     string            `json:"action"`
	Target     string            `json:"target,omitempty"`
	Skip       bool              `json:"skip,omitempty"`
	SkipReason string            `json:"skip_reason,omitempty"`
	When       string            `json:"when,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Fallbacks are the values tried in order when an attribute is taken.
	Fallbacks map[string][]string `json:"fallbacks,omitempty"`
	Calls     []previewCall       `json:"calls,omitempty"`
	Outputs   []string            `json:"outputs,omitempty"`
	Notes     []string            `json:"notes,omitempty"`
	Error     string              `json:"error,omitempty"`
}

// previewCall is one request the step's connector would send.
type previewCall struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	Body   string `json:"body,omitempty"`
	When   string `json:"when,omitempty"` // e.g. "if not found"
}

// runPreview evaluates a policy for one HR event and prints the run it
// would start, every step with its attributes and the exact calls, and
// sends nothing. Exit 2 for a bad policy or event, 1 when a step would
// fail to render.
func runPreview(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("preview", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy file (YAML)")
	eventPath := fs.String("event", "", "HR event file (JSON), - for stdin")
	asJSON := fs.Bool("json", false, "print JSON for machines")
	population := fs.String("population", "", "population dry run: evaluate every row of this CSV/JSONL of HR records (instead of --event)")
	against := fs.String("against", "", "with --population: the policy this one replaces; report only what the change alters")
	live := fs.Bool("live", false, "send the connectors' reads (lookups) to the targets, credentials from the environment; writes are never sent")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: starter preview --policy POLICY.yaml --event EVENT.json [--json] [--live]")
		fmt.Fprintln(stderr, "       starter preview --policy POLICY.yaml --population PEOPLE.csv [--against OLD.yaml] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *population != "" || *against != "" {
		return runPopulation(ctx, populationArgs{policy: *policyPath, population: *population, against: *against,
			eventSet: *eventPath != "", json: *asJSON, extra: fs.Args()}, stdout, stderr)
	}
	if *policyPath == "" || *eventPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	p, err := policy.Load(*policyPath)
	if err != nil {
		fmt.Fprintf(stderr, "policy %s is not valid:\n%v\n", *policyPath, err)
		return 2
	}
	ev, probs := readEvent(*eventPath)
	if len(probs) == 0 {
		for _, pr := range p.CheckEvent(ev) {
			probs = append(probs, *eventPath+": "+pr)
		}
	}
	if len(probs) > 0 {
		fmt.Fprintf(stderr, "event %s is not valid:\n%s\n", *eventPath, strings.Join(probs, "\n"))
		return 2
	}
	res, err := preview(p, ev, newWire(ctx, p, *live))
	if err != nil {
		fmt.Fprintf(stderr, "preview: %v\n", err)
		return 2
	}
	res.Policy = *policyPath
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "preview: %v\n", err)
			return 1
		}
	} else {
		printPreview(stdout, res)
	}
	for _, s := range res.Steps {
		if s.Error != "" {
			return 1
		}
	}
	return 0
}

func readEvent(path string) (hr.Event, []string) {
	var ev hr.Event
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return ev, []string{err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return ev, []string{fmt.Sprintf("%s: byte %d: %v", path, syn.Offset, err)}
		}
		return ev, []string{fmt.Sprintf("%s: %v", path, err)}
	}
	return ev, nil
}

// preview plans the event with the same code the workflows use and
// renders every step against placeholders for what only a run knows
// (target IDs, generated passwords).
func preview(p *policy.Policy, ev hr.Event, w *wire) (*previewResult, error) {
	plan, err := p.Plan(ev)
	if err != nil {
		return nil, err
	}
	tables, err := p.Tables()
	if err != nil {
		return nil, err
	}
	res := &previewResult{EventID: ev.EventID, EventType: ev.Type, EmployeeID: plan.EmployeeID,
		Workflow: workflowName(plan.Kind), WorkflowID: contract.LifecycleWorkflowID(plan.Kind, plan.EmployeeID, ev.EventID),
		Flow: plan.Flow, Effective: plan.EffectiveAt, RunAt: plan.RunAt, Live: w.live}
	env := &transform.Env{Attrs: ev.Employee, Lookups: tables, Outputs: map[string]map[string]string{},
		Rand: rand.Reader, Now: plan.RunAt}
	for _, ps := range plan.Steps {
		st := previewStep{Name: ps.Name, Action: ps.Action, Target: ps.Target, Skip: ps.Skip,
			SkipReason: ps.SkipReason, When: ps.Step.When}
		if !ps.Skip {
			r := renderer{p: p, env: env, st: &st, wire: w}
			if err := r.step(ps.Step); err != nil {
				st.Error = err.Error()
			}
		}
		res.Steps = append(res.Steps, st)
	}
	return res, nil
}

func workflowName(kind string) string {
	switch kind {
	case policy.KindJoiner:
		return contract.JoinerWorkflowName
	case policy.KindMover:
		return contract.MoverWorkflowName
	case policy.KindLeaver:
		return contract.LeaverWorkflowName
	}
	return kind
}

type renderer struct {
	p    *policy.Policy
	env  *transform.Env
	st   *previewStep
	wire *wire
}

func (r *renderer) eval(src string, escape func(string) string) (string, error) {
	t, err := transform.Parse(src)
	if err != nil {
		return "", err
	}
	e := *r.env
	e.Escape = escape
	return t.Eval(&e)
}

func (r *renderer) call(method, u, body, when string) {
	r.st.Calls = append(r.st.Calls, previewCall{Method: method, URL: u, Body: body, When: when})
}

// idRef is the placeholder for an ID only a run knows.
func idRef(entity string) string { return "<" + entity + ".id>" }

func (r *renderer) output(entity string, attrs map[string]string, password, account bool) {
	out := r.env.Outputs[entity]
	if out == nil {
		out = map[string]string{}
		r.env.Outputs[entity] = out
	}
	maps.Copy(out, attrs)
	if account {
		out["id"] = idRef(entity)
	}
	if password {
		out["password"] = secret.Redacted
	}
	var names []string
	for _, k := range slices.Sorted(maps.Keys(out)) {
		names = append(names, "{"+entity+"."+k+"}")
	}
	r.st.Outputs = names
}

func (r *renderer) step(s policy.Step) error {
	switch {
	case s.SyncIdentity != nil:
		return r.sync(*s.SyncIdentity)
	case s.ManageRelationships != nil:
		return r.relationships(*s.ManageRelationships)
	case s.DeprovisionIdentity != nil:
		a := *s.DeprovisionIdentity
		return r.accountCalls(a.Target, func(ctx context.Context, c any, id string) error {
			d, ok := c.(connectors.Deprovisioner)
			if !ok {
				return fmt.Errorf("target %s cannot deprovision", a.Target)
			}
			return d.Deprovision(ctx, id, connectors.DeprovisionOptions{Mode: a.Mode, RemoveGroups: a.RemoveGroups, ClearSessions: a.ClearSessions})
		})
	case s.DeleteIdentity != nil:
		a := *s.DeleteIdentity
		if a.After != "" {
			r.st.Notes = append(r.st.Notes, "waits "+a.After+" (durable timer) before deleting; a rehire cancels it")
		}
		return r.accountCalls(a.Target, func(ctx context.Context, c any, id string) error {
			d, ok := c.(connectors.Deleter)
			if !ok {
				return fmt.Errorf("target %s cannot delete accounts", a.Target)
			}
			return d.Delete(ctx, id)
		})
	case s.CreateEntitlement != nil:
		return r.entitlement(*s.CreateEntitlement)
	case s.ResetPassword != nil:
		a := *s.ResetPassword
		e := r.p.EntityType(a.Target)
		if err := r.accountCalls(a.Target, func(ctx context.Context, c any, id string) error {
			pr, ok := c.(connectors.PasswordResetter)
			if !ok {
				return fmt.Errorf("target %s cannot reset passwords", a.Target)
			}
			_, err := pr.ResetPassword(ctx, id)
			return err
		}); err != nil {
			return err
		}
		r.st.Notes = append(r.st.Notes, "the temporary password stays in worker memory (vault); history holds only a handle")
		r.output(e, nil, true, true)
	case s.SendRESTRequest != nil:
		return r.rest(*s.SendRESTRequest)
	case s.Notify != nil:
		if on := s.Notify.On; len(on) > 0 {
			r.st.Notes = append(r.st.Notes, "sent when the run is "+strings.Join(on, " or "))
		}
		if ch := r.p.NotifyChannel(*s.Notify); ch != policy.ChannelWebhook {
			return r.message(ch, *s.Notify)
		}
		// A webhook's templates may use the run's fields too.
		saved := r.env
		e := r.notifyEnv()
		r.env = &e
		defer func() { r.env = saved }()
		return r.rest(*s.Notify)
	}
	return nil
}

func (r *renderer) sync(a policy.SyncIdentity) error {
	attrs, err := policy.RenderIdentity(r.p, a, r.env)
	if err != nil {
		return err
	}
	r.st.Attributes = attrs
	for _, name := range slices.Sorted(maps.Keys(a.Fallbacks)) {
		cands, err := policy.Candidates(r.p, a, name)
		if err != nil {
			return err
		}
		var vals []string
		for _, t := range cands {
			for k := range min(t.Attempts(), 3) {
				e := *r.env
				e.Target, e.Counter = attrs, k
				if v, err := t.Eval(&e); err == nil && v != "" && !slices.Contains(vals, v) {
					vals = append(vals, v)
				}
			}
		}
		if r.st.Fallbacks == nil {
			r.st.Fallbacks = map[string][]string{}
		}
		r.st.Fallbacks[name] = vals
	}
	var groups []string
	for _, g := range a.Groups {
		v, err := r.eval(g, nil)
		if err != nil {
			return fmt.Errorf("groups: %w", err)
		}
		groups = append(groups, v)
	}
	uid := r.p.UniqueIdentifier(a)
	e := r.p.EntityType(a.Target)
	pw := a.Password == "generate"
	if err := r.syncCalls(a, uid, attrs, groups, pw); err != nil {
		return err
	}
	if pw {
		r.st.Notes = append(r.st.Notes, "password: generated inside the activity from the password policy; kept in worker memory only")
	}
	if len(a.NotContinuouslySynced) > 0 {
		r.st.Notes = append(r.st.Notes, "written at creation only: "+strings.Join(a.NotContinuouslySynced, ", "))
	}
	r.output(e, attrs, pw, true)
	return nil
}

func (r *renderer) groups(srcs []string) ([]string, error) {
	var out []string
	for _, g := range srcs {
		if empty := transform.EmptyAttrs(g, r.env.Attrs); len(empty) > 0 {
			// As a run: a group named from nothing is not granted.
			r.st.Notes = append(r.st.Notes, fmt.Sprintf("not granted, no value: %s (%s empty)", g, strings.Join(empty, ", ")))
			continue
		}
		v, err := r.eval(g, nil)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", g, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (r *renderer) relationships(a policy.ManageRelationships) error {
	add, err := r.groups(a.Add)
	if err != nil {
		return err
	}
	remove, err := r.groups(a.Remove)
	if err != nil {
		return err
	}
	r.st.Attributes = map[string]string{}
	if len(add) > 0 {
		r.st.Attributes["add"] = strings.Join(add, ", ")
	}
	if len(remove) > 0 {
		r.st.Attributes["remove"] = strings.Join(remove, ", ")
	}
	if a.RemoveAll {
		r.st.Attributes["remove"] = "every group"
	}
	r.st.Notes = append(r.st.Notes, "on a mover, groups rendered from the previous attributes and not from these are removed")
	return r.relationshipCalls(a, add, remove)
}

func (r *renderer) entitlement(a policy.CreateEntitlement) error {
	name, err := r.eval(a.Name, nil)
	if err != nil {
		return fmt.Errorf("name: %w", err)
	}
	desc, err := r.eval(a.Description, nil)
	if err != nil {
		return fmt.Errorf("description: %w", err)
	}
	r.st.Attributes = map[string]string{"name": name}
	if desc != "" {
		r.st.Attributes["description"] = desc
	}
	return r.accountCalls(a.Target, func(ctx context.Context, c any, _ string) error {
		ec, ok := c.(connectors.EntitlementCreator)
		if !ok {
			return fmt.Errorf("target %s cannot create groups", a.Target)
		}
		_, err := ec.EnsureGroup(ctx, connectors.Group{Name: name, Description: desc})
		return err
	})
}

// message previews an e-mail or chat notification: every template
// rendered as the notify activity would, secrets masked; the run's fields
// and the manager (read from their identity at run time) as placeholders.
func (r *renderer) message(ch string, a policy.RESTRequest) error {
	e := r.notifyEnv()
	tmpls := policy.NotifyTemplates(a)
	r.st.Attributes = map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(tmpls)) {
		t, err := transform.Parse(tmpls[k])
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		v, err := t.Eval(&e)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		r.st.Attributes[k] = v
	}
	switch ch {
	case policy.ChannelEmail:
		t := r.p.Targets[a.Target]
		r.call("SMTP", fmt.Sprintf("smtp://%s:%d", t.Host, t.Port), "", "to "+r.st.Attributes["to[0]"])
	default:
		r.call("POST", "$"+a.URLEnv, "", ch+" incoming webhook")
	}
	return nil
}

// notifyEnv is the template environment of a notify step: the run's
// fields and the manager as placeholders, the password masked.
func (r *renderer) notifyEnv() transform.Env {
	e := *r.env
	e.Outputs = maps.Clone(r.env.Outputs)
	if e.Outputs == nil {
		e.Outputs = map[string]map[string]string{}
	}
	placeholders := func(entity string, names ...string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			m[n] = "<" + entity + "." + n + ">"
		}
		return m
	}
	e.Outputs[policy.EntityRun] = placeholders(policy.EntityRun, "kind", "workflow", "workflow_id", "employee_id", "failed_step", "error", "ui_url", "message", "state")
	e.Outputs[policy.EntityManager] = placeholders(policy.EntityManager, "email", "first_name", "last_name", "display_name", "employee_id")
	e.Outputs[policy.EntityLogin] = map[string]string{"password": secret.Redacted}
	return e
}

func (r *renderer) rest(a policy.RESTRequest) error {
	r.st.Attributes = map[string]string{}
	for _, h := range slices.Sorted(maps.Keys(a.Headers)) {
		v, err := r.eval(a.Headers[h], nil)
		if err != nil {
			return fmt.Errorf("header %s: %w", h, err)
		}
		r.st.Attributes["header "+h] = v
	}
	if a.Target != "" {
		if auth := authHeader(r.p.Targets[a.Target]); auth != "" {
			r.st.Attributes["header "+auth] = secret.Redacted
		}
	}
	when := ""
	if len(a.SuccessCodes) > 0 {
		var codes []string
		for _, c := range a.SuccessCodes {
			codes = append(codes, fmt.Sprint(c))
		}
		when = "success: " + strings.Join(codes, ", ")
	}
	if err := r.restCalls(a, when); err != nil {
		return err
	}
	if len(a.Extract) > 0 && a.Target != "" {
		e := r.p.EntityType(a.Target)
		out := map[string]string{}
		for k, path := range a.Extract {
			out[k] = "<" + path + " of the response>"
		}
		r.output(e, out, false, false)
	}
	return nil
}

func authHeader(t policy.Target) string {
	switch t.Auth.Type {
	case "header":
		return t.Auth.Header
	case "none":
		return ""
	case "":
		if t.TokenEnv == "" {
			return ""
		}
	}
	return "Authorization"
}

func printPreview(w io.Writer, r *previewResult) {
	fmt.Fprintf(w, "Preview of %s for event %s (%s, employee %s) — nothing is written.\n", r.Policy, r.EventID, r.EventType, r.EmployeeID)
	if r.Live {
		fmt.Fprint(w, "Reads went to the targets (--live); writes were blocked.\n\n")
	} else {
		fmt.Fprint(w, "Lookups answered \"not found\" (no --live): the calls are those for a person the targets do not know yet.\n\n")
	}
	fmt.Fprintf(w, "Workflow  %s  %s  (policy flow %q)\n", r.Workflow, r.WorkflowID, r.Flow)
	fmt.Fprintf(w, "Effective %s\n", r.Effective.Format(time.RFC3339))
	if !r.RunAt.Equal(r.Effective) {
		fmt.Fprintf(w, "Runs at   %s (durable timer until then)\n", r.RunAt.Format(time.RFC3339))
	}
	for i, s := range r.Steps {
		target := ""
		if s.Target != "" {
			target = " → " + s.Target
		}
		fmt.Fprintf(w, "\n%d. %s  [%s%s]\n", i+1, s.Name, s.Action, target)
		if s.When != "" {
			fmt.Fprintf(w, "   when: %s\n", s.When)
		}
		if s.Skip {
			fmt.Fprintf(w, "   SKIPPED: %s\n", s.SkipReason)
			continue
		}
		if s.Error != "" {
			fmt.Fprintf(w, "   WOULD FAIL: %s\n", s.Error)
			continue
		}
		if len(s.Attributes) > 0 {
			fmt.Fprintln(w, "   attributes:")
			width := 0
			for k := range s.Attributes {
				width = max(width, len(k))
			}
			for _, k := range slices.Sorted(maps.Keys(s.Attributes)) {
				fmt.Fprintf(w, "     %-*s = %s\n", width, k, s.Attributes[k])
			}
		}
		for _, k := range slices.Sorted(maps.Keys(s.Fallbacks)) {
			fmt.Fprintf(w, "   %s if taken, in order: %s …\n", k, strings.Join(s.Fallbacks[k], ", "))
		}
		if len(s.Calls) > 0 {
			fmt.Fprintln(w, "   calls:")
			for _, c := range s.Calls {
				fmt.Fprintf(w, "     %-6s %s", c.Method, c.URL)
				if c.When != "" {
					fmt.Fprintf(w, "   (%s)", c.When)
				}
				fmt.Fprintln(w)
				if c.Body != "" {
					fmt.Fprintf(w, "            %s\n", c.Body)
				}
			}
		}
		if len(s.Outputs) > 0 {
			fmt.Fprintf(w, "   outputs: %s\n", strings.Join(s.Outputs, " "))
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "   note: %s\n", n)
		}
	}
}
