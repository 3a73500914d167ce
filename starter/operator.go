package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/workflows"
)

// opFlags are the flags shared by the operator commands.
type opFlags struct {
	fs      *flag.FlagSet
	jsonOut *bool
	run     *string
}

func newOpFlags(name string, stderr io.Writer) opFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return opFlags{
		fs:      fs,
		jsonOut: fs.Bool("json", false, "machine-readable JSON output"),
		run:     fs.String("run", "", "address this lifecycle workflow ID instead of the employee's current run"),
	}
}

// parse accepts flags before and after positional arguments
// (`retry E123 --step okta.sync_identity`).
func (o opFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := o.fs.Parse(args); err != nil {
			return nil, err
		}
		if o.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, o.fs.Arg(0))
		args = o.fs.Args()[1:]
	}
}

// runStatus prints the step table of a person's current (or last) run.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("status", stderr)
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: starter status EMPLOYEE_ID [--json] [--run WORKFLOW_ID]")
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		st, err := status(ctx, c, pos[0], *f.run)
		if err != nil {
			fmt.Fprintf(stderr, "starter status: %v\n", err)
			return 1
		}
		if *f.jsonOut {
			return printJSON(stdout, st)
		}
		printStatus(stdout, st)
		return 0
	})
}

// runStatusResult is what `status` shows.
type runStatusResult struct {
	EmployeeID string                `json:"employee_id"`
	Identity   string                `json:"identity_state,omitempty"` // JmlState of identity/<id>: Idle, Waiting, Running
	Status     string                `json:"status,omitempty"`         // active, deprovisioned
	Run        string                `json:"run,omitempty"`
	Kind       string                `json:"kind,omitempty"`
	EventID    string                `json:"event_id,omitempty"`
	Execution  string                `json:"execution,omitempty"` // Running, Completed, …
	State      string                `json:"state,omitempty"`     // JmlState
	FailedStep string                `json:"failed_step,omitempty"`
	Pending    []string              `json:"pending,omitempty"`
	Steps      []workflows.StepInfo  `json:"steps"`
	Current    *workflows.CurrentRun `json:"-"`
}

var (
	stateKey  = temporal.NewSearchAttributeKeyKeyword(workflows.SAState)
	failedKey = temporal.NewSearchAttributeKeyKeyword(workflows.SAFailedStep)
)

func status(ctx context.Context, c client.Client, employeeID, run string) (*runStatusResult, error) {
	st := &runStatusResult{EmployeeID: employeeID, Run: run, Steps: []workflows.StepInfo{}}
	if run == "" {
		cur, err := current(ctx, c, employeeID)
		if err != nil {
			return nil, err
		}
		st.Current, st.Pending, st.Kind, st.EventID, st.Status = cur, cur.Pending, cur.Kind, cur.EventID, cur.Status
		if d, err := c.DescribeWorkflow(ctx, workflows.IdentityWorkflowID(employeeID), ""); err == nil {
			st.Identity, _ = d.TypedSearchAttributes.GetKeyword(stateKey)
		}
		st.Run = cur.WorkflowID
		if st.Run == "" {
			st.Run = cur.LastRun
		}
		if st.Run == "" {
			return st, nil
		}
	}
	d, err := c.DescribeWorkflow(ctx, st.Run, "")
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", st.Run, err)
	}
	st.Execution = titleStatus(d.Status.String())
	st.State, _ = d.TypedSearchAttributes.GetKeyword(stateKey)
	st.FailedStep, _ = d.TypedSearchAttributes.GetKeyword(failedKey)
	v, err := c.QueryWorkflow(ctx, st.Run, "", workflows.QuerySteps)
	if err != nil {
		return nil, fmt.Errorf("query steps of %s: %w", st.Run, err)
	}
	if err := v.Get(&st.Steps); err != nil {
		return nil, fmt.Errorf("decode steps of %s: %w", st.Run, err)
	}
	return st, nil
}

// current asks the person's identity workflow which run is active.
func current(ctx context.Context, c client.Client, employeeID string) (*workflows.CurrentRun, error) {
	id := workflows.IdentityWorkflowID(employeeID)
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryCurrent)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("no workflow for employee %q (%s): no HR event has been received for this ID", employeeID, id)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", id, err)
	}
	var cur workflows.CurrentRun
	if err := v.Get(&cur); err != nil {
		return nil, fmt.Errorf("decode %s current run: %w", id, err)
	}
	return &cur, nil
}

func printStatus(w io.Writer, st *runStatusResult) {
	fmt.Fprintf(w, "employee  %s", st.EmployeeID)
	if st.Status != "" {
		fmt.Fprintf(w, " (%s)", st.Status)
	}
	if st.Identity != "" {
		fmt.Fprintf(w, ", identity workflow %s", st.Identity)
	}
	fmt.Fprintln(w)
	if st.Run == "" {
		fmt.Fprintln(w, "run       none yet")
	} else {
		fmt.Fprintf(w, "run       %s", st.Run)
		if st.Kind != "" {
			fmt.Fprintf(w, " (%s, event %s)", st.Kind, st.EventID)
		}
		fmt.Fprintln(w)
		state := st.State
		if state == "" {
			state = st.Execution
		}
		fmt.Fprintf(w, "state     %s", state)
		if st.FailedStep != "" {
			fmt.Fprintf(w, " at %s", st.FailedStep)
		}
		fmt.Fprintln(w)
	}
	if len(st.Pending) > 0 {
		fmt.Fprintf(w, "queued    %s\n", strings.Join(st.Pending, ", "))
	}
	if len(st.Steps) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tACTION\tTARGET\tSTATE\tATTEMPTS\tLAST ERROR")
		for _, s := range st.Steps {
			msg := s.LastError
			if s.Note != "" {
				msg = strings.TrimSpace(msg + " (" + s.Note + ")")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Action, s.Target, s.State, s.Attempts, msg)
		}
		_ = tw.Flush()
	}
	switch st.State {
	case workflows.StateNeedsAttention:
		fmt.Fprintf(w, "\nnext: starter retry %[1]s  |  starter skip %[1]s --step %[2]s  |  starter abort %[1]s\n", st.EmployeeID, st.FailedStep)
	case workflows.StateBlocked:
		fmt.Fprintf(w, "\nnext: starter release %[1]s  |  starter abort %[1]s\n", st.EmployeeID)
	}
}

// runList lists runs by state (a visibility query on JmlState).
func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("list", stderr)
	attention := f.fs.Bool("needs-attention", false, "runs with a failed step waiting for an operator (the default)")
	blocked := f.fs.Bool("blocked", false, "runs stopped by the safety limit")
	state := f.fs.String("state", "", "runs in this JmlState (Waiting, Running, NeedsAttention, Blocked, Completed, Aborted)")
	limit := f.fs.Int("limit", 200, "at most this many runs")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: starter list [--needs-attention | --blocked | --state S] [--json] [--limit N]")
		return 2
	}
	want := workflows.StateNeedsAttention
	switch {
	case *state != "":
		want = *state
	case *blocked && *attention:
		fmt.Fprintln(stderr, "starter list: choose one of --needs-attention and --blocked")
		return 2
	case *blocked:
		want = workflows.StateBlocked
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		runs, err := listRuns(ctx, c, want, *limit)
		if err != nil {
			fmt.Fprintf(stderr, "starter list: %v\n", err)
			return 1
		}
		if *f.jsonOut {
			return printJSON(stdout, runs)
		}
		if len(runs) == 0 {
			fmt.Fprintf(stdout, "no runs in state %s\n", want)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKFLOW ID\tEMPLOYEE\tEVENT\tSTATE\tFAILED STEP\tSTARTED")
		for _, r := range runs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.WorkflowID, r.EmployeeID, r.Event, r.State, r.FailedStep, r.Started.Format(time.DateTime))
		}
		_ = tw.Flush()
		return 0
	})
}

// listedRun is one row of `list`.
type listedRun struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Type       string    `json:"type"`
	EmployeeID string    `json:"employee_id"`
	Event      string    `json:"event,omitempty"`
	State      string    `json:"state"`
	FailedStep string    `json:"failed_step,omitempty"`
	Started    time.Time `json:"started"`
}

func listRuns(ctx context.Context, c client.Client, state string, limit int) ([]listedRun, error) {
	query := fmt.Sprintf("%s = %q", workflows.SAState, state)
	runs := []listedRun{}
	var token []byte
	for len(runs) < limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, NextPageToken: token, PageSize: int32(min(limit-len(runs), 1000)),
		})
		if err != nil {
			return nil, fmt.Errorf("visibility query %s: %w", query, err)
		}
		for _, e := range resp.Executions {
			sa := e.GetSearchAttributes().GetIndexedFields()
			runs = append(runs, listedRun{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				RunID:      e.GetExecution().GetRunId(),
				Type:       e.GetType().GetName(),
				EmployeeID: keyword(sa, workflows.SAEmployeeID),
				Event:      keyword(sa, workflows.SAEvent),
				State:      keyword(sa, workflows.SAState),
				FailedStep: keyword(sa, workflows.SAFailedStep),
				Started:    e.GetStartTime().AsTime(),
			})
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	return runs, nil
}

// keyword decodes a keyword search attribute (search attributes are never
// encrypted by the payload codec).
func keyword(fields map[string]*commonpb.Payload, name string) string {
	p, ok := fields[name]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		var list []string
		if converter.GetDefaultDataConverter().FromPayload(p, &list) == nil {
			return strings.Join(list, ",")
		}
	}
	return s
}

// runRetry re-runs the failed step, optionally with corrected attributes.
func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("retry", stderr)
	step := f.fs.String("step", "", "the failed step (default: the run's failed step)")
	set := attrFlag{}
	f.fs.Var(set, "set", "corrected attribute for the retry, name=value (repeatable)")
	return stepCommand(ctx, f, args, step, stdout, stderr, "retry EMPLOYEE_ID [--step S] [--set name=value]…",
		workflows.StepFailed, workflows.UpdateRetryStep, func(s string) any {
			return workflows.RetryStepRequest{Step: s, Attributes: set.orNil()}
		})
}

// runSkip marks the failed step skipped and lets the run go on.
func runSkip(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("skip", stderr)
	step := f.fs.String("step", "", "the failed step to skip (required: skipping is a decision)")
	reason := f.fs.String("reason", "", "why, recorded in the workflow history")
	return stepCommand(ctx, f, args, step, stdout, stderr, "skip EMPLOYEE_ID --step S [--reason R]",
		"", workflows.UpdateSkipStep, func(s string) any { return workflows.StepRequest{Step: s, Reason: *reason} })
}

// runAbort stops the run (state Aborted); later steps do not run.
func runAbort(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("abort", stderr)
	reason := f.fs.String("reason", "", "why, recorded in the workflow history")
	rollback := f.fs.Bool("rollback", false, "also disable every account this run created (never deletes)")
	return stepCommand(ctx, f, args, nil, stdout, stderr, "abort EMPLOYEE_ID [--reason R] [--rollback]",
		"", workflows.UpdateAbort, func(s string) any {
			return workflows.StepRequest{Step: s, Reason: *reason, Rollback: *rollback}
		})
}

// runRelease lets a run blocked by the safety limit go on.
func runRelease(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("release", stderr)
	step := f.fs.String("step", "", "the blocked step (default: the run's blocked step)")
	reason := f.fs.String("reason", "", "why, recorded in the workflow history")
	return stepCommand(ctx, f, args, step, stdout, stderr, "release EMPLOYEE_ID [--step S] [--reason R]",
		workflows.StepBlocked, workflows.UpdateRelease, func(s string) any { return workflows.StepRequest{Step: s, Reason: *reason} })
}

// stepCommand sends one operator update to a person's run. step is nil for
// commands without --step; defaultState names the step state to pick when
// --step is not given ("" makes --step required).
func stepCommand(ctx context.Context, f opFlags, args []string, step *string, stdout, stderr io.Writer,
	usage, defaultState, update string, arg func(step string) any) int {
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	name := f.fs.Name()
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: starter %s [--json] [--run WORKFLOW_ID]\n", usage)
		return 2
	}
	if step != nil && *step == "" && defaultState == "" {
		fmt.Fprintf(stderr, "starter %s: --step is required (see starter status %s)\n", name, pos[0])
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		st, err := status(ctx, c, pos[0], *f.run)
		if err != nil {
			fmt.Fprintf(stderr, "starter %s: %v\n", name, err)
			return 1
		}
		if st.Run == "" || st.Execution != "Running" {
			fmt.Fprintf(stderr, "starter %s: employee %s has no running lifecycle workflow\n", name, pos[0])
			return 1
		}
		target := ""
		if step != nil {
			target = *step
			if target == "" {
				for _, s := range st.Steps {
					if s.State == defaultState {
						target = s.Name
						break
					}
				}
				if target == "" {
					fmt.Fprintf(stderr, "starter %s: %s has no %s step (state %s); nothing to do\n", name, st.Run, defaultState, st.State)
					return 1
				}
			}
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: st.Run, UpdateName: update, Args: []any{arg(target)},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		if err != nil {
			var app *temporal.ApplicationError
			if errors.As(err, &app) {
				fmt.Fprintf(stderr, "starter %s: refused by %s: %s\n", name, st.Run, app.Error())
			} else {
				fmt.Fprintf(stderr, "starter %s: %s: %v\n", name, st.Run, err)
			}
			return 1
		}
		res := map[string]string{"employee_id": pos[0], "workflow_id": st.Run, "action": name, "step": target}
		if *f.jsonOut {
			return printJSON(stdout, res)
		}
		if target != "" {
			fmt.Fprintf(stdout, "%s %s: accepted by %s\n", name, target, st.Run)
		} else {
			fmt.Fprintf(stdout, "%s: accepted by %s\n", name, st.Run)
		}
		return 0
	})
}

// attrFlag collects repeated name=value flags.
type attrFlag map[string]string

func (a attrFlag) String() string { return "" }

// attrNameRE is an employee attribute name (snake_case, as in the policy).
var attrNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (a attrFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	switch {
	case !ok || k == "":
		return fmt.Errorf("want name=value (e.g. --set last_name=Lovelace), got %q", s)
	case !attrNameRE.MatchString(k):
		return fmt.Errorf("%q is not an attribute name (snake_case, e.g. last_name)", k)
	case k == "employee_id":
		return errors.New("employee_id cannot be changed: it names the person's workflows")
	}
	if _, dup := a[k]; dup {
		return fmt.Errorf("%s is set twice", k)
	}
	a[k] = v
	return nil
}

func (a attrFlag) orNil() map[string]string {
	if len(a) == 0 {
		return nil
	}
	return a
}

// withClient dials Temporal, runs f with a deadline and closes the client.
func withClient(ctx context.Context, stderr io.Writer, f func(context.Context, client.Client) int) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := dial(ctx, zap.NewNop())
	if err != nil {
		fmt.Fprintf(stderr, "starter: %v\n", err)
		return 1
	}
	defer c.Close()
	return f(ctx, c)
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

// titleStatus turns WORKFLOW_EXECUTION_STATUS_RUNNING into Running.
func titleStatus(s string) string {
	s = strings.TrimPrefix(s, "WORKFLOW_EXECUTION_STATUS_")
	if s == "" {
		return s
	}
	return s[:1] + strings.ToLower(s[1:])
}
