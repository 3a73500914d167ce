package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

const reconcileUsage = `usage: starter reconcile report [--target T] [--json|--csv] [--run WORKFLOW_ID]
       starter reconcile release|abort [--target T] [--run WORKFLOW_ID] [--reason R] [--as NAME]

  report    orphans, leftovers and disputed accounts, and the group drift, of the
            last completed scheduled attribute sync (or of --run)
  release   make the changes a running sync holds for an operator (mass removal, safety limit)
  abort     keep things as they are: the held changes are not made this cycle
`

// runReconcile is `starter reconcile`.
func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains([]string{"report", "release", "abort"}, args[0]) {
		fmt.Fprint(stderr, reconcileUsage)
		return 2
	}
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	target := fs.String("target", "", "only this target")
	jsonOut := fs.Bool("json", false, "JSON output")
	csvOut := fs.Bool("csv", false, "CSV output (the accounts)")
	runID := fs.String("run", "", "attribute sync workflow ID")
	reason := fs.String("reason", "", "release/abort: why, recorded in the run")
	as := fs.String("as", defaultOperator(), "release/abort: who decides (default $USER@host)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *jsonOut && *csvOut {
		fmt.Fprintf(stderr, "starter reconcile: bad arguments\n%s", reconcileUsage)
		return 2
	}
	if args[0] != "report" {
		update := contract.UpdateRelease
		if args[0] == "abort" {
			update = contract.UpdateAbort
		}
		return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
			req := workflows.StepRequest{Step: *target, Reason: *reason, Operator: *as}
			return decideReconcile(ctx, c, update, *runID, req, stdout, stderr)
		})
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		rep, err := reconcileReport(ctx, c, *runID)
		if err != nil {
			fmt.Fprintf(stderr, "starter reconcile report: %v\n", err)
			return 1
		}
		if *target != "" {
			r, ok := rep.Targets[*target]
			if !ok {
				fmt.Fprintf(stderr, "starter reconcile report: target %q was not reconciled by %s (reconciled: %s)\n",
					*target, rep.WorkflowID, strings.Join(slices.Sorted(maps.Keys(rep.Targets)), ", "))
				return 1
			}
			rep.Targets = map[string]activities.ReconcileResult{*target: r}
		}
		switch {
		case *jsonOut:
			return printJSON(stdout, rep)
		case *csvOut:
			return printReconcileCSV(stdout, rep)
		}
		printReconcile(stdout, rep)
		return 0
	})
}

// reconcileReportOut is what `reconcile report --json` prints.
type reconcileReportOut struct {
	WorkflowID string                                `json:"workflow_id"`
	Targets    map[string]activities.ReconcileResult `json:"targets"`
}

// reconcileReport reads the result of run, or of the last completed
// scheduled attribute sync.
func reconcileReport(ctx context.Context, c client.Client, run string) (reconcileReportOut, error) {
	if run == "" {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", contract.AttributeSyncWorkflowName),
		})
		if err != nil {
			return reconcileReportOut{}, fmt.Errorf("list attribute syncs: %w", err)
		}
		var last int64
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if strings.HasPrefix(id, contract.AttributeSyncScheduleID) && e.GetCloseTime().AsTime().UnixNano() > last {
				run, last = id, e.GetCloseTime().AsTime().UnixNano()
			}
		}
		if run == "" {
			return reconcileReportOut{}, fmt.Errorf("no completed scheduled attribute sync yet (starter sync --all runs one; reconciliation needs a reconcile block in the policy)")
		}
	}
	var res workflows.AttributeSyncResult
	if err := c.GetWorkflow(ctx, run, "").Get(ctx, &res); err != nil {
		return reconcileReportOut{}, fmt.Errorf("%s: %w", run, err)
	}
	if len(res.Reconcile) == 0 {
		return reconcileReportOut{}, fmt.Errorf("%s reconciled no target: add a reconcile block to the policy", run)
	}
	return reconcileReportOut{WorkflowID: run, Targets: res.Reconcile}, nil
}

func printReconcile(w io.Writer, rep reconcileReportOut) {
	fmt.Fprintf(w, "Reconciliation of %s\n", rep.WorkflowID)
	for _, t := range slices.Sorted(maps.Keys(rep.Targets)) {
		r := rep.Targets[t]
		c := r.Counts
		fmt.Fprintf(w, "\n%s: %d accounts read (%d linked, %d of them with a run in flight; %d orphans, %d leftovers, %d disputed, %d protected, %d deprovisioned)\n",
			t, c.AccountsRead, c.Linked, c.InFlight, c.Orphans, c.Leftovers, c.Disputed, c.Protected, c.Deprovisioned)
		fmt.Fprintf(w, "  group drift: %d missing (%d added), %d no longer due (%d removed); %d disabled; %d held for an operator; %d failures; %d reads, %d writes\n",
			c.MissingFound, c.Added, c.ExtraFound, c.Removed, c.LeftoversDisabled+c.OrphansDisabled, c.Blocked, c.Failures, c.Reads, c.Writes)
		for _, b := range r.Blocked {
			fmt.Fprintf(w, "  held: %s, %d of %d members to remove\n", b.Group, b.Remove, b.Members)
		}
		if len(r.Accounts) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  SITUATION\tACCOUNT\tIDENTIFIER\tACTIVE\tPEOPLE\tACTION")
			for _, a := range sortedAccounts(r.Accounts) {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%t\t%s\t%s\n", a.Situation, a.AccountID, a.Identifier, a.Active, strings.Join(a.EmployeeIDs, " "), a.Action)
			}
			_ = tw.Flush()
		}
		if listed := len(r.Accounts); listed < c.Orphans+c.Leftovers+c.Disputed {
			fmt.Fprintf(w, "  (%d of %d accounts listed)\n", listed, c.Orphans+c.Leftovers+c.Disputed)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  ! %s %s\n", p.EmployeeID, p.Error)
		}
	}
}

func printReconcileCSV(w io.Writer, rep reconcileReportOut) int {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"target", "situation", "account_id", "identifier", "active", "employee_ids", "action"})
	for _, t := range slices.Sorted(maps.Keys(rep.Targets)) {
		for _, a := range sortedAccounts(rep.Targets[t].Accounts) {
			_ = cw.Write([]string{t, a.Situation, a.AccountID, a.Identifier, strconv.FormatBool(a.Active), strings.Join(a.EmployeeIDs, " "), a.Action})
		}
	}
	cw.Flush()
	if cw.Error() != nil {
		return 1
	}
	return 0
}

func sortedAccounts(in []activities.ReconcileAccount) []activities.ReconcileAccount {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b activities.ReconcileAccount) int {
		return strings.Compare(a.Situation+"\x00"+a.Identifier+"\x00"+a.AccountID, b.Situation+"\x00"+b.Identifier+"\x00"+b.AccountID)
	})
	return out
}

// decideReconcile sends Release or Abort to the blocked attribute sync
// (run, or the one running).
func decideReconcile(ctx context.Context, c client.Client, update, run string, req workflows.StepRequest, stdout, stderr io.Writer) int {
	if run == "" {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.AttributeSyncWorkflowName),
		})
		if err != nil {
			fmt.Fprintf(stderr, "starter reconcile: list attribute syncs: %v\n", err)
			return 1
		}
		var ids []string
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if len(ids) != 1 {
			fmt.Fprintf(stderr, "starter reconcile: %d attribute syncs running (%s): name one with --run\n", len(ids), strings.Join(ids, ", "))
			return 1
		}
		run = ids[0]
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run, UpdateName: update,
		Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "starter reconcile: %s %s: %v\n", strings.ToLower(update), run, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s sent\n", run, update)
	return 0
}
