package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/targets"
)

// previewResult is what `starter preview --json` prints.
type previewResult struct {
	Policy     string `json:"policy"`
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	EmployeeID string `json:"employee_id"`
	Workflow   string `json:"workflow"`
	WorkflowID string `json:"workflow_id"`
	Flow       string `json:"flow"`
	// Scope is the chosen flow's scope; Scopes, when no flow's scope
	// holds (the event runs no step), the ones tried.
	Scope     string        `json:"scope,omitempty"`
	Scopes    []string      `json:"scopes,omitempty"`
	Effective time.Time     `json:"effective_at"`
	RunAt     time.Time     `json:"run_at"`
	Steps     []previewStep `json:"steps"`
	// Live: the connectors' reads went to the targets (--live).
	Live bool `json:"live"`
	// AssumedLinks: offline, a mover or leaver acts on stand-in linked
	// accounts (one per account target).
	AssumedLinks bool `json:"assumed_links,omitempty"`
	// secrets are the run's vault handles (redact).
	secrets map[string]activities.SecretRef
	// Known: the run started from what jml stores about the person (links,
	// applied attributes), read from Temporal (--live).
	Known bool `json:"known"`
}

type previewStep struct {
	Name       string `json:"name"`
	Action     string `json:"action"`
	Target     string `json:"target,omitempty"`
	Skip       bool   `json:"skip,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	When       string `json:"when,omitempty"`
	// Revokes are the groups a mover's revoke step takes back: their
	// grant's condition held before the change and no longer does.
	Revokes []string `json:"revokes,omitempty"`
	// Verdict is what the run would do (would create, would link, would
	// run, conflict, would fail, not reached), from the activity's outcome.
	Verdict string `json:"verdict,omitempty"`
	// Note is the activity's note for the step table.
	Note    string            `json:"note,omitempty"`
	Calls   []previewCall     `json:"calls,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
	Notes   []string          `json:"notes,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// previewCall is one request the step's connector would send.
type previewCall struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	Body   string `json:"body,omitempty"`
	// When is how the recorder answered: sent (--live), not found, blocked.
	When string `json:"when,omitempty"`
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
	res, err := previewEvent(ctx, p, ev, *live, stderr)
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

// previewEvent runs the preview of ev: offline, or with --live reads sent
// to the targets and, when TEMPORAL_ADDRESS is set, from what jml stores
// about the person.
func previewEvent(ctx context.Context, p *policy.Policy, ev hr.Event, live bool, stderr io.Writer) (*previewResult, error) {
	rec := &targets.Recorder{}
	getenv := previewGetenv(os.Getenv)
	if live {
		rec.Live, getenv = http.DefaultTransport, os.Getenv
	}
	var st known
	var dir activities.Directory
	if live && os.Getenv("TEMPORAL_ADDRESS") != "" {
		c, err := dial(ctx, zap.NewNop())
		if err != nil {
			return nil, err
		}
		defer c.Close()
		pc, err := codec.FromEnv(os.Getenv, false, zap.NewNop())
		if err != nil {
			return nil, err
		}
		dir = activities.TemporalDirectory{Client: c, DataConverter: codec.DataConverter(pc)}
		if st, err = storedState(ctx, dir, ev.Employee["employee_id"]); err != nil {
			return nil, fmt.Errorf("stored state of %s: %w", ev.Employee["employee_id"], err)
		}
	} else if live {
		fmt.Fprintln(stderr, "note: TEMPORAL_ADDRESS is not set: the preview starts from a person jml does not know (no links)")
		dir = activities.StaticDirectory{} // and knows no one else's links
	}
	pv, err := newPreviewer(ctx, p, rec, previewOptions{getenv: getenv, insecure: !live, dir: dir})
	if err != nil {
		return nil, err
	}
	if kind, _ := kindOf(ev, ""); !live && kind != policy.KindJoiner {
		st = assumeLinked(p)
	}
	res, err := pv.run(ctx, ev, st)
	if err != nil {
		return nil, err
	}
	pv.redact(res)
	res.Live, res.AssumedLinks = live, st.Accounts != nil && !st.found
	return res, nil
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

func printPreview(w io.Writer, r *previewResult) {
	fmt.Fprintf(w, "Preview of %s for event %s (%s, employee %s) — nothing is written.\n", r.Policy, r.EventID, r.EventType, r.EmployeeID)
	if r.Live {
		fmt.Fprint(w, "Reads went to the targets (--live); writes were answered by the recorder, never sent.\n")
		if r.Known {
			fmt.Fprint(w, "The run starts from what jml stores about this person (links, applied attributes).\n")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprint(w, "Reads answered \"not found\" (no --live): the run of a person the targets and jml do not know yet.\n")
		if r.AssumedLinks {
			fmt.Fprint(w, "As a stand-in, the person is linked to one account per target, read as active and in no group.\n")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Workflow  %s  %s  (policy flow %q)\n", r.Workflow, r.WorkflowID, r.Flow)
	if r.Scope != "" {
		fmt.Fprintf(w, "Scope     %s\n", r.Scope)
	}
	if r.Flow == "" {
		fmt.Fprintf(w, "No flow's scope holds for this person: the run does nothing. Tried:\n")
		for _, s := range r.Scopes {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
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
		if len(s.Revokes) > 0 {
			fmt.Fprintf(w, "   takes back (their condition no longer holds): %s\n", strings.Join(s.Revokes, ", "))
		}
		if s.Skip {
			fmt.Fprintf(w, "   SKIPPED: %s\n", s.SkipReason)
			continue
		}
		if s.Verdict != "" {
			fmt.Fprintf(w, "   %s", strings.ToUpper(s.Verdict))
			if s.Note != "" {
				fmt.Fprintf(w, " (%s)", s.Note)
			}
			fmt.Fprintln(w)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "   error: %s\n", s.Error)
		}
		if len(s.Calls) > 0 {
			fmt.Fprintln(w, "   calls:")
			for _, c := range s.Calls {
				c = shown(c)
				fmt.Fprintf(w, "     %-6s %s", c.Method, c.URL)
				if c.When != "" {
					fmt.Fprintf(w, "   (%s)", c.When)
				}
				fmt.Fprintln(w)
				if c.Body != "" {
					// (An LDAP operation's changes are one per line.)
					fmt.Fprintf(w, "            %s\n", strings.ReplaceAll(c.Body, "\n", "\n            "))
				}
			}
		}
		if len(s.Outputs) > 0 {
			fmt.Fprintln(w, "   outputs:")
			for _, k := range slices.Sorted(maps.Keys(s.Outputs)) {
				fmt.Fprintf(w, "     %s = %s\n", k, shownIDs(s.Outputs[k]))
			}
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "   note: %s\n", n)
		}
	}
}
