package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"text/tabwriter"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/targets"
)

const targetsUsage = `usage: starter targets check --policy POLICY.yaml [--json] [--write-probe]

Probes every account target of the policy (credentials from the environment
variables it names): discovery, a lookup, the group endpoints and filters the
connector relies on — reads only. With --write-probe it also creates, changes
and deletes a probe user and group named jml-probe-….

Prints the capability table: what works, what the connector falls back from,
what is missing and why. Exit status: 0 all the policy's steps can run, 1 a
step needs a missing capability (or a target is unreachable), 2 bad usage or
an invalid policy.
`

// runTargets is `starter targets check`.
func runTargets(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, targetsUsage)
		return 0
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, targetsUsage)
		return 2
	}
	fs := flag.NewFlagSet("targets check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", os.Getenv("JML_POLICY"), "policy file (YAML)")
	asJSON := fs.Bool("json", false, "print JSON for machines")
	write := fs.Bool("write-probe", false, "also create, change and delete a probe user and group (jml-probe-…)")
	help := fs.Bool("help", false, "print usage")
	fs.Usage = func() { fmt.Fprint(stderr, targetsUsage) }
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *help {
		fmt.Fprint(stdout, targetsUsage)
		return 0
	}
	if *policyPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	p, err := policy.Load(*policyPath)
	if err != nil {
		fmt.Fprintf(stderr, "policy %s is not valid:\n%v\n", *policyPath, err)
		return 2
	}
	reports := targets.Check(ctx, p, targets.Options{Getenv: os.Getenv}, *write)
	code := 0
	for _, r := range reports {
		if r.Error != "" || len(r.Missing) > 0 {
			code = 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			fmt.Fprintf(stderr, "targets: %v\n", err)
			return 1
		}
		return code
	}
	printTargets(stdout, reports)
	return code
}

func printTargets(w io.Writer, reports []targets.Report) {
	// An HTTP 401 or 403 in a probe error: a whole number, not part of a port.
	refusedStatus := regexp.MustCompile(`\b40[13]\b`)
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (%s)\n", r.Target, r.Type)
		if r.Error != "" {
			label := "UNREACHABLE"
			if refusedStatus.MatchString(r.Error) {
				label = "REFUSED (check the credential)" // it answered: not a network problem
			}
			fmt.Fprintf(w, "  %s: %s\n", label, r.Error)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range r.Capabilities {
			mark := map[string]string{connectors.CapWorks: "ok", connectors.CapFallback: "FALLBACK",
				connectors.CapUnsupported: "MISSING", connectors.CapUntested: "untested"}[c.Status]
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, mark, c.Detail)
		}
		tw.Flush()
		for _, n := range r.Missing {
			fmt.Fprintf(w, "  step %s needs %s: %s\n", n.Step, n.Capability, n.Detail)
		}
	}
}
