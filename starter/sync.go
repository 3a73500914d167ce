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
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

const syncUsage = `usage: starter sync EMPLOYEE_ID... [--json] [--timeout 2m]
       starter sync --all

  EMPLOYEE_ID...  sync these people's accounts now and print what changed
  --all           trigger the scheduled full attribute sync now (returns at once)
`

// runSync is the manual attribute sync: "you don't want to wait for the
// next scheduled sync". It runs the AttributeSync workflow for the given
// identities and waits for its result.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "machine-readable JSON output")
	all := fs.Bool("all", false, "trigger the scheduled full sync now")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the result")
	var ids []string
	for {
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(stderr, "starter sync: %v\n%s", err, syncUsage)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		ids = append(ids, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *all != (len(ids) == 0) {
		fmt.Fprint(stderr, syncUsage)
		return 2
	}
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, " \t\n/") {
			fmt.Fprintf(stderr, "starter sync: employee ID %q: want a non-empty ID without spaces or slashes\n", id)
			return 2
		}
	}
	return withClientTimeout(ctx, stderr, *timeout, func(ctx context.Context, c client.Client) int {
		if *all {
			err := c.ScheduleClient().GetHandle(ctx, contract.AttributeSyncScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{
				Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
			})
			if err != nil {
				fmt.Fprintf(stderr, "starter sync: trigger schedule %s: %v (is attribute_sync.every set in the policy?)\n", contract.AttributeSyncScheduleID, err)
				return 1
			}
			fmt.Fprintf(stdout, "Triggered %s: a full attribute sync starts now (skipped if one is running).\n", contract.AttributeSyncScheduleID)
			return 0
		}

		out, err := syncNow(ctx, c, ids)
		if err != nil {
			fmt.Fprintf(stderr, "starter sync: %v\n", err)
			return 1
		}
		if *jsonOut {
			if printJSON(stdout, out) != 0 {
				return 1
			}
		} else {
			printSync(stdout, out)
		}
		if out.Result.Failures > 0 {
			return 1
		}
		return 0
	})
}

// syncOutput is what `sync` prints.
type syncOutput struct {
	WorkflowID  string                        `json:"workflow_id"`
	EmployeeIDs []string                      `json:"employee_ids"`
	Result      workflows.AttributeSyncResult `json:"result"`
}

func syncNow(ctx context.Context, c client.Client, ids []string) (syncOutput, error) {
	out := syncOutput{WorkflowID: contract.ManualSyncWorkflowID(ids[0], time.Now()), EmployeeIDs: ids}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: out.WorkflowID, TaskQueue: contract.TaskQueue, StaticSummary: "manual attribute sync",
	}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{EmployeeIDs: ids})
	if err != nil {
		return out, fmt.Errorf("start: %w", err)
	}
	if err := run.Get(ctx, &out.Result); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return out, fmt.Errorf("no result yet from %s (is a worker running?); it continues in the background", out.WorkflowID)
		}
		return out, fmt.Errorf("%s: %w", out.WorkflowID, err)
	}
	out.Result.Guard = nil // internal to scheduled runs
	return out, nil
}

func printSync(w io.Writer, out syncOutput) {
	r := out.Result
	fmt.Fprintf(w, "Attribute sync of %s (workflow %s)\n", strings.Join(out.EmployeeIDs, ", "), out.WorkflowID)
	for _, t := range slices.Sorted(maps.Keys(r.Targets)) {
		c := r.Targets[t]
		fmt.Fprintf(w, "  %-12s checked %d, accounts changed %d, attributes written %d, failures %d, skipped %d, no account %d\n",
			t, c.IdentitiesChecked, c.AccountsChanged, c.AttributesWritten, c.Failures, c.Skipped, c.Unmatched)
	}
	groups := 0
	for _, t := range slices.Sorted(maps.Keys(r.Reconcile)) {
		c := r.Reconcile[t].Counts
		groups += c.Writes
		if c.Added+c.Removed+c.Failures > 0 {
			fmt.Fprintf(w, "  %-12s managed groups: %d added, %d removed, %d failures\n", t, c.Added, c.Removed, c.Failures)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  ! %s %s: %s", p.Target, p.EmployeeID, p.Error)
		if len(p.Attributes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(p.Attributes, ", "))
		}
		fmt.Fprintln(w)
	}
	if r.AttributesWritten == 0 && r.Failures == 0 && groups == 0 {
		fmt.Fprintln(w, "Already in sync: nothing written.")
	}
}
