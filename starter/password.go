package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/workflows"
)

const passwordUsage = `usage: starter password status ID [--json]

  ID  a password change, as POST /v1/password-changes answered it (E123/20261122T084500.000Z)
      or its workflow ID (password-sync/E123/…): its state and each account's result
`

// runPassword shows password sync changes (docs/password-sync.md), read
// the way GET /v1/password-changes/{id} reads them.
func runPassword(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "status" {
		if len(args) > 0 && args[0] == "-h" {
			fmt.Fprint(stdout, passwordUsage)
			return 0
		}
		fmt.Fprint(stderr, passwordUsage)
		return 2
	}
	fs := flag.NewFlagSet("password status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "machine-readable JSON output")
	var ids []string
	for args = args[1:]; ; args = fs.Args()[1:] {
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(stderr, "starter password status: %v\n%s", err, passwordUsage)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		ids = append(ids, fs.Arg(0))
	}
	if len(ids) != 1 {
		fmt.Fprint(stderr, passwordUsage)
		return 2
	}
	return withClient(ctx, stderr, func(ctx context.Context, c client.Client) int {
		res, err := workflows.PasswordChangeStatus(ctx, c, ids[0])
		if errors.Is(err, workflows.ErrNoPasswordChange) {
			fmt.Fprintf(stderr, "starter password status: %v\n", err)
			return 2
		}
		if err != nil {
			fmt.Fprintf(stderr, "starter password status: %v\n", err)
			return 1
		}
		if *jsonOut {
			return printJSON(stdout, res)
		}
		printPasswordStatus(stdout, ids[0], res)
		return 0
	})
}

func printPasswordStatus(w io.Writer, id string, res workflows.PasswordSyncResult) {
	fmt.Fprintf(w, "Password change %s (employee %s, group %s): %s\n", id, res.EmployeeID, orDash(res.Group), res.State)
	if res.Message != "" {
		fmt.Fprintf(w, "  %s\n", res.Message)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(w, "  rule %s: %s\n", f.Rule, f.Message)
	}
	if len(res.Targets) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tACCOUNT\tRESULT\tDETAIL")
	for _, t := range res.Targets {
		target := t.Target
		if t.Auth {
			target += " (auth)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", target, orDash(t.AccountID), t.Outcome, strings.ReplaceAll(t.Error, "\n", " "))
	}
	_ = tw.Flush()
}
