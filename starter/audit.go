package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
)

const auditUsage = `usage: starter audit person EMPLOYEE_ID [--json|--csv]
       starter audit leavers --since DATE [--sla DURATION] [--json|--csv]
       starter audit access --group NAME --target T [--since DATE] [--json|--csv]
       starter audit verify [--json]
       starter audit export [--since DATE] [--until DATE] [--to https://SIEM/…]
       starter audit purge --before DATE

  person    every effect and decision for one person, across every run (also runs
            Temporal no longer keeps)
  leavers   each termination since DATE: HR effective time → each account verified
            disabled; p50/p95/max; breaches of the SLA (default 24h) and accounts still active
  access    who was added to and removed from a group, when, by which event or operator
  verify    check the hash chain; exit 1 naming the first bad record
  export    the records as JSON lines, to stdout or POSTed in batches to an HTTPS collector
            (bearer token in JML_AUDIT_EXPORT_TOKEN, extra CA in JML_AUDIT_EXPORT_CA)
  purge     retention: delete the records older than DATE (the chain stays verifiable)

The audit store: --audit-db or JML_AUDIT_DB (postgres://… or a SQLite file; default
$JML_DATA_DIR/audit.db, the dev worker's).
DATE is 2026-12-01 or RFC 3339.
`

// runAudit is `starter audit`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	subs := []string{"person", "leavers", "access", "verify", "export", "purge"}
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, auditUsage)
		return 0
	}
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("audit-db", os.Getenv("JML_AUDIT_DB"), "audit store")
	jsonOut := fs.Bool("json", false, "JSON output")
	csvOut := fs.Bool("csv", false, "CSV output")
	since := fs.String("since", "", "from this date")
	until := fs.String("until", "", "export: before this date")
	before := fs.String("before", "", "purge: delete records older than this date")
	sla := fs.Duration("sla", 24*time.Hour, "leavers: longest time from HR effective time to disabled")
	group := fs.String("group", "", "access: group name")
	target := fs.String("target", "", "access: target")
	to := fs.String("to", "", "export: HTTPS URL of a JSON lines collector")
	// The employee ID comes first; flags after it.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	bad := func(msg string) int {
		fmt.Fprintf(stderr, "starter audit %s: %s\n%s", sub, msg, auditUsage)
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return bad(err.Error())
	}
	pos = append(pos, fs.Args()...)
	if *jsonOut && *csvOut {
		return bad("--json and --csv exclude each other")
	}
	var sinceT, untilT, beforeT time.Time
	for name, v := range map[string]struct {
		s string
		t *time.Time
	}{"since": {*since, &sinceT}, "until": {*until, &untilT}, "before": {*before, &beforeT}} {
		if v.s == "" {
			continue
		}
		t, err := parseDate(v.s)
		if err != nil {
			return bad(fmt.Sprintf("--%s %q: want a date like 2026-12-01 or RFC 3339", name, v.s))
		}
		*v.t = t
	}
	switch {
	case sub == "person" && len(pos) != 1:
		return bad("want one EMPLOYEE_ID")
	case sub != "person" && len(pos) > 0:
		return bad(fmt.Sprintf("unexpected argument %q", pos[0]))
	case sub == "leavers" && *since == "":
		return bad("--since is required")
	case sub == "leavers" && *sla <= 0:
		return bad("--sla must be positive")
	case sub == "access" && (*group == "" || *target == ""):
		return bad("--group and --target are required")
	case sub == "purge" && *before == "":
		return bad("--before is required")
	case *to != "" && !strings.HasPrefix(*to, "https://"):
		return bad("--to must be an https:// URL: audit records leave the machine")
	}
	dsn, ok := auditDSN(*db)
	if !ok {
		fmt.Fprintf(stderr, "starter audit: no audit store: set --audit-db or JML_AUDIT_DB (%s does not exist)\n", dsn)
		return 2
	}
	st, err := auditdb.Open(ctx, dsn)
	if err != nil {
		fmt.Fprintf(stderr, "starter audit: %s: %v\n", auditdb.Redact(dsn), err)
		return 1
	}
	defer st.Close()
	format := "table"
	if *jsonOut {
		format = "json"
	} else if *csvOut {
		format = "csv"
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "starter audit %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "person":
		recs, err := st.Records(ctx, auditdb.Filter{EmployeeID: pos[0]})
		if err != nil {
			return fail(err)
		}
		if len(recs) == 0 && format == "table" {
			fmt.Fprintf(stderr, "starter audit person: no records for %s\n", pos[0])
			return 1
		}
		return printRecords(stdout, format, audit.Timeline(recs))
	case "leavers":
		recs, err := st.Records(ctx, auditdb.Filter{Actions: []string{"run.", "account."}})
		if err != nil {
			return fail(err)
		}
		return printLeavers(stdout, format, audit.Leavers(recs, sinceT, *sla, time.Now()))
	case "access":
		recs, err := st.Records(ctx, auditdb.Filter{Since: sinceT, Actions: []string{"group.", audit.OperatorRetry, audit.OperatorRelease}})
		if err != nil {
			return fail(err)
		}
		return printAccess(stdout, format, audit.Access(recs, *group, *target))
	case "verify":
		v, err := st.Verify(ctx)
		if err != nil {
			return fail(err)
		}
		if format == "json" {
			if printJSON(stdout, v) != 0 {
				return 1
			}
		} else if v.Break == nil {
			fmt.Fprintf(stdout, "ok: %d records, chain intact from %d to %d\n", v.Records, v.First, v.Last)
		}
		if v.Break != nil {
			fmt.Fprintf(stderr, "audit chain broken at record %d (key %s): %s\n", v.Break.Seq, v.Break.Key, v.Break.Reason)
			return 1
		}
		return 0
	case "export":
		f := auditdb.Filter{Since: sinceT, Until: untilT}
		if *to == "" {
			return exportLines(ctx, st, f, stdout, fail)
		}
		n, err := exportHTTPS(ctx, st, f, *to, os.Getenv("JML_AUDIT_EXPORT_TOKEN"), os.Getenv("JML_AUDIT_EXPORT_CA"))
		if err != nil {
			return fail(fmt.Errorf("after %d record(s): %w", n, err))
		}
		fmt.Fprintf(stdout, "exported %d record(s) to %s\n", n, *to)
		return 0
	case "purge":
		n, err := st.Purge(ctx, beforeT, fmt.Sprintf("purge/%s/%d", beforeT.UTC().Format(time.RFC3339), time.Now().UnixNano()))
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "purged %d record(s) older than %s\n", n, beforeT.UTC().Format(time.RFC3339))
		return 0
	}
	return 2
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

var recordHeader = []string{"seq", "time", "employee_id", "action", "target", "account_id", "group", "attributes", "detail",
	"kind", "event_id", "effective_at", "workflow_id", "run_id", "step", "verified", "actor", "reason", "hash"}

func recordRow(r audit.Record) []string {
	var attrs []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Attributes {
			if !yield(k) {
				return
			}
		}
	}) {
		if v := r.Attributes[k]; v != "" {
			attrs = append(attrs, k+"="+v)
		} else {
			attrs = append(attrs, k)
		}
	}
	return []string{strconv.FormatInt(r.Seq, 10), fmtT(r.Time), r.EmployeeID, r.Action, r.Target, r.AccountID, r.Group,
		strings.Join(attrs, " "), r.Detail, r.Kind, r.EventID, fmtT(r.EffectiveAt), r.WorkflowID, r.RunID, r.Step,
		strconv.FormatBool(r.Verified), r.Actor, r.Reason, r.Hash}
}

func fmtT(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func printRecords(w io.Writer, format string, recs []audit.Record) int {
	switch format {
	case "json":
		if recs == nil {
			recs = []audit.Record{}
		}
		return printJSON(w, recs)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(recordHeader)
		for _, r := range recs {
			_ = cw.Write(recordRow(r))
		}
		cw.Flush()
		return exitOf(cw.Error())
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tTARGET\tACCOUNT\tGROUP/ATTRIBUTES\tVERIFIED\tACTOR\tEVENT\tSTEP\tDETAIL")
	for _, r := range recs {
		row := recordRow(r)
		what := r.Group
		if what == "" {
			what = row[7]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", row[1], r.Action, r.Target, r.AccountID, what, r.Verified,
			r.Actor, r.EventID, r.Step, strings.TrimSpace(r.Detail+" "+r.Reason))
	}
	return exitOf(tw.Flush())
}

func exitOf(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

func printLeavers(w io.Writer, format string, rep audit.LeaversReport) int {
	switch format {
	case "json":
		return printJSON(w, rep)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"employee_id", "event_id", "effective_at", "target", "account_id", "identifier", "state", "done_at", "latency_seconds", "breach"})
		for _, t := range rep.Terminations {
			for _, a := range t.Accounts {
				lat := ""
				if a.State == audit.LeaverDisabled || a.State == audit.LeaverDeleted {
					lat = strconv.FormatFloat(a.Latency.Seconds(), 'f', 3, 64)
				}
				_ = cw.Write([]string{t.EmployeeID, t.EventID, fmtT(t.EffectiveAt), a.Target, a.AccountID, a.Identifier, a.State,
					fmtT(a.DoneAt), lat, strconv.FormatBool(a.Breach)})
			}
		}
		cw.Flush()
		return exitOf(cw.Error())
	}
	fmt.Fprintf(w, "Terminations since %s: %d; accounts %d, verified disabled or deleted %d\n",
		rep.Since.UTC().Format(time.DateOnly), len(rep.Terminations), rep.Accounts, rep.Done)
	if rep.Done == 0 {
		// No latency measured: 0s would read as "instant".
		fmt.Fprintf(w, "HR effective time → verified disabled: no account verified disabled yet (SLA %s)\n", rep.SLA)
	} else {
		fmt.Fprintf(w, "HR effective time → verified disabled: p50 %s, p95 %s, max %s (SLA %s)\n", rep.P50, rep.P95, rep.Max, rep.SLA)
	}
	list := func(title string, as []audit.LeaverAccount) {
		fmt.Fprintf(w, "%s: %d\n", title, len(as))
		if len(as) == 0 {
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  EMPLOYEE\tTARGET\tACCOUNT\tIDENTIFIER\tSTATE\tLATENCY")
		for _, a := range as {
			lat := "-"
			if a.State == audit.LeaverDisabled || a.State == audit.LeaverDeleted {
				lat = a.Latency.String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", a.EmployeeID, a.Target, a.AccountID, a.Identifier, a.State, lat)
		}
		_ = tw.Flush()
	}
	list("Breaches", rep.Breaches)
	list("Still active", rep.StillActive)
	// The rest of the accounts, so the lists add up to the count above:
	// none verified disabled, none still active.
	var other []audit.LeaverAccount
	for _, t := range rep.Terminations {
		for _, a := range t.Accounts {
			if a.State == audit.LeaverAbsent || a.State == audit.LeaverRehired {
				other = append(other, a)
			}
		}
	}
	list("Absent at the leaver or rehired (no disable to verify)", other)
	return 0
}

func printAccess(w io.Writer, format string, gs []audit.Grant) int {
	switch format {
	case "json":
		return printJSON(w, gs)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"time", "action", "employee_id", "account_id", "kind", "event_id", "actor", "reason", "workflow_id", "seq"})
		for _, g := range gs {
			_ = cw.Write([]string{fmtT(g.Time), g.Action, g.EmployeeID, g.AccountID, g.Kind, g.EventID, g.Actor, g.Reason, g.WorkflowID, strconv.FormatInt(g.Seq, 10)})
		}
		cw.Flush()
		return exitOf(cw.Error())
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tEMPLOYEE\tACCOUNT\tBY\tEVENT\tREASON")
	for _, g := range gs {
		by := g.Actor
		if by == audit.ActorJML {
			by = "jml (" + g.Kind + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fmtT(g.Time), g.Action, g.EmployeeID, g.AccountID, by, g.EventID, g.Reason)
	}
	return exitOf(tw.Flush())
}

// exportLines writes the records as JSON lines.
func exportLines(ctx context.Context, st *auditdb.Store, f auditdb.Filter, w io.Writer, fail func(error) int) int {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := st.Each(ctx, f, func(r audit.Record) error { return enc.Encode(r) }); err != nil {
		return fail(err)
	}
	return exitOf(bw.Flush())
}

// exportBatch is how many records one POST carries.
const exportBatch = 500

// exportHTTPS POSTs the records as JSON lines (application/x-ndjson) in
// batches to an HTTPS collector (Splunk HEC raw, Elastic, Vector, Fluent
// Bit http input…); a batch that is not answered 2xx stops the export,
// which says how far it got (resume with --since).
func exportHTTPS(ctx context.Context, st *auditdb.Store, f auditdb.Filter, url, token, caFile string) (int, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return 0, fmt.Errorf("JML_AUDIT_EXPORT_CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return 0, errors.New("JML_AUDIT_EXPORT_CA: no certificate in it")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	var buf bytes.Buffer
	sent, inBatch := 0, 0
	post := func() error {
		if inBatch == 0 {
			return nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf.Bytes()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("collector answered %s", resp.Status)
		}
		sent += inBatch
		buf.Reset()
		inBatch = 0
		return nil
	}
	enc := json.NewEncoder(&buf)
	err := st.Each(ctx, f, func(r audit.Record) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		if inBatch++; inBatch == exportBatch {
			return post()
		}
		return nil
	})
	if err == nil {
		err = post()
	}
	return sent, err
}

// auditDSN is the audit store the commands open: flag (--audit-db,
// default JML_AUDIT_DB), else the dev worker's $JML_DATA_DIR/audit.db when
// it exists; ok false (with that path) when there is none.
func auditDSN(flag string) (dsn string, ok bool) {
	if flag != "" {
		return flag, true
	}
	dir := os.Getenv("JML_DATA_DIR")
	if dir == "" {
		dir = "jml-data"
	}
	dsn = filepath.Join(dir, "audit.db")
	_, err := os.Stat(dsn)
	return dsn, err == nil
}
