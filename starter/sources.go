package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

const sourcesUsage = `usage: starter sources [--json]                 every source: state, last poll, cursor, events emitted, last error
       starter sources poll NAME [--full] [--json]  poll now and print the result (--full: read the whole source)
       starter sources release NAME [--digest D] [--reason R]  apply a Blocked poll (its leavers run; re-read and judged again without --digest)
       starter sources discard NAME --digest D [--reason R]    refuse a Blocked poll's terminations (hires and changes go on)
`

// runSources is the operator view of the policy's sources of identity
// (docs/sources.md).
func runSources(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("sources", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "machine-readable JSON output")
	digest := fs.String("digest", "", "the Blocked poll's digest (as shown): the decision applies to that poll only")
	reason := fs.String("reason", "", "why (kept in the poller's history)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the poll")
	full := fs.Bool("full", false, "poll: read the whole source, not only the changes (okta: finds deleted users)")
	var name string
	if verb != "list" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(stderr, sourcesUsage)
			return 2
		}
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "starter sources: bad arguments\n%s", sourcesUsage)
		return 2
	}
	if verb == "discard" && *digest == "" {
		// Discarding blind could refuse terminations nobody looked at.
		fmt.Fprintf(stderr, "starter sources discard: --digest is required (the Blocked poll's digest, from starter sources)\n%s", sourcesUsage)
		return 2
	}
	update := map[string]string{"poll": contract.UpdateSourcePoll, "release": contract.UpdateSourceRelease, "discard": contract.UpdateSourceDiscard}[verb]
	if verb != "list" && update == "" {
		fmt.Fprintf(stderr, "starter sources: unknown verb %q\n%s", verb, sourcesUsage)
		return 2
	}
	return withClientTimeout(ctx, stderr, *timeout, func(ctx context.Context, c client.Client) int {
		var out []workflows.SourceStatus
		var err error
		if verb == "list" {
			out, err = listSources(ctx, c)
		} else {
			var st workflows.SourceStatus
			args := []any{workflows.SourcePollRequest{Full: *full}}
			if verb != "poll" {
				args = []any{workflows.SourceDecision{Digest: *digest, Reason: *reason}}
			}
			st, err = updateSource(ctx, c, name, update, args...)
			out = []workflows.SourceStatus{st}
		}
		if err != nil {
			fmt.Fprintf(stderr, "starter sources: %v\n", err)
			var app *temporal.ApplicationError
			if errors.As(err, &app) {
				return 2 // the poller refused: not blocked, wrong digest
			}
			return 1
		}
		if *jsonOut {
			return printJSON(stdout, out)
		}
		printSources(stdout, out)
		return 0
	})
}

// listSources reads every running poller's status.
func listSources(ctx context.Context, c client.Client) ([]workflows.SourceStatus, error) {
	var out []workflows.SourceStatus
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.SourcePollerWorkflowName),
			NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list source pollers: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			st, err := sourceStatus(ctx, c, id)
			if err != nil {
				name, _ := contract.SourceNameOf(id)
				st = workflows.SourceStatus{Source: name, LastError: "status: " + err.Error()}
			}
			out = append(out, st)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b workflows.SourceStatus) int { return strings.Compare(a.Source, b.Source) })
	return out, nil
}

func sourceStatus(ctx context.Context, c client.Client, workflowID string) (workflows.SourceStatus, error) {
	var st workflows.SourceStatus
	v, err := c.QueryWorkflow(ctx, workflowID, "", contract.QuerySourceStatus)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

// updateSource sends a poller update and waits for its result. A poller
// continues as new after each poll: an update that meets the hand-over is
// sent again.
func updateSource(ctx context.Context, c client.Client, name, update string, args ...any) (workflows.SourceStatus, error) {
	var st workflows.SourceStatus
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var h client.WorkflowUpdateHandle
		h, err = c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: contract.SourceWorkflowID(name), UpdateName: update, Args: args,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, &st)
		}
		var app *temporal.ApplicationError
		if err == nil || errors.As(err, &app) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		return st, fmt.Errorf("source %s: %s: %w", name, update, err)
	}
	return st, nil
}

func printSources(w io.Writer, list []workflows.SourceStatus) {
	if len(list) == 0 {
		fmt.Fprintln(w, "No source pollers running (the worker starts one for each source of its policy).")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSTATE\tLAST POLL\tCURSOR\tPEOPLE\tEMITTED\tLAST ERROR")
	for _, s := range list {
		var em []string
		for _, k := range slices.Sorted(maps.Keys(s.Emitted)) {
			em = append(em, fmt.Sprintf("%s=%d", k, s.Emitted[k]))
		}
		last := "never"
		if !s.LastPoll.IsZero() {
			last = s.LastPoll.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Source, s.State, last, dash(s.Cursor), s.People, dash(strings.Join(em, " ")), dash(s.LastError))
	}
	_ = tw.Flush()
	for _, s := range list {
		if b := s.Blocked; b != nil {
			fmt.Fprintf(w, "\n%s is Blocked: the poll would terminate %d of %d people (%.1f %% > %.1f %%), e.g. %s.\n  starter sources release %s --digest %s   # the leavers run\n  starter sources discard %s --digest %s   # nothing runs\n",
				s.Source, b.Terminate, b.Known, b.Percent, b.Limit, strings.Join(b.Terminated, ", "), s.Source, b.Digest, s.Source, b.Digest)
		}
		if len(s.Problems) > 0 {
			fmt.Fprintf(w, "\n%s, last poll's problems:\n", s.Source)
			for _, p := range s.Problems {
				fmt.Fprintf(w, "  - %s\n", p)
			}
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
