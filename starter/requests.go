package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// runRequest starts an access request: starter request EMPLOYEE_ID
// --grant group:NAME@TARGET --for 8h --reason R.
func runRequest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("request", stderr)
	grant := f.fs.String("grant", "", "what is asked: group:NAME@TARGET")
	dur := f.fs.String("for", "", "how long, e.g. 8h or 3d")
	reason := f.fs.String("reason", "", "why (shown to the approvers)")
	id := f.fs.String("id", "", "the request's ID (default: a random one)")
	policyPath := f.fs.String("policy", os.Getenv("JML_POLICY"), "policy file: what is requestable, the longest grant (env JML_POLICY)")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: starter request EMPLOYEE_ID --grant group:NAME@TARGET --for 8h --reason R [--as REQUESTER]")
		return 2
	}
	if *policyPath == "" {
		fmt.Fprintln(stderr, "starter request: --policy (or JML_POLICY) is required: it says what may be requested")
		return 2
	}
	p, err := policy.Load(*policyPath)
	if err != nil {
		fmt.Fprintf(stderr, "starter request: %v\n", err)
		return 2
	}
	req, err := intake.ParseRequest(intake.RequestBody{ID: *id, EmployeeID: pos[0], Grant: *grant, For: *dur, Reason: *reason, Requester: *f.as})
	if err != nil {
		fmt.Fprintf(stderr, "starter request: %v\n", err)
		return 2
	}
	opts, err := temporalenv.Options(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "starter request: %v\n", err)
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		dir := activities.TemporalDirectory{Client: c, DataConverter: opts.DataConverter}
		wid, err := intake.StartRequest(ctx, c, p, dir, *id, req)
		var re *activities.RequestError
		var conflict *intake.ConflictError
		switch {
		case errors.As(err, &re):
			fmt.Fprintf(stderr, "starter request: refused: %v (nothing started)\n", re)
			return 1
		case errors.As(err, &conflict):
			fmt.Fprintf(stderr, "starter request: %s exists (nothing started)\n", conflict.WorkflowID)
			return 1
		case err != nil:
			fmt.Fprintf(stderr, "starter request: %v\n", err)
			return 1
		}
		rid, _ := contract.RequestIDOf(wid)
		if *f.jsonOut {
			return printJSON(stdout, map[string]string{"request_id": rid, "workflow_id": wid})
		}
		fmt.Fprintf(stdout, "request %s started (%s): waiting for approval; see starter status %s\n", rid, wid, wid)
		return 0
	})
}

// runRequests lists the open requests and the grants in force.
func runRequests(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newOpFlags("requests", stderr)
	if _, err := f.parse(args); err != nil {
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		list, err := openRequests(ctx, c)
		if err != nil {
			fmt.Fprintf(stderr, "starter requests: %v\n", err)
			return 1
		}
		if *f.jsonOut {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REQUEST\tEMPLOYEE\tGRANT\tSTATE\tASKED / UNTIL\tREQUESTER")
		for _, st := range list {
			when := approverList(st.Asked)
			if !st.Until.IsZero() {
				when = "until " + st.Until.UTC().Format(time.RFC3339)
				switch {
				case st.Review != "":
					when += " (asked again after a move: " + approverList(st.Asked) + ")"
				case st.Extending:
					when += " (extension asked)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\tgroup:%s@%s\t%s\t%s\t%s\n", st.ID, st.EmployeeID, st.Group, st.Target, st.State, when, st.Requester)
		}
		_ = tw.Flush()
		return 0
	})
}

func approverList(aps []activities.Approver) string {
	var s []string
	for _, ap := range aps {
		s = append(s, ap.String())
	}
	return strings.Join(s, ", ")
}

// openRequests are the running access requests, each as it answers.
func openRequests(ctx context.Context, c client.Client) ([]workflows.RequestStatus, error) {
	out := []workflows.RequestStatus{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:    fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.AccessRequestWorkflowName),
			PageSize: 500, NextPageToken: token,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			st, err := requestStatus(ctx, c, e.GetExecution().GetWorkflowId())
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

func requestStatus(ctx context.Context, c client.Client, wid string) (workflows.RequestStatus, error) {
	var st workflows.RequestStatus
	v, err := c.QueryWorkflow(ctx, wid, "", contract.QueryRequest)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		return st, fmt.Errorf("%s: %w", wid, err)
	}
	return st, nil
}

// printRequest is `starter status request/ID`.
func printRequest(w io.Writer, st workflows.RequestStatus) {
	fmt.Fprintf(w, "request   %s\nperson    %s\ngrant     group:%s@%s for %s\nreason    %s\nrequester %s\nstate     %s %s\n",
		st.ID, st.EmployeeID, st.Group, st.Target, st.For, st.Reason, st.Requester, st.State, st.Outcome)
	if st.Review != "" {
		fmt.Fprintf(w, "review    asked again because the person %s\n", st.Review)
	}
	if st.State == contract.StateWaiting || st.Extending || st.Review != "" {
		fmt.Fprintf(w, "waiting   for %d of %d approvals (round %d) from %s, until %s\n", st.Quorum-st.Approvals, st.Quorum, st.Round,
			approverList(st.Asked), st.Deadline.UTC().Format(time.RFC3339))
	}
	if !st.Until.IsZero() {
		fmt.Fprintf(w, "granted   %s until %s\n", st.GrantedAt.UTC().Format(time.RFC3339), st.Until.UTC().Format(time.RFC3339))
	}
	if st.Note != "" {
		fmt.Fprintf(w, "note      %s\n", st.Note)
	}
	for _, d := range st.Decisions {
		verb := "denied"
		switch {
		case d.Via == "extend":
			verb = "asked"
		case d.Approve:
			verb = "approved"
		}
		fmt.Fprintf(w, "decision  %s %s by %s via %s: %s\n", d.Time.UTC().Format(time.RFC3339), verb, d.Approver, d.Via, d.Reason)
	}
}

// requestCommand sends one update to request ID.
func requestCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer,
	extra func(f opFlags) func() (string, any, error)) int {
	f := newOpFlags(name, stderr)
	reason := f.fs.String("reason", "", "why (recorded in the run)")
	build := extra(f)
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: starter %s REQUEST_ID --reason R [--as NAME]\n", name)
		return 2
	}
	if strings.TrimSpace(*reason) == "" {
		fmt.Fprintf(stderr, "starter %s: --reason is required\n", name)
		return 2
	}
	update, arg, err := build()
	if err != nil {
		fmt.Fprintf(stderr, "starter %s: %v\n", name, err)
		return 2
	}
	setReason(arg, *reason)
	wid := requestWorkflowID(pos[0])
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		answer, err := sendUpdate(ctx, c, wid, update, arg)
		if err != nil {
			fmt.Fprintf(stderr, "starter %s: %s: %v\n", name, wid, err)
			return 1
		}
		if *f.jsonOut {
			return printJSON(stdout, map[string]string{"workflow_id": wid, "action": name, "answer": answer})
		}
		fmt.Fprintf(stdout, "%s: accepted by %s: %s\n", name, wid, answer)
		return 0
	})
}

func setReason(arg any, reason string) {
	switch a := arg.(type) {
	case *workflows.ApprovalDecision:
		a.Reason = reason
	case *workflows.ExtendRequest:
		a.Reason = reason
	case *workflows.RevokeRequest:
		a.Reason = reason
	}
}

func decideCommand(approve bool) func(context.Context, []string, io.Writer, io.Writer) int {
	name := "deny"
	if approve {
		name = "approve"
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return requestCommand(ctx, name, args, stdout, stderr, func(f opFlags) func() (string, any, error) {
			return func() (string, any, error) {
				return contract.UpdateDecide, &workflows.ApprovalDecision{Approver: *f.as, Approve: approve, Via: "cli"}, nil
			}
		})
	}
}

func runExtend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return requestCommand(ctx, "extend", args, stdout, stderr, func(f opFlags) func() (string, any, error) {
		dur := f.fs.String("for", "", "how much longer, e.g. 4h (a new approval)")
		return func() (string, any, error) {
			if *dur == "" {
				return "", nil, errors.New("--for is required")
			}
			return contract.UpdateExtend, &workflows.ExtendRequest{For: *dur, Requester: *f.as}, nil
		}
	})
}

func runRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return requestCommand(ctx, "revoke", args, stdout, stderr, func(f opFlags) func() (string, any, error) {
		return func() (string, any, error) {
			return contract.UpdateRevoke, &workflows.RevokeRequest{Operator: *f.as}, nil
		}
	})
}

// requestWorkflowID is the workflow an ID names: request/<id>, or an
// approval step's approval/<run>/<step> as given.
func requestWorkflowID(id string) string {
	if strings.HasPrefix(id, approvalPrefix) {
		return id
	}
	return contract.RequestWorkflowID(id)
}

const approvalPrefix = contract.EventApproval + "/"
