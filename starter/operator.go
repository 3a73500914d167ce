package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

// opFlags are the flags shared by the operator commands.
type opFlags struct {
	fs      *flag.FlagSet
	jsonOut *bool
	run     *string
	as      *string
}

func newOpFlags(name string, stderr io.Writer) opFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return opFlags{
		fs:      fs,
		jsonOut: fs.Bool("json", false, "machine-readable JSON output"),
		run:     fs.String("run", "", "address this lifecycle workflow ID instead of the employee's current run"),
		as:      fs.String("as", defaultOperator(), "who decides, recorded with the reason in the run (default $USER@host)"),
	}
}

// defaultOperator names the person at this terminal: user@host.
func defaultOperator() string {
	u := os.Getenv("USER")
	if u == "" {
		u = os.Getenv("USERNAME")
	}
	if u == "" {
		u = "unknown"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return u + "@" + h
	}
	return u
}

// parse accepts flags before and after positional arguments
// (`retry E123 --step okta.sync_identity`).
func (o opFlags) parse(args []string) ([]string, error) { return parseAnywhere(o.fs, args) }

// parseAnywhere parses fs's flags before and after positional arguments
// and returns the positional ones.
func parseAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
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
		fmt.Fprintln(stderr, "usage: starter status EMPLOYEE_ID|request/REQUEST_ID [--json] [--run WORKFLOW_ID]")
		return 2
	}
	if _, ok := contract.RequestIDOf(pos[0]); ok || strings.HasPrefix(pos[0], approvalPrefix) {
		return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
			st, err := requestStatus(ctx, c, pos[0])
			if err != nil {
				fmt.Fprintf(stderr, "starter status: %v\n", err)
				return 1
			}
			if *f.jsonOut {
				return printJSON(stdout, st)
			}
			printRequest(stdout, st)
			return 0
		})
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
	EmployeeID string `json:"employee_id"`
	Identity   string `json:"identity_state,omitempty"` // JmlState of identity/<id>: Idle, Waiting, Running
	Status     string `json:"status,omitempty"`         // active, deprovisioned
	Run        string `json:"run,omitempty"`
	Kind       string `json:"kind,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	Execution  string `json:"execution,omitempty"` // Running, Completed, …
	// State is the run's JmlState, or how Temporal closed it when jml did
	// not (Terminated, Canceled, TimedOut, Failed): JmlState then still
	// reads what the run last set, kept in LastState.
	State      string   `json:"state,omitempty"`
	LastState  string   `json:"last_jml_state,omitempty"`
	FailedStep string   `json:"failed_step,omitempty"`
	Pending    []string `json:"pending,omitempty"`
	// Accounts are the person's linked accounts by target (with their
	// identifiers), recorded when a step made them, also while a run waits.
	Accounts    map[string]string `json:"accounts,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// AccountStates are the linked accounts' states (active, disabled) as
	// their steps read them back: the header's state comes from them.
	AccountStates map[string]string    `json:"account_states,omitempty"`
	Steps         []workflows.StepInfo `json:"steps"`
	// StepsUnavailable: a closed run's steps could not be queried (a query
	// of a closed run needs a worker to replay it); the rest still shows.
	StepsUnavailable string `json:"steps_unavailable,omitempty"`
	// Retrying are the run's steps Temporal is retrying right now (its
	// pending activities): attempt and last error, before any operator
	// is asked.
	Retrying []pendingStep `json:"retrying,omitempty"`
	// LeftInPlace and Decisions are a finished run's result: what an abort
	// left for the operator to keep or undo, and every operator decision.
	LeftInPlace []string              `json:"left_in_place,omitempty"`
	Decisions   []workflows.Decision  `json:"decisions,omitempty"`
	Current     *workflows.CurrentRun `json:"-"`
}

// pendingStep is a step activity still being retried.
type pendingStep struct {
	Step        string    `json:"step"`
	ActivityID  string    `json:"activity_id"`
	Attempt     int32     `json:"attempt"`
	LastError   string    `json:"last_error,omitempty"`
	LastFailed  time.Time `json:"last_failed,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitempty"`
	// Paused: an operator paused it (starter activity pause); Temporal
	// does not retry it until it is unpaused.
	Paused bool `json:"paused,omitempty"`
}

var (
	stateKey  = temporal.NewSearchAttributeKeyKeyword(contract.SAState)
	failedKey = temporal.NewSearchAttributeKeyKeyword(contract.SAFailedStep)
)

func status(ctx context.Context, c client.Client, employeeID, run string) (*runStatusResult, error) {
	st := &runStatusResult{EmployeeID: employeeID, Run: run, Steps: []workflows.StepInfo{}}
	if run == "" {
		cur, err := current(ctx, c, employeeID)
		if err != nil {
			return nil, err
		}
		st.Current, st.Pending, st.Kind, st.EventID, st.Status = cur, cur.Pending, cur.Kind, cur.EventID, cur.Status
		st.Accounts, st.Identifiers, st.AccountStates = cur.Accounts, cur.Identifiers, cur.AccountStates
		if d, err := c.DescribeWorkflow(ctx, contract.IdentityWorkflowID(employeeID), ""); err == nil {
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
	if closed := closedBy(d.Status); closed != "" {
		st.State, st.LastState = closed, st.State
	}
	v, err := c.QueryWorkflow(ctx, st.Run, "", contract.QuerySteps)
	switch {
	case err != nil && closedBy(d.Status) != "":
		st.StepsUnavailable = err.Error()
	case err != nil:
		return nil, fmt.Errorf("query steps of %s: %w", st.Run, err)
	default:
		if err := v.Get(&st.Steps); err != nil {
			return nil, fmt.Errorf("decode steps of %s: %w", st.Run, err)
		}
	}
	if d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var res workflows.LifecycleResult
		if err := c.GetWorkflow(ctx, st.Run, "").Get(ctx, &res); err != nil {
			return nil, fmt.Errorf("result of %s: %w", st.Run, err)
		}
		st.LeftInPlace, st.Decisions = res.LeftInPlace, res.Decisions
	}
	if d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		raw, err := c.DescribeWorkflowExecution(ctx, st.Run, "")
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", st.Run, err)
		}
		for _, pa := range raw.GetPendingActivities() {
			ps := pendingStep{ActivityID: pa.GetActivityId(), Step: stepOf(pa.GetActivityId()),
				Attempt: pa.GetAttempt(), LastError: pa.GetLastFailure().GetMessage(), Paused: pa.GetPaused()}
			if t := pa.GetLastAttemptCompleteTime(); t != nil {
				ps.LastFailed = t.AsTime()
			}
			if t := pa.GetNextAttemptScheduleTime(); t != nil {
				ps.NextAttempt = t.AsTime()
			}
			st.Retrying = append(st.Retrying, ps)
		}
	}
	attempts, err := stepAttempts(ctx, c, st.Run, st.Retrying)
	if err != nil {
		return nil, err
	}
	for i, s := range st.Steps {
		st.Steps[i].Attempts = max(s.Attempts, int(attempts[s.Name]))
	}
	return st, nil
}

// stepAttempts counts each step's attempts from the run's history: the
// run's step table counts executions (one more per operator retry), and
// Temporal's attempt restarts at 1 in each; the operator wants them all.
// An activity's started event carries its last attempt; a pending one's
// attempt has no event yet.
func stepAttempts(ctx context.Context, c client.Client, run string, pending []pendingStep) (map[string]int32, error) {
	n := map[string]int32{}
	steps := map[int64]string{} // scheduled event ID → step
	it := c.GetWorkflowHistory(ctx, run, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", run, err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			steps[ev.GetEventId()] = stepOf(a.GetActivityId())
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			n[steps[a.GetScheduledEventId()]] += a.GetAttempt()
		}
	}
	for _, p := range pending {
		n[p.Step] += p.Attempt
	}
	return n, nil
}

// stepOf is the step an activity ID belongs to (<step> or <step>#<n>).
func stepOf(activityID string) string { return strings.SplitN(activityID, "#", 2)[0] }

// current asks the person's identity workflow which run is active.
func current(ctx context.Context, c client.Client, employeeID string) (*workflows.CurrentRun, error) {
	id := contract.IdentityWorkflowID(employeeID)
	v, err := c.QueryWorkflow(ctx, id, "", contract.QueryCurrent)
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

// accountsState is the header's state: the linked accounts' states when
// they agree ("disabled"), each by target when they do not ("app disabled,
// okta active"); without links (or links from before their states) the
// identity's status.
func accountsState(st *runStatusResult) string {
	var parts []string
	same := ""
	for i, t := range slices.Sorted(maps.Keys(st.Accounts)) {
		s := st.AccountStates[t]
		if s == "" {
			return st.Status
		}
		if i == 0 {
			same = s
		} else if s != same {
			same = ""
		}
		parts = append(parts, t+" "+s)
	}
	switch {
	case len(parts) == 0:
		return st.Status
	case same != "":
		return same
	}
	return strings.Join(parts, ", ")
}

func printStatus(w io.Writer, st *runStatusResult) {
	fmt.Fprintf(w, "employee  %s", st.EmployeeID)
	if s := accountsState(st); s != "" {
		fmt.Fprintf(w, " (%s)", s)
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
		if st.LastState != "" {
			fmt.Fprintf(w, " (last JmlState %s", st.LastState)
			if st.FailedStep != "" {
				fmt.Fprintf(w, " at %s", st.FailedStep)
			}
			fmt.Fprint(w, ")")
		} else if st.FailedStep != "" {
			fmt.Fprintf(w, " at %s", st.FailedStep)
		}
		fmt.Fprintln(w)
	}
	if len(st.Pending) > 0 {
		fmt.Fprintf(w, "queued    %s\n", strings.Join(st.Pending, ", "))
	}
	for i, target := range slices.Sorted(maps.Keys(st.Accounts)) {
		label := "accounts "
		if i > 0 {
			label = "         "
		}
		fmt.Fprintf(w, "%s %s: %s", label, target, st.Accounts[target])
		if id := st.Identifiers[target]; id != "" {
			fmt.Fprintf(w, " (%s)", id)
		}
		if s := st.AccountStates[target]; s != "" {
			fmt.Fprintf(w, " %s", s)
		}
		fmt.Fprintln(w)
	}
	if st.StepsUnavailable != "" {
		fmt.Fprintf(w, "\nsteps     not available: %s\n", st.StepsUnavailable)
	}
	if shown := workflows.ShownSteps(st.Steps); len(shown) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tACTION\tTARGET\tSTATE\tATTEMPTS\tLAST ERROR")
		for _, s := range shown {
			msg := s.LastError
			if s.Note != "" {
				msg = strings.TrimSpace(msg + " (" + s.Note + ")")
			}
			if d := s.Decision; d != nil {
				msg = strings.TrimSpace(fmt.Sprintf("%s [%s by %s: %s]", msg, d.Update, operatorName(d.Operator), d.Reason))
			}
			state, attempts := s.State, fmt.Sprint(s.Attempts)
			if st.LastState != "" && s.State == workflows.StepRunning {
				// Temporal closed the run (terminate, cancel, timeout)
				// while the step ran: it runs no more.
				state = "stopped (" + strings.ToLower(st.State) + ")"
			}
			for _, p := range st.Retrying {
				switch {
				case p.Step == s.Name && s.State == workflows.StepRunning && p.Paused:
					state, msg = "paused", p.LastError
				case p.Step == s.Name && s.State == workflows.StepRunning && p.Attempt > 1:
					// Temporal retries the step: show its attempt and error.
					state = "retrying"
					msg = p.LastError
					if !p.NextAttempt.IsZero() {
						msg += fmt.Sprintf(" (next attempt %s)", p.NextAttempt.Local().Format(time.TimeOnly))
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Action, s.Target, state, attempts, msg)
		}
		_ = tw.Flush()
	}
	if len(st.LeftInPlace) > 0 {
		fmt.Fprintln(w, "\nleft in place by the abort (keep or undo):")
		for _, l := range st.LeftInPlace {
			fmt.Fprintf(w, "  - %s\n", l)
		}
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\ndecisions:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, d := range st.Decisions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tby %s\t%s\n", d.Time.Local().Format(time.DateTime), d.Update, d.Step, operatorName(d.Operator), d.Reason)
		}
		_ = tw.Flush()
	}
	switch st.State {
	case contract.StateNeedsAttention:
		fmt.Fprintf(w, "\nnext: starter retry %[1]s  |  starter skip %[1]s --step %[2]s  |  starter abort %[1]s\n", st.EmployeeID, st.FailedStep)
	case contract.StateBlocked:
		fmt.Fprintf(w, "\nnext: starter release %[1]s  |  starter abort %[1]s\n", st.EmployeeID)
	}
}

// runList lists runs by state (a visibility query on JmlState).
func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("list", stderr)
	attention := f.fs.Bool("needs-attention", false, "runs with a failed step waiting for an operator (the default)")
	blocked := f.fs.Bool("blocked", false, "runs stopped by the safety limit")
	state := f.fs.String("state", "", "runs in this JmlState (Waiting, Running, NeedsAttention, Blocked, Completed, Aborted), or closed by Temporal (Terminated, Canceled, TimedOut, Failed)")
	limit := f.fs.Int("limit", 200, "at most this many runs")
	count := f.fs.Bool("count", false, "print only how many runs are in the state (all of them, not limited): for an alert's exporter")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: starter list [--needs-attention | --blocked | --state S] [--json] [--limit N] [--count]")
		return 2
	}
	want := contract.StateNeedsAttention
	if *state != "" && !slices.Contains(contract.States, *state) && !slices.Contains(slices.Collect(maps.Values(closedStates)), *state) {
		// A typo would list nothing and read as "no stuck runs".
		fmt.Fprintf(stderr, "starter list: --state %q is not a JmlState nor a closed run's status; one of %s, %s (case matters)\n",
			*state, strings.Join(contract.States, ", "), strings.Join(slices.Sorted(maps.Values(closedStates)), ", "))
		return 2
	}
	switch {
	case *state != "":
		want = *state
	case *blocked && *attention:
		fmt.Fprintln(stderr, "starter list: choose one of --needs-attention and --blocked")
		return 2
	case *blocked:
		want = contract.StateBlocked
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		if *count {
			n, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: listQuery(want)})
			if err != nil {
				fmt.Fprintf(stderr, "starter list: count: %v\n", err)
				return 1
			}
			if *f.jsonOut {
				return printJSON(stdout, map[string]any{"state": want, "count": n.GetCount()})
			}
			fmt.Fprintln(stdout, n.GetCount())
			return 0
		}
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

// listQuery is the visibility query of the lifecycle runs in state.
func listQuery(state string) string {
	// Lifecycle runs only: an identity mirrors its run's state. A run
	// Temporal closed (terminate, cancel, timeout) keeps the JmlState it
	// last set: in-flight states are only those of running executions, and
	// a closed run is listed by its execution status.
	query := fmt.Sprintf("%s = %q AND ExecutionStatus = 'Running'", contract.SAState, state)
	switch state {
	case contract.StateCompleted, contract.StateCompletedWithSkips, contract.StateAborted:
		query = fmt.Sprintf("%s = %q", contract.SAState, state)
	}
	for st, name := range closedStates {
		if name == state {
			query = fmt.Sprintf("ExecutionStatus = %q", titleStatus(st.String()))
		}
	}
	return query + fmt.Sprintf(" AND WorkflowType != %q", contract.IdentityWorkflowName)
}

func listRuns(ctx context.Context, c client.Client, state string, limit int) ([]listedRun, error) {
	query := listQuery(state)
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
			state := keyword(sa, contract.SAState)
			if closed := closedBy(e.GetStatus()); closed != "" {
				state = closed
			}
			runs = append(runs, listedRun{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				RunID:      e.GetExecution().GetRunId(),
				Type:       e.GetType().GetName(),
				EmployeeID: keyword(sa, contract.SAEmployeeID),
				Event:      keyword(sa, contract.SAEvent),
				State:      state,
				FailedStep: keyword(sa, contract.SAFailedStep),
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
	reason := f.fs.String("reason", "", "why, recorded in the run's step table, details and result")
	set := attrFlag{}
	f.fs.Var(set, "set", "corrected attribute for the retry, name=value (repeatable)")
	return stepCommand(ctx, f, args, step, stdout, stderr, "retry EMPLOYEE_ID [--step S] [--set name=value]… [--reason R]",
		workflows.StepFailed, contract.UpdateRetryStep, func(s string) any {
			return workflows.RetryStepRequest{Step: s, Attributes: set.orNil(), Reason: *reason, Operator: *f.as}
		})
}

// runSkip marks the failed step skipped and lets the run go on.
func runSkip(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("skip", stderr)
	step := f.fs.String("step", "", "the failed step to skip (required: skipping is a decision)")
	reason := f.fs.String("reason", "", "why, recorded in the run's step table, details and result")
	cascade := f.fs.Bool("cascade", false, "also skip the later steps that use the skipped step's outputs")
	return stepCommand(ctx, f, args, step, stdout, stderr, "skip EMPLOYEE_ID --step S [--reason R] [--cascade]",
		"", contract.UpdateSkipStep, func(s string) any {
			return workflows.StepRequest{Step: s, Reason: *reason, Operator: *f.as, Cascade: *cascade}
		})
}

// runAbort stops the run (state Aborted); later steps do not run.
func runAbort(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("abort", stderr)
	reason := f.fs.String("reason", "", "why, recorded in the run's step table, details and result")
	rollback := f.fs.Bool("rollback", false, "also disable every account this run created (never deletes)")
	return stepCommand(ctx, f, args, nil, stdout, stderr, "abort EMPLOYEE_ID [--reason R] [--rollback]",
		"", contract.UpdateAbort, func(s string) any {
			return workflows.StepRequest{Step: s, Reason: *reason, Operator: *f.as, Rollback: *rollback}
		})
}

// runRelease lets a run blocked by the safety limit go on.
func runRelease(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("release", stderr)
	step := f.fs.String("step", "", "the blocked step (default: the run's blocked step)")
	reason := f.fs.String("reason", "", "why, recorded in the run's step table, details and result")
	all := f.fs.Bool("all", false, "release every run the safety limit blocked (asks for confirmation)")
	state := f.fs.String("state", contract.StateBlocked, "with --all: the runs' JmlState (only Blocked runs can be released)")
	yes := f.fs.Bool("yes", false, "with --all: do not ask for confirmation")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if *all {
		if len(pos) > 0 || *step != "" || *f.run != "" {
			fmt.Fprintln(stderr, "usage: starter release --all [--state Blocked] [--reason R] [--yes] [--json] (no employee ID, --step or --run)")
			return 2
		}
		if *state != contract.StateBlocked {
			fmt.Fprintf(stderr, "starter release: --state %s: only runs in state Blocked wait for a release\n", *state)
			return 2
		}
		return releaseAll(ctx, *reason, *f.as, *yes, *f.jsonOut, os.Stdin, stdout, stderr)
	}
	return stepCommand(ctx, f, args, step, stdout, stderr, "release EMPLOYEE_ID [--step S] [--reason R] | release --all [--yes]",
		workflows.StepBlocked, contract.UpdateRelease, func(s string) any {
			return workflows.StepRequest{Step: s, Reason: *reason, Operator: *f.as}
		})
}

// releaseAll lists the Blocked runs, asks once, and releases each; a run
// that moved on meanwhile is reported, not an error.
func releaseAll(ctx context.Context, reason, operator string, yes, jsonOut bool, stdin io.Reader, stdout, stderr io.Writer) int {
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		runs, err := listRuns(ctx, c, contract.StateBlocked, 10000)
		if err != nil {
			fmt.Fprintf(stderr, "starter release: %v\n", err)
			return 1
		}
		if len(runs) == 0 {
			fmt.Fprintln(stdout, "no runs in state Blocked")
			return 0
		}
		if !yes {
			fmt.Fprintf(stdout, "%d runs are blocked by the safety limit:\n", len(runs))
			for _, r := range runs {
				fmt.Fprintf(stdout, "  %s  (%s)\n", r.WorkflowID, r.FailedStep)
			}
			fmt.Fprintf(stdout, "Release all %d (their destructive steps run now)? [y/N] ", len(runs))
			answer, _ := bufio.NewReader(stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(stdout, "nothing released")
				return 1
			}
		}
		type released struct {
			WorkflowID string `json:"workflow_id"`
			Answer     string `json:"answer,omitempty"`
			Error      string `json:"error,omitempty"`
		}
		var out []released
		failed := 0
		for _, r := range runs {
			answer, err := sendUpdate(ctx, c, r.WorkflowID, contract.UpdateRelease,
				workflows.StepRequest{Reason: reason, Operator: operator})
			rel := released{WorkflowID: r.WorkflowID, Answer: answer}
			if err != nil {
				rel.Error = err.Error()
				failed++
			}
			out = append(out, rel)
			if !jsonOut {
				if err != nil {
					fmt.Fprintf(stderr, "release %s: %v\n", r.WorkflowID, err)
				} else {
					fmt.Fprintf(stdout, "release %s: %s\n", r.WorkflowID, answer)
				}
			}
		}
		if jsonOut {
			printJSON(stdout, out)
		} else {
			fmt.Fprintf(stdout, "released %d of %d\n", len(runs)-failed, len(runs))
		}
		if failed > 0 {
			return 1
		}
		return 0
	})
}

// sendUpdate sends an operator update and waits for the run's answer.
func sendUpdate(ctx context.Context, c client.Client, workflowID, update string, arg any) (string, error) {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: update, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var answer string
	if err == nil {
		err = h.Get(ctx, &answer)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return "", fmt.Errorf("refused: %s", app.Error())
	}
	return answer, err
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
		answer, err := sendUpdate(ctx, c, st.Run, update, arg(target))
		if err != nil {
			fmt.Fprintf(stderr, "starter %s: %s: %v\n", name, st.Run, err)
			return 1
		}
		res := map[string]string{"employee_id": pos[0], "workflow_id": st.Run, "action": name, "step": target, "answer": answer}
		if *f.jsonOut {
			return printJSON(stdout, res)
		}
		if target != "" {
			fmt.Fprintf(stdout, "%s %s: accepted by %s", name, target, st.Run)
		} else {
			fmt.Fprintf(stdout, "%s: accepted by %s", name, st.Run)
		}
		if answer != "" {
			fmt.Fprintf(stdout, ": %s", answer)
		}
		fmt.Fprintln(stdout)
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

// withClient dials Temporal, runs f with a 30 s deadline and closes the
// client.
func withClient(ctx context.Context, stderr io.Writer, f func(context.Context, client.Client) int) int {
	return withClientTimeout(ctx, stderr, 30*time.Second, f)
}

// withClientTimeout is withClient with the caller's deadline.
func withClientTimeout(ctx context.Context, stderr io.Writer, d time.Duration, f func(context.Context, client.Client) int) int {
	ctx, cancel := context.WithTimeout(ctx, d)
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

// titleStatus turns WORKFLOW_EXECUTION_STATUS_TIMED_OUT into TimedOut, the
// spelling of visibility's ExecutionStatus.
func titleStatus(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(s, "WORKFLOW_EXECUTION_STATUS_"), "_") {
		if w != "" {
			b.WriteString(w[:1] + strings.ToLower(w[1:]))
		}
	}
	return b.String()
}

// closedStates are the ways Temporal closes a run without jml setting its
// final JmlState.
var closedStates = map[enumspb.WorkflowExecutionStatus]string{
	enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED: "Terminated",
	enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:   "Canceled",
	enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:  "TimedOut",
	enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:     "Failed",
}

// closedBy is how Temporal closed a run ("Terminated", …), or "" when the
// run is open or ended on its own.
func closedBy(s enumspb.WorkflowExecutionStatus) string { return closedStates[s] }

func operatorName(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}
