// Command bench measures jml on this machine and prints a table (or JSON):
// the engine ceiling, joiners against the real SCIM peer and the Okta
// stand-in, a rate-limited target, reconcile, and scale-out over 1-3 worker
// processes, all against the embedded Temporal server (SQLite file and in
// memory) or the pinned server on a private PostgreSQL cluster, each next
// to the minimal workflow that does the same work (one workflow, four
// sequential no-op activities).
//
//	go run ./bench                 defaults finish in under 5 minutes on 2 cores
//	go run ./bench --json > out.json
//	go run ./bench --joiners 1000 --db file
//	go run ./bench --db postgres --only minimal,ceiling,scim,scale   SQLite and PostgreSQL rows, scale-out on PostgreSQL
//	go run ./bench --only reconcile --reconcile 50000
//	go run ./bench --only minimal,ceiling,scim
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/bench/harness"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/targets"
	"github.com/jml-dev/jml/workflows"
)

type config struct {
	joiners, oktaJoiners, rateJoiners, scaleJoiners int
	rate, parallel, reconcile                       int
	pace, rateLimit                                 float64
	db                                              string
	scaleOut                                        []int
	json                                            bool
	workerProfile                                   string
	history                                         bool
	audit                                           bool
	timeout                                         time.Duration
}

// row is one line of the result table.
type row struct {
	Scenario  string  `json:"scenario"`
	DB        string  `json:"db,omitempty"`
	Workflows int     `json:"workflows,omitempty"`
	Completed int     `json:"completed,omitempty"`
	PerSecond float64 `json:"workflows_per_second,omitempty"`
	Ratio     float64 `json:"ratio_to_ceiling,omitempty"`
	// RatioMinimal is wf/s over the minimal row's (same database, same run).
	RatioMinimal float64 `json:"ratio_to_minimal,omitempty"`
	P50ms        float64 `json:"p50_ms,omitempty"`
	P95ms        float64 `json:"p95_ms,omitempty"`
	ReqPerJoiner float64 `json:"target_requests_per_joiner,omitempty"`
	Floor        float64 `json:"request_floor,omitempty"`
	JoinerEvents float64 `json:"history_events_per_joiner,omitempty"`
	IdentityEvts float64 `json:"history_events_per_identity,omitempty"`
	RSSMB        float64 `json:"worker_peak_rss_mb,omitempty"`
	RateUse      float64 `json:"rate_share_used,omitempty"`
	// RateUseAll is the share over every window from the first request
	// to the last, the drain included (RateUse: the saturated windows).
	RateUseAll float64 `json:"rate_share_used_all_windows,omitempty"`
	// Pace is the fixed arrival rate of a paced row (events/s); 0: burst.
	Pace    float64   `json:"paced_events_per_second,omitempty"`
	Phases  []phaseMS `json:"latency_phases_p50_ms,omitempty"`
	Seconds float64   `json:"wall_seconds,omitempty"`
	// CPUms is processor time per completed workflow (minimal) or joiner:
	// this process (server, in-process workers, proxies) plus the worker
	// processes, not the target peer.
	CPUms  float64 `json:"cpu_ms_per_workflow,omitempty"`
	Reads  int     `json:"target_reads,omitempty"`
	Writes int     `json:"target_writes"`
	Failed int     `json:"failed_workflows"`
	Note   string  `json:"note,omitempty"`
}

// phaseMS is the median time between two milestones of a hire.
type phaseMS struct {
	From string  `json:"from"`
	To   string  `json:"to"`
	MS   float64 `json:"ms"`
}

// note adds a remark to the row's notes.
func (r *row) note(s string) {
	if r.Note != "" {
		s = r.Note + "; " + s
	}
	r.Note = s
}

func main() {
	var c config
	var scale string
	flag.IntVar(&c.joiners, "joiners", 50, "joiners per ceiling and SCIM run")
	flag.IntVar(&c.oktaJoiners, "okta-joiners", 30, "joiners against the Okta stand-in")
	flag.IntVar(&c.rate, "rate", 20, "requests per second the rate-limited target allows")
	flag.IntVar(&c.rateJoiners, "rate-joiners", 60, "joiners against the rate-limited target")
	flag.Float64Var(&c.rateLimit, "rate-limit", -1, "the rate-limited target's policy rate_limit in req/s (-1: 95% of --rate)")
	flag.Float64Var(&c.pace, "pace", 0, "arrival rate of the paced SCIM rows in events/s (0: half the ceiling measured in the same run)")
	flag.IntVar(&c.scaleJoiners, "scale-joiners", 40, "joiners per scale-out run")
	flag.StringVar(&scale, "workers", "1,2,3", "worker process counts for scale-out")
	only := flag.String("only", "", "comma-separated rows to run: minimal, ceiling, scim, paced, okta, rate, reconcile, scale (default all; minimal runs whenever ceiling or scim does)")
	flag.IntVar(&c.reconcile, "reconcile", 10000, "in-sync identities for the reconcile row")
	flag.IntVar(&c.parallel, "parallel", 32, "concurrent HR event deliveries")
	flag.StringVar(&c.db, "db", "both", "server databases, in order: a comma-separated list of file, memory (the dev server's SQLite) and postgres (a private PostgreSQL cluster, as production runs); both: file,memory; postgres alone: file,memory,postgres. Rows after the SCIM rows (okta, rate, reconcile, scale-out) run on the last")
	flag.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	flag.DurationVar(&c.timeout, "timeout", 3*time.Minute, "longest wait for one run's workflows")
	flag.StringVar(&c.workerProfile, "worker-cpuprofile", "", "write a CPU profile of each SCIM row's worker processes to PREFIX-<row>-<n>.prof (they are stopped with SIGTERM at the row's end)")
	flag.BoolVar(&c.history, "history", false, "print the event list of each joiner row's first joiner and its identity to stderr (where a joiner's events go)")
	flag.BoolVar(&c.audit, "audit", false, "SCIM rows: the worker processes write the audit trail to a SQLite file (as --dev does; without it they record none)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (server and in-process workers) to the file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: --cpuprofile: %v\n", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: --cpuprofile: %v\n", err)
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	for _, s := range strings.Split(scale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: --workers %q: want a list of counts like 1,2,3\n", scale)
			os.Exit(2)
		}
		c.scaleOut = append(c.scaleOut, n)
	}
	if c.rateLimit < 0 {
		c.rateLimit = 0.95 * float64(c.rate)
	}
	rowKinds := []string{"minimal", "ceiling", "scim", "paced", "okta", "rate", "reconcile", "scale"}
	selected := map[string]bool{}
	for _, k := range strings.Split(*only, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !slices.Contains(rowKinds, k) {
			fmt.Fprintf(os.Stderr, "bench: --only %q: want some of %s\n", *only, strings.Join(rowKinds, ", "))
			os.Exit(2)
		}
		selected[k] = true
	}
	want := func(kind string) bool { return len(selected) == 0 || selected[kind] }
	// The ratios to minimal need the minimal row of the same database.
	wantMinimal := want("minimal") || want("ceiling") || want("scim")
	var dbs []string
	switch c.db {
	case "both":
		dbs = []string{harness.DBFile, harness.DBMemory}
	case harness.DBPostgres:
		// PostgreSQL beside the SQLite rows, in one run.
		dbs = []string{harness.DBFile, harness.DBMemory, harness.DBPostgres}
	default:
		for _, d := range strings.Split(c.db, ",") {
			d = strings.TrimSpace(d)
			if d != harness.DBFile && d != harness.DBMemory && d != harness.DBPostgres || slices.Contains(dbs, d) {
				fmt.Fprintf(os.Stderr, "bench: --db %q: want a list of file, memory and postgres, or both\n", c.db)
				os.Exit(2)
			}
			dbs = append(dbs, d)
		}
	}
	if c.json {
		log.SetOutput(os.Stderr)
	}
	start := time.Now()
	var rows []row
	ceiling := map[string]float64{}
	minimal := map[string]float64{}
	for _, db := range dbs {
		if wantMinimal {
			r := scenario("minimal", func(tb *runTB) row { return runMinimal(tb, c, db) })
			minimal[r.DB] = r.PerSecond
			rows = append(rows, r)
		}
		if want("ceiling") {
			r := scenario("ceiling", func(tb *runTB) row { return runCeiling(tb, c, db) })
			ceiling[r.DB] = r.PerSecond
			rows = append(rows, r)
		}
		if want("scim") {
			rows = append(rows, scenario("scim joiners", func(tb *runTB) row {
				return runSCIM(tb, c, db, scimRun{name: "scim joiners burst", n: c.joiners, workers: 1})
			}))
		}
		if want("paced") {
			pace := c.pace
			if pace == 0 {
				pace = ceiling[db] / 2
			}
			name := fmt.Sprintf("scim joiners paced %.1f/s", pace)
			rows = append(rows, scenario(name, func(tb *runTB) row {
				if pace <= 0 {
					tb.Fatalf("no pace: run the ceiling row too or set --pace")
				}
				return runSCIM(tb, c, db, scimRun{name: name, n: c.joiners, workers: 1, pace: pace})
			}))
		}
	}
	// The remaining runs use the faster database asked for: they measure
	// jml, not SQLite's fsync.
	db := dbs[len(dbs)-1]
	if want("okta") {
		rows = append(rows, scenario("okta joiners", func(tb *runTB) row { return runOkta(tb, c, db) }))
	}
	if want("rate") {
		for _, limit := range []float64{0, c.rateLimit} {
			name := fmt.Sprintf("rate-limited scim (%d req/s, no rate_limit)", c.rate)
			if limit > 0 {
				name = fmt.Sprintf("rate-limited scim (%d req/s, rate_limit %g)", c.rate, limit)
			}
			rows = append(rows, scenario(name, func(tb *runTB) row {
				return runSCIM(tb, c, db, scimRun{name: name, n: c.rateJoiners, workers: 1, rate: c.rate, rateLimit: limit})
			}))
			if c.rateLimit == 0 {
				break
			}
		}
	}
	if want("reconcile") {
		rows = append(rows, scenario("reconcile", func(tb *runTB) row { return runReconcile(tb, c, db) }))
	}
	for _, k := range c.scaleOut {
		if want("scale") {
			name := fmt.Sprintf("scale-out %d worker(s)", k)
			rows = append(rows, scenario(name, func(tb *runTB) row {
				return runSCIM(tb, c, db, scimRun{name: name, n: c.scaleJoiners, workers: k})
			}))
		}
	}
	for i := range rows {
		// A paced row's wf/s is its arrival rate, not a throughput.
		if ce := ceiling[rows[i].DB]; ce > 0 && rows[i].Floor > 0 && rows[i].PerSecond > 0 && rows[i].Pace == 0 {
			rows[i].Ratio = rows[i].PerSecond / ce
		}
		joinerRow := rows[i].Scenario == "ceiling" || rows[i].Floor > 0 && rows[i].Pace == 0
		if m := minimal[rows[i].DB]; m > 0 && joinerRow && rows[i].PerSecond > 0 {
			rows[i].RatioMinimal = rows[i].PerSecond / m
		}
	}
	if c.json {
		out := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "cpus": runtime.NumCPU(),
			"go": runtime.Version(), "seconds": time.Since(start).Seconds(), "rows": rows}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	printTable(os.Stdout, rows)
	fmt.Printf("\n%d CPUs, %s, total %s\n", runtime.NumCPU(), runtime.Version(), time.Since(start).Round(time.Second))
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdb\tjoiners\tdone\twf/s\tvs minimal\tvs ceiling\tp50 ms\tp95 ms\treq/joiner (floor)\thist ev joiner+identity\tCPU ms/wf\tRSS MB\trate used\twall s\treads/writes\tfailed\t")
	f := func(v float64, format string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	for _, r := range rows {
		rw := "-"
		if r.Reads > 0 {
			rw = fmt.Sprintf("%d/%d", r.Reads, r.Writes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.Scenario, r.DB, r.Workflows, r.Completed,
			f(r.PerSecond, "%.1f"), f(r.RatioMinimal, "%.2f"), f(r.Ratio, "%.2f"), f(r.P50ms, "%.0f"), f(r.P95ms, "%.0f"),
			f(r.ReqPerJoiner, "%.2f")+" ("+f(r.Floor, "%.0f")+")", f(r.JoinerEvents, "%.0f")+"+"+f(r.IdentityEvts, "%.0f"),
			f(r.CPUms, "%.0f"), f(r.RSSMB, "%.0f"), rateCol(r), f(r.Seconds, "%.1f"), rw, r.Failed)
	}
	tw.Flush()
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Scenario, r.Note)
		}
	}
}

// rateCol is the saturated share, then the share over all windows.
func rateCol(r row) string {
	if r.RateUse == 0 && r.RateUseAll == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% (%.0f%%)", r.RateUse, r.RateUseAll)
}

func hires(prefix string, n int) []hr.Event {
	evs := make([]hr.Event, n)
	for i := range evs {
		evs[i] = harness.Hire(prefix, i)
	}
	return evs
}

// drive submits the hires, waits for their joiners, and fills the
// throughput, completion and history columns.
// With pace > 0 the events arrive open-loop at that rate, else all at
// once (cfg.parallel deliveries at a time).
func drive(c *harness.Cluster, cfg config, evs []hr.Event, pace float64, r *row, ws ...*harness.Worker) map[string]time.Time {
	ctx := context.Background()
	cpu := cpuMeter(c, ws)
	begin := time.Now()
	var sent map[string]time.Time
	var err error
	if pace > 0 {
		sent, err = c.SubmitPaced(ctx, evs, pace)
	} else {
		sent, err = c.SubmitAll(ctx, evs, cfg.parallel)
	}
	if err != nil {
		r.note("error: " + err.Error())
	}
	r.Workflows = len(evs)
	r.Completed, err = c.WaitCount(ctx, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'", len(evs), cfg.timeout)
	r.Failed = len(evs) - r.Completed
	r.CPUms = cpu(r.Completed)
	if err != nil {
		// The wait stops at the first run waiting for an operator, so
		// "failed" also counts runs that were still going.
		r.note(fmt.Sprintf("error: %v; %d runs not completed when the wait stopped", err, r.Failed))
	}
	closed, _, err := c.Closed(ctx, contract.JoinerWorkflowName)
	if err == nil {
		var last time.Time
		for _, t := range closed {
			if t.After(last) {
				last = t
			}
		}
		if d := last.Sub(begin).Seconds(); d > 0 {
			r.PerSecond = float64(r.Completed) / d
		}
	}
	if cfg.history && len(evs) > 0 {
		for _, id := range []string{harness.JoinerID(evs[0]), contract.IdentityWorkflowID(evs[0].EmployeeID())} {
			lines, err := c.EventList(ctx, id)
			fmt.Fprintf(os.Stderr, "history of %s (%s, %s), %d events:\n  %s\n", id, r.Scenario, r.DB, len(lines), strings.Join(lines, "\n  "))
			if err != nil {
				fmt.Fprintf(os.Stderr, "  (%v)\n", err)
			}
		}
	}
	sample := min(len(evs), 20)
	for _, ev := range evs[:sample] {
		r.JoinerEvents += float64(c.HistoryLength(ctx, harness.JoinerID(ev))) / float64(sample)
		r.IdentityEvts += float64(c.HistoryLength(ctx, contract.IdentityWorkflowID(ev.EmployeeID()))) / float64(sample)
	}
	return sent
}

// cpuMeter starts measuring the processor time of this process, the
// cluster's database server (PostgreSQL's processes) and the worker
// processes ws; the function it returns gives the time per item since, in
// milliseconds.
func cpuMeter(c *harness.Cluster, ws []*harness.Worker) func(items int) float64 {
	now := func() time.Duration {
		d := harness.ProcessCPU(os.Getpid())
		if c.DBCPU != nil {
			d += c.DBCPU()
		}
		for _, w := range ws {
			d += w.CPU()
		}
		return d
	}
	start := now()
	return func(items int) float64 {
		if items == 0 {
			return 0
		}
		return float64(now()-start) / float64(time.Millisecond) / float64(items)
	}
}

// latency fills p50/p95 of HR event → account created at the target.
func latency(p *harness.Proxy, evs []hr.Event, sent map[string]time.Time, r *row) {
	var ds []time.Duration
	for _, ev := range evs {
		created, ok := p.Created(ev.Employee["email"])
		if at, sentOK := sent[ev.EventID]; ok && sentOK {
			ds = append(ds, created.Sub(at))
		}
	}
	r.P50ms = float64(harness.Percentile(ds, 50)) / float64(time.Millisecond)
	r.P95ms = float64(harness.Percentile(ds, 95)) / float64(time.Millisecond)
}

// runMinimal runs the smallest workflow that does a joiner's work: one
// workflow, four sequential no-op activities, in this process, with the
// ceiling's count and concurrency. Its wf/s is the yardstick of the
// "vs minimal" column.
func runMinimal(tb *runTB, cfg config, db string) row {
	r := row{Scenario: "minimal", DB: db, Workflows: cfg.joiners}
	c := harness.StartClusterDB(tb, db)
	c.InProcessMinimal()
	ctx := context.Background()
	cpu := cpuMeter(c, nil)
	begin := time.Now()
	if err := c.StartMinimal(ctx, cfg.joiners, cfg.parallel); err != nil {
		tb.Fatalf("%v", err)
	}
	var err error
	r.Completed, err = c.WaitCount(ctx, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", harness.MinimalWorkflowName), cfg.joiners, cfg.timeout)
	r.Failed = cfg.joiners - r.Completed
	r.CPUms = cpu(r.Completed)
	if err != nil {
		r.note(fmt.Sprintf("error: %v", err))
	}
	if closed, _, err := c.Closed(ctx, harness.MinimalWorkflowName); err == nil {
		var last time.Time
		for _, t := range closed {
			if t.After(last) {
				last = t
			}
		}
		if d := last.Sub(begin).Seconds(); d > 0 {
			r.PerSecond = float64(r.Completed) / d
		}
	}
	sample := min(cfg.joiners, 20)
	for i := range sample {
		r.JoinerEvents += float64(c.HistoryLength(ctx, harness.MinimalID(i))) / float64(sample)
	}
	r.note(fmt.Sprintf("1 workflow, %d sequential no-op activities, in process (the smallest workflow doing a joiner's work)", harness.MinimalSteps))
	return r
}

// runCeiling runs the joiner's exact workflow shape (identity → joiner
// child → plan as a local activity, sync with generated password, groups,
// hand-off on the host queue of the worker holding the password) with
// in-memory no-op targets in this process.
func runCeiling(tb *runTB, cfg config, db string) row {
	r := row{Scenario: "ceiling", DB: db}
	c := harness.StartClusterDB(tb, db)
	c.InProcess(harness.SCIMPolicy("https://noop.invalid/scim/v2", "https://noop.invalid"),
		activities.Config{Targets: map[string]any{"app": memtarget.New()}, REST: harness.NoREST()})
	drive(c, cfg, hires("C", cfg.joiners), 0, &r)
	r.note("engine ceiling: real workflows, no-op activities (in-memory target, no HTTP)")
	return r
}

// scimRun is one SCIM row: n joiners through worker processes against the
// SCIMMY peer.
type scimRun struct {
	name      string
	n         int
	workers   int
	rate      int     // the proxy's allowance in req/s (0: none)
	rateLimit float64 // the target's policy rate_limit (0: none)
	pace      float64 // open-loop arrivals per second (0: all at once)
}

// runSCIM runs joiners through worker processes against the SCIMMY peer,
// optionally behind a rate limit, optionally paced.
func runSCIM(tb *runTB, cfg config, db string, s scimRun) row {
	// Floor: find + create, a lookup and a PATCH per group (two), and the
	// memberships read-back.
	r := row{Scenario: s.name, DB: db, Floor: 2 + 2*2 + 1, Pace: s.pace}
	peer := scimtest.Start(tb)
	proxy := harness.StartProxy(tb, strings.TrimSuffix(peer.BaseURL, "/scim/v2"))
	portal := harness.StartPortal(tb, peer.PasswordSHA256)
	c := harness.StartClusterDB(tb, db)
	c.Trust(portal)
	pol := harness.SCIMPolicy(proxy.URL+"/scim/v2", portal.URL)
	if s.rateLimit > 0 {
		pol = harness.SCIMPolicyLimited(proxy.URL+"/scim/v2", portal.URL, s.rateLimit)
	}
	c.SetPolicy(pol, harness.SCIMTokenEnv+"="+peer.Token)
	if cfg.audit {
		c.WorkerEnv("JML_AUDIT_DB=" + filepath.Join(c.Dir, "audit.db"))
		r.note("audit trail on (SQLite file)")
	}
	var ws []*harness.Worker
	for i := range s.workers {
		if cfg.workerProfile != "" {
			name := strings.NewReplacer(" ", "-", "/", "-", "(", "", ")", "").Replace(s.name + "-" + db)
			c.WorkerEnv(fmt.Sprintf("JML_CPUPROFILE=%s-%s-%d.prof", cfg.workerProfile, name, i+1))
		}
		ws = append(ws, c.StartWorker())
	}
	proxy.Reset() // worker start-up reads /ServiceProviderConfig
	proxy.Limit(s.rate)
	evs := hires("S", s.n)
	sent := drive(c, cfg, evs, s.pace, &r, ws...)
	latency(proxy, evs, sent, &r)
	st := proxy.Stats()
	r.ReqPerJoiner = float64(st.Total-st.Limited) / float64(s.n)
	for _, w := range ws {
		r.RSSMB = max(r.RSSMB, float64(w.PeakRSS())/(1<<20))
	}
	if s.pace > 0 {
		phases(c, proxy, evs, sent, &r)
	}
	if s.rate > 0 {
		share, windows, per := proxy.SaturatedRateUse()
		r.RateUse = 100 * share
		r.RateUseAll = 100 * proxy.RateUse()
		r.note(fmt.Sprintf("%d requests answered 429 above %d req/s; req/joiner counts requests let through; "+
			"rate used over %d saturated 1-s windows (all windows in brackets); requests let through per window: %v",
			st.Limited, s.rate, windows, per))
	}
	accounts, rejected, _ := portal.Result()
	reissued := 0
	ctx := context.Background()
	for _, ev := range evs {
		steps, _ := c.Steps(ctx, harness.JoinerID(ev))
		for _, step := range steps {
			if strings.Contains(step.Note, "password") {
				reissued++
			}
		}
	}
	hand := fmt.Sprintf("password hand-offs verified at the portal: %d/%d, rejected %d, re-issued %d", accounts, s.n, rejected, reissued)
	r.note(hand)
	if cfg.workerProfile != "" {
		for _, w := range ws {
			w.Stop() // writes its profile
		}
	}
	return r
}

// runOkta runs joiners against the emulate Okta stand-in. The worker binary
// refuses a plain-http Okta org outside --dev, so this worker runs in
// process with the same workflows, activities and connector.
func runOkta(tb *runTB, cfg config, db string) row {
	r := row{Scenario: "okta joiners", DB: db, Floor: 2}
	peer := oktatest.Start(tb)
	proxy := harness.StartProxy(tb, peer.OrgURL)
	c := harness.StartClusterDB(tb, db)
	pol := harness.OktaPolicy(proxy.URL)
	conns, err := targets.Build(context.Background(), mustPolicy(tb, pol), targets.Options{
		Getenv: harness.Getenv(harness.OktaTokenEnv + "=" + peer.Token), AllowInsecure: true})
	if err != nil {
		tb.Fatalf("okta target: %v", err)
	}
	c.InProcess(pol, activities.Config{Targets: conns})
	proxy.Reset()
	evs := hires("O", cfg.oktaJoiners)
	sent := drive(c, cfg, evs, 0, &r)
	latency(proxy, evs, sent, &r)
	r.ReqPerJoiner = float64(proxy.Stats().Total) / float64(len(evs))
	r.note("in-process worker (the binary refuses a plain-http Okta org outside --dev)")
	return r
}

// runReconcile runs one attribute sync over cfg.reconcile identities that
// are already in sync with the SCIM peer's preloaded users: the real
// AttributeSync workflow and SCIM connector through the counting proxy, in
// process because the identities come from a static directory (in
// production they are the Identity workflows' memos; listing those is not
// measured here). Goal: 0 writes, ceil(N/page size) reads.
func runReconcile(tb *runTB, cfg config, db string) row {
	n := cfg.reconcile
	r := row{Scenario: "reconcile", DB: db, Workflows: n}
	peer := scimtest.Start(tb, scimtest.WithUsers(n))
	proxy := harness.StartProxy(tb, strings.TrimSuffix(peer.BaseURL, "/scim/v2"))
	c := harness.StartClusterDB(tb, db)
	pol := harness.ReconcilePolicy(proxy.URL + "/scim/v2")
	ctx := context.Background()
	conns, err := targets.Build(ctx, mustPolicy(tb, pol), targets.Options{
		Getenv: harness.Getenv(harness.SCIMTokenEnv + "=" + peer.Token)})
	if err != nil {
		tb.Fatalf("scim target: %v", err)
	}
	c.InProcess(pol, activities.Config{Targets: conns, Directory: harness.ReconcileIdentities(n)})
	proxy.Reset() // connector start-up reads /ServiceProviderConfig
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	begin := time.Now()
	id := contract.AttributeSyncScheduleID + "-bench"
	run, err := c.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
		contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
	if err != nil {
		tb.Fatalf("start attribute sync: %v", err)
	}
	var res workflows.AttributeSyncResult
	if err := run.Get(ctx, &res); err != nil {
		tb.Fatalf("attribute sync: %v", err)
	}
	r.Seconds = time.Since(begin).Seconds()
	st := proxy.Stats()
	r.Reads = st.ByMethod[http.MethodGet]
	r.Writes = st.Total - r.Reads
	r.Completed = res.IdentitiesChecked
	r.Failed = res.Failures
	r.PerSecond = float64(res.IdentitiesChecked) / r.Seconds
	if res.IdentitiesChecked != n || res.Unmatched > 0 || res.Failures > 0 {
		r.note(fmt.Sprintf("error: %d of %d identities checked, %d unmatched, problems %+v", res.IdentitiesChecked, n, res.Unmatched, res.Problems))
	}
	r.note(fmt.Sprintf("identities checked/s in wf/s; %d pages read, %d accounts changed, %d unmatched, %d history events; "+
		"in-process worker, identities from a static directory", res.PagesRead, res.AccountsChanged, res.Unmatched, c.HistoryLength(ctx, id)))
	return r
}

// phases fills the median time between consecutive milestones of the hires
// (history event timestamps; the send and create stamps are the bench's
// and the proxy's, on the same clock) and notes them. A milestone a hire
// does not pass (the session of the old shape) is skipped: the phase runs
// from the last milestone it did pass.
func phases(c *harness.Cluster, p *harness.Proxy, evs []hr.Event, sent map[string]time.Time, r *row) {
	ms := harness.Milestones()
	type pair struct{ from, to int }
	deltas := map[pair][]time.Duration{}
	for _, ev := range evs {
		tl, err := c.Timeline(context.Background(), ev)
		if err != nil {
			r.note("timeline: " + err.Error())
			return
		}
		tl[harness.MSent] = sent[ev.EventID]
		if t, ok := p.Created(ev.Employee["email"]); ok {
			tl[harness.MCreated] = t
		}
		prev := -1
		for i, m := range ms {
			t, ok := tl[m]
			if !ok || t.IsZero() {
				continue
			}
			if prev >= 0 {
				k := pair{prev, i}
				deltas[k] = append(deltas[k], t.Sub(tl[ms[prev]]))
			}
			prev = i
		}
	}
	keys := slices.Collect(maps.Keys(deltas))
	slices.SortFunc(keys, func(a, b pair) int {
		if a.to != b.to {
			return a.to - b.to
		}
		return a.from - b.from
	})
	var parts []string
	for _, k := range keys {
		ds := deltas[k]
		v := float64(harness.Percentile(ds, 50)) / float64(time.Millisecond)
		r.Phases = append(r.Phases, phaseMS{From: ms[k.from], To: ms[k.to], MS: v})
		part := fmt.Sprintf("%.0f → %s", v, ms[k.to])
		if k.from != k.to-1 {
			part = fmt.Sprintf("%.0f → %s (from %s)", v, ms[k.to], ms[k.from])
		}
		if len(ds) < len(evs) {
			part += fmt.Sprintf(" (%d of %d hires)", len(ds), len(evs))
		}
		parts = append(parts, part)
	}
	r.note("p50 ms per phase from " + ms[0] + ": " + strings.Join(parts, ", "))
}
