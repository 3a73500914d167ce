package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/internal/temporalenv"
)

// The Temporal operations the docs need, each one client call, so an
// operator needs no Temporal CLI next to starter: the namespace and search
// attributes (setup), terminating a run, and pausing, unpausing or
// resetting a step Temporal is retrying.

// runSetup creates the namespace (TEMPORAL_NAMESPACE) when it is missing
// and registers jml's search attributes: what docker-compose's setup job
// does, for a cluster set up by hand. Idempotent.
func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	retention := fs.Duration("retention", 72*time.Hour, "history retention of a namespace this creates (an existing one is left as it is)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *retention < 24*time.Hour {
		fmt.Fprintln(stderr, "usage: starter setup [--retention 72h] (at least 24h; the namespace is TEMPORAL_NAMESPACE)")
		return 2
	}
	o, err := temporalenv.Options(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "starter setup: %v\n", err)
		return 2
	}
	return withClientTimeout(ctx, stderr, 2*time.Minute, func(ctx context.Context, c client.Client) int {
		ns := o.Namespace
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		var nf *serviceerror.NamespaceNotFound
		switch {
		case errors.As(err, &nf):
			_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
				Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(*retention)})
			var exists *serviceerror.NamespaceAlreadyExists
			if err != nil && !errors.As(err, &exists) {
				fmt.Fprintf(stderr, "starter setup: create namespace %s: %v\n", ns, err)
				return 1
			}
			fmt.Fprintf(stdout, "namespace %s created (retention %s)\n", ns, *retention)
		case err != nil:
			fmt.Fprintf(stderr, "starter setup: describe namespace %s: %v\n", ns, err)
			return 1
		default:
			fmt.Fprintf(stdout, "namespace %s exists\n", ns)
		}
		// A new namespace reaches every frontend's cache within seconds;
		// until then registering its attributes is refused as not found.
		for {
			added, err := temporalenv.EnsureSearchAttributes(ctx, c.OperatorService(), ns)
			if errors.As(err, &nf) || isNotFound(err) {
				select {
				case <-ctx.Done():
					fmt.Fprintf(stderr, "starter setup: namespace %s not ready: %v\n", ns, err)
					return 1
				case <-time.After(time.Second):
					continue
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "starter setup: %v\n", err)
				return 1
			}
			if len(added) > 0 {
				fmt.Fprintf(stdout, "search attributes registered: %s\n", strings.Join(added, ", "))
			} else {
				fmt.Fprintln(stdout, "search attributes present")
			}
			return 0
		}
	})
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// runTerminate ends a person's run at once, without running anything
// more: Temporal's terminate, with the reason and the operator recorded in
// the history. jml's own `abort` (which says what the run left in place)
// is the usual way; terminate is for a run that cannot take an update.
func runTerminate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("terminate", stderr)
	reason := f.fs.String("reason", "", "why (required), recorded in the run's history with the operator")
	db := f.fs.String("audit-db", os.Getenv("JML_AUDIT_DB"), "audit store the termination is recorded in first (default: the dev worker's $JML_DATA_DIR/audit.db when it exists)")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(stderr, "usage: starter terminate EMPLOYEE_ID --reason R [--run WORKFLOW_ID] [--audit-db DSN]")
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		wid, err := targetRun(ctx, c, pos[0], *f.run)
		if err != nil {
			fmt.Fprintf(stderr, "starter terminate: %v\n", err)
			return 1
		}
		d, err := c.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			fmt.Fprintf(stderr, "starter terminate: %s: %v\n", wid, err)
			return 1
		}
		runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		// The run records nothing of its own termination: the audit
		// trail gets it here, before, or the run is not terminated.
		if dsn, ok := auditDSN(*db); ok {
			if err := recordTerminate(ctx, dsn, audit.Record{Key: wid + "/" + runID + "/terminate", Time: time.Now().UTC(),
				EmployeeID: pos[0], Action: audit.OperatorTerminate, WorkflowID: wid, RunID: runID,
				Actor: *f.as, Reason: *reason, Detail: "terminated through Temporal"}); err != nil {
				fmt.Fprintf(stderr, "starter terminate: %s: not terminated: the audit store did not take the record: %v\n", wid, err)
				return 1
			}
		} else {
			fmt.Fprintf(stderr, "starter terminate: no audit store (--audit-db or JML_AUDIT_DB): the run's history alone records this\n")
		}
		if err := c.TerminateWorkflow(ctx, wid, runID, fmt.Sprintf("%s (by %s)", *reason, *f.as)); err != nil {
			fmt.Fprintf(stderr, "starter terminate: %s: %v\n", wid, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s terminated\n", wid)
		return 0
	})
}

// recordTerminate appends r to the audit store dsn.
func recordTerminate(ctx context.Context, dsn string, r audit.Record) error {
	st, err := auditdb.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("%s: %w", auditdb.Redact(dsn), err)
	}
	defer st.Close()
	_, err = st.Append(ctx, []audit.Record{r})
	return err
}

// runActivity pauses, unpauses or resets the attempt of a step Temporal is
// retrying (server ≥ 1.28): a paused step makes no more attempts until
// unpaused; reset starts its attempts (and backoff) from 1.
func runActivity(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const use = "usage: starter activity pause|unpause|reset EMPLOYEE_ID --step S [--reason R] [--run WORKFLOW_ID]"
	if len(args) == 0 || args[0] != "pause" && args[0] != "unpause" && args[0] != "reset" {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprintln(stdout, use)
			return 0
		}
		fmt.Fprintln(stderr, use)
		return 2
	}
	op := args[0]
	f := newOpFlags("activity "+op, stderr)
	step := f.fs.String("step", "", "the step Temporal is retrying (required), e.g. okta.sync_identity")
	reason := f.fs.String("reason", "", "why, recorded with the pause")
	pos, err := f.parse(args[1:])
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *step == "" {
		fmt.Fprintln(stderr, use)
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		run, err := targetRun(ctx, c, pos[0], *f.run)
		if err != nil {
			fmt.Fprintf(stderr, "starter activity: %v\n", err)
			return 1
		}
		id, attempt, err := pendingActivity(ctx, c, run, *step)
		if err != nil {
			fmt.Fprintf(stderr, "starter activity: %v\n", err)
			return 1
		}
		ns := namespaceOf()
		exec := &commonpb.WorkflowExecution{WorkflowId: run}
		who := *f.as
		switch op {
		case "pause":
			_, err = c.WorkflowService().PauseActivity(ctx, &workflowservice.PauseActivityRequest{Namespace: ns, Execution: exec,
				Identity: who, Activity: &workflowservice.PauseActivityRequest_Id{Id: id}, Reason: *reason, RequestId: uuid.NewString()})
		case "unpause":
			_, err = c.WorkflowService().UnpauseActivity(ctx, &workflowservice.UnpauseActivityRequest{Namespace: ns, Execution: exec,
				Identity: who, Activity: &workflowservice.UnpauseActivityRequest_Id{Id: id}})
		case "reset":
			_, err = c.WorkflowService().ResetActivity(ctx, &workflowservice.ResetActivityRequest{Namespace: ns, Execution: exec,
				Identity: who, Activity: &workflowservice.ResetActivityRequest_Id{Id: id}})
		}
		if err != nil {
			fmt.Fprintf(stderr, "starter activity %s: %s %s: %v\n", op, run, id, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: step %s (activity %s) %s\n", run, *step, id, map[string]string{"pause": "paused", "unpause": "unpaused", "reset": "reset"}[op])
		if op == "reset" && attempt > 1 {
			// Temporal keeps no record of the attempts before a reset: the
			// run's history never had them, so status counts from here.
			fmt.Fprintf(stdout, "attempts start again at 1; the %d before the reset are not in the run's history and no longer count in status's ATTEMPTS\n", attempt)
		}
		return 0
	})
}

// targetRun is the lifecycle run to act on: run when given, else the
// person's current run.
func targetRun(ctx context.Context, c client.Client, employeeID, run string) (string, error) {
	if run != "" {
		return run, nil
	}
	cur, err := current(ctx, c, employeeID)
	if err != nil {
		return "", err
	}
	if cur.WorkflowID == "" {
		return "", fmt.Errorf("employee %s has no run in progress (last: %s)", employeeID, or(cur.LastRun, "none"))
	}
	return cur.WorkflowID, nil
}

// pendingActivity is the ID of the step's activity Temporal holds as
// pending in run (<step> or <step>#<n>).
func pendingActivity(ctx context.Context, c client.Client, run, step string) (id string, attempt int32, err error) {
	d, err := c.DescribeWorkflowExecution(ctx, run, "")
	if err != nil {
		return "", 0, fmt.Errorf("describe %s: %w", run, err)
	}
	var ids []string
	for _, pa := range d.GetPendingActivities() {
		ids = append(ids, pa.GetActivityId())
		if stepOf(pa.GetActivityId()) == step {
			return pa.GetActivityId(), pa.GetAttempt(), nil
		}
	}
	return "", 0, fmt.Errorf("%s: step %s is not being run or retried (pending: %s)", run, step, or(strings.Join(ids, ", "), "none"))
}

func namespaceOf() string {
	o, err := temporalenv.Options(os.Getenv)
	if err != nil {
		return "default"
	}
	return o.Namespace
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
