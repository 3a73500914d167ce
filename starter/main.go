// Command starter is jml's HR event intake and operator CLI.
//
//	starter serve                      HTTP intake (POST /v1/events) and, on its own listener, the codec endpoint (/codec)
//	starter post event.json            send one HR event to the intake
//	starter import hires.csv           batch import (CSV or JSONL)
//	starter preview --policy P --event E  dry run of a policy for one event
//	starter preview --policy P --population F [--against OLD]  dry run over an HR export
//	starter status <employeeId>        step table of a person's current run
//	starter list --needs-attention     runs waiting for an operator
//	starter retry|skip|abort|release <employeeId> [--step S]
//	starter sync <employeeId>          attribute sync now for one person
//	starter sandbox users              accounts in the dev sandbox directory
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command runs one subcommand and returns the process exit code
// (0 ok, 1 failure, 2 bad usage or bad input).
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"serve":     runServe,
		"import":    runImport,
		"preview":   runPreview,
		"status":    runStatus,
		"list":      runList,
		"retry":     runRetry,
		"skip":      runSkip,
		"abort":     runAbort,
		"release":   runRelease,
		"sync":      runSync,
		"sandbox":   runSandbox,
		"post":      runPost,
		"health":    runHealth,
		"password":  runPassword,
		"setup":     runSetup,
		"terminate": runTerminate,
		"activity":  runActivity,

		"audit":     runAudit,
		"reconcile": runReconcile,
		"sources":   runSources,
		"targets":   runTargets,

		"request":  runRequest,
		"requests": runRequests,
		"approve":  decideCommand(true),
		"deny":     decideCommand(false),
		"extend":   runExtend,
		"revoke":   runRevoke,
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if isHelp(args[0]) || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "starter: unknown command %q (see starter --help)\n", args[0])
		return 2
	}
	if slices.ContainsFunc(args[1:], isHelp) {
		return help(ctx, args[0], cmd, stdout)
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// help prints a subcommand's usage to stdout and exits 0: its line of the
// overview, then its flags (asked from the command itself with -h, which
// every command answers by parsing its flags before doing anything).
func help(ctx context.Context, name string, cmd command, stdout io.Writer) int {
	for _, line := range strings.Split(usage, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name && strings.HasPrefix(line, "  ") {
			fmt.Fprintf(stdout, "usage: starter %s\n", strings.TrimSpace(line))
		}
	}
	var flags bytes.Buffer
	cmd(ctx, []string{"-h"}, &flags, &flags)
	text := flags.String()
	if i := strings.Index(text, "Usage of "); i >= 0 {
		if j := strings.Index(text[i:], "\n"); j >= 0 {
			text = text[:i] + "\nflags:\n" + text[i+j+1:]
		}
	}
	fmt.Fprint(stdout, text)
	return 0
}

const usage = `usage: starter <command> [flags]

commands:
  serve                         run the HR event intake (POST /v1/events) and, on JML_CODEC_ADDR, the Web UI's codec endpoint (/codec)
  import FILE [--dry-run]        import events from CSV or JSONL (columns mapped by the policy)
  preview --policy P --event E  show what a policy would do for an event, touching nothing
  preview --policy P --population PEOPLE.csv [--against OLD.yaml] [--json]  dry run over a whole HR export (exit 1: conflicts)
  targets check --policy P      reach every target of a policy: auth, discovery, the capabilities the policy uses
  post EVENT.json               send an HR event to the intake (signed with JML_INTAKE_HMAC_SECRET)
  status EMPLOYEE_ID            step table of a person's current run
  list [--needs-attention|--blocked|--state S] [--count]  runs waiting for an operator (--count: how many)
  retry EMPLOYEE_ID [--step S] [--set attr=value]…  re-run the failed step (--set corrects an attribute for it and later steps; steps already done keep the old value until the next attribute sync)
  skip EMPLOYEE_ID --step S [--cascade]  skip the failed step (--cascade: and the steps that use its outputs)
  abort EMPLOYEE_ID             stop the run (state Aborted)
  terminate EMPLOYEE_ID --reason R  end the run at once through Temporal (for a run that cannot take abort)
  activity pause|unpause|reset EMPLOYEE_ID --step S  pause, unpause or reset the attempts of a step Temporal is retrying
  setup [--retention 72h]       create the namespace (TEMPORAL_NAMESPACE) if missing and register jml's search attributes
  release EMPLOYEE_ID | --all   release a run (or, after a confirmation, every run) blocked by the safety limit
  sync EMPLOYEE_ID... | --all   run attribute sync now
  reconcile report [--target T] [--json|--csv]  orphans, leftovers, disputed accounts and group drift of the last cycle
  sandbox users|groups|handoffs  the dev sandbox directory: accounts, groups, HR portal hand-offs
  health --url URL              probe a health endpoint (container health checks)
  password status ID [--json]   a password sync change (POST /v1/password-changes): state and each account's result
  sources [poll|release|discard NAME]  sources of identity: state, cursor, events emitted; poll now; decide a Blocked poll
  request EMPLOYEE_ID --grant group:NAME@TARGET --for 8h --reason R  ask for time-bound access (an approval, then a grant that expires)
  requests                      open access requests and the grants in force
  approve REQUEST_ID --reason R [--as APPROVER]  approve an access request (see starter status request/ID)
  deny REQUEST_ID --reason R [--as APPROVER]  deny an access request
  extend REQUEST_ID --for 4h --reason R  ask to extend a grant (a new approval)
  revoke REQUEST_ID --reason R  end a grant now (or withdraw a request still waiting)
  audit person|leavers|access|verify|export|purge  the audit trail (docs/audit.md): a person's timeline, the leavers SLA report, who got a group, the hash chain

Operator commands take --json for scripts, --reason R and --as NAME (default $USER@host), recorded in the run.
starter COMMAND --help prints a command's flags.

Temporal connection: TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE (default default),
TEMPORAL_API_KEY, TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY/TEMPORAL_TLS_CA.
`
