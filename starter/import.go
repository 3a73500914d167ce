package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// importOptions are the flags of `starter import`.
type importOptions struct {
	file        string
	format      string // csv | jsonl
	policy      *policy.Policy
	eventType   string
	loc         *time.Location
	dryRun      bool
	jsonOut     bool
	concurrency int
}

// importRow is one parsed line: an event, or why it was rejected.
type importRow struct {
	line   int
	event  hr.Event
	reason string
}

// Rejection is a row that was not imported, and why.
type Rejection struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// importSummary is the outcome of an import (printed, or JSON with --json).
type importSummary struct {
	File     string      `json:"file"`
	DryRun   bool        `json:"dry_run"`
	Rows     int         `json:"rows"`
	Started  int         `json:"started"`  // new events (with --dry-run: valid rows)
	Skipped  int         `json:"skipped"`  // event ID already delivered
	Rejected []Rejection `json:"rejected"` // bad rows, by line
	Failed   int         `json:"failed"`   // not delivered: Temporal unavailable
	Stopped  string      `json:"stopped,omitempty"`
	Seconds  float64     `json:"seconds"`
}

// runImport streams a CSV or JSONL file of HR events into Temporal.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: starter import [flags] FILE   (CSV or JSONL; - reads stdin)")
		fs.PrintDefaults()
	}
	policyPath := fs.String("policy", os.Getenv("JML_POLICY"), "policy file: import.columns mapping and required_attributes (env JML_POLICY)")
	format := fs.String("format", "", "csv or jsonl (default: from the file extension)")
	eventType := fs.String("type", "", "event type of rows without a type column (default: the policy's import.type, else hire)")
	tz := fs.String("time-zone", "UTC", "zone of dates without one, for rows without a time_zone attribute")
	dryRun := fs.Bool("dry-run", false, "validate every row and report, start nothing (no Temporal connection)")
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	concurrency := fs.Int("concurrency", 8, "events in flight (rows of one employee stay in file order)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	o := importOptions{file: fs.Arg(0), format: *format, dryRun: *dryRun, jsonOut: *jsonOut, concurrency: max(*concurrency, 1)}
	var err error
	if o.loc, err = time.LoadLocation(*tz); err != nil {
		fmt.Fprintf(stderr, "starter import: --time-zone: unknown zone %q\n", *tz)
		return 2
	}
	if *policyPath != "" {
		if o.policy, err = policy.Load(*policyPath); err != nil {
			fmt.Fprintf(stderr, "starter import: %v\n", err)
			return 2
		}
	} else {
		// Rows the policy would refuse then start runs that stop at plan.
		fmt.Fprintln(stderr, "starter import: no --policy (or JML_POLICY): rows are checked as HR events only, not against the policy's "+
			"required attributes and column mapping; a row missing one starts a run that stops for an operator")
	}
	o.eventType = *eventType
	if o.eventType == "" && o.policy != nil {
		o.eventType = o.policy.Import.Type
	}
	if o.eventType == "" {
		o.eventType = hr.Hire
	}
	if o.format == "" {
		switch strings.ToLower(filepath.Ext(o.file)) {
		case ".jsonl", ".ndjson", ".json":
			o.format = "jsonl"
		default:
			o.format = "csv"
		}
	}
	if o.format != "csv" && o.format != "jsonl" {
		fmt.Fprintf(stderr, "starter import: --format %q: want csv or jsonl\n", o.format)
		return 2
	}

	in, size := io.Reader(os.Stdin), int64(0)
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			fmt.Fprintf(stderr, "starter import: %v\n", err)
			return 2
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	var c client.Client
	if !o.dryRun {
		if c, err = dial(ctx, zap.NewNop()); err != nil {
			fmt.Fprintf(stderr, "starter import: %v\n", err)
			return 1
		}
		defer c.Close()
	}
	counted := &countingReader{r: in}
	prog := newProgress(stderr, size, counted)
	sum := importEvents(ctx, c, counted, o, prog)
	prog.stop()
	printSummary(stdout, sum, o.jsonOut)
	switch {
	case sum.Failed > 0 || sum.Stopped != "":
		return 1
	case len(sum.Rejected) > 0:
		return 2
	}
	return 0
}

// importEvents reads rows and delivers them with o.concurrency workers.
// Rows of one employee always go to the same worker, so a person's hire
// and change in one file reach their workflow in file order.
func importEvents(ctx context.Context, c client.Client, in io.Reader, o importOptions, prog *progress) *importSummary {
	start := time.Now()
	sum := &importSummary{File: o.file, DryRun: o.dryRun, Rejected: []Rejection{}}
	var mu sync.Mutex
	record := func(f func()) {
		mu.Lock()
		f()
		prog.update(sum)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	queues := make([]chan importRow, o.concurrency)
	for i := range queues {
		queues[i] = make(chan importRow, 16)
		wg.Go(func() {
			for row := range queues[i] {
				if ctx.Err() != nil {
					record(func() { sum.Failed++ })
					continue
				}
				acc, err := submitWithRetry(ctx, c, row.event)
				var rej *intake.RejectedError
				var conflict *intake.ConflictError
				record(func() {
					switch {
					case errors.As(err, &rej):
						sum.Rejected = append(sum.Rejected, Rejection{row.line, rej.Error()})
					case errors.As(err, &conflict):
						sum.Rejected = append(sum.Rejected, Rejection{row.line, conflict.Error()})
					case err != nil:
						sum.Failed++
						if sum.Stopped == "" {
							sum.Stopped = fmt.Sprintf("line %d: %v — re-run the same import: rows already delivered are skipped", row.line, err)
						}
						cancel(err)
					case acc.Duplicate:
						sum.Skipped++
					default:
						sum.Started++
					}
				})
			}
		})
	}

	read := readCSV
	if o.format == "jsonl" {
		read = readJSONL
	}
	err := read(in, o, func(row importRow) bool {
		record(func() { sum.Rows++ })
		if row.reason == "" {
			if err := row.event.Validate(o.policy.RequiredFor(row.event.Type)); err != nil {
				row.reason = err.Error()
			}
		}
		switch {
		case row.reason != "":
			record(func() { sum.Rejected = append(sum.Rejected, Rejection{row.line, row.reason}) })
		case o.dryRun:
			record(func() { sum.Started++ })
		default:
			h := fnv.New32a()
			h.Write([]byte(row.event.EmployeeID()))
			select {
			case queues[h.Sum32()%uint32(len(queues))] <- row:
			case <-ctx.Done():
				return false
			}
		}
		return ctx.Err() == nil
	})
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if err != nil && sum.Stopped == "" {
		sum.Stopped = err.Error()
	}
	if ctx.Err() != nil && sum.Stopped == "" {
		sum.Stopped = "interrupted — re-run the same import: rows already delivered are skipped"
	}
	sort.Slice(sum.Rejected, func(i, j int) bool { return sum.Rejected[i].Line < sum.Rejected[j].Line })
	sum.Seconds = time.Since(start).Seconds()
	return sum
}

// submitWithRetry delivers one event, retrying while Temporal is
// unreachable (the event ID makes a retry harmless).
func submitWithRetry(ctx context.Context, c client.Client, ev hr.Event) (workflows.EventAccepted, error) {
	delay := 500 * time.Millisecond
	mayHaveDelivered := false
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := intake.Submit(sctx, c, ev)
		cancel()
		var rej *intake.RejectedError
		var conflict *intake.ConflictError
		if err == nil && mayHaveDelivered {
			// An earlier attempt that timed out on our side may have been
			// delivered; its duplicate is this row's own delivery.
			res.Duplicate = false
		}
		// Only an attempt that ran out of time may have been delivered
		// unbeknown to us; one Temporal refused (unavailable, busy) was not,
		// so a later duplicate is a genuine one (an earlier import's).
		mayHaveDelivered = mayHaveDelivered || errors.Is(err, context.DeadlineExceeded) ||
			grpcstatus.Code(err) == codes.DeadlineExceeded || grpcstatus.Code(err) == codes.Canceled
		if err == nil || errors.As(err, &rej) || errors.As(err, &conflict) || attempt == 4 || ctx.Err() != nil {
			return res, err
		}
		select {
		case <-time.After(delay):
			delay *= 2
		case <-ctx.Done():
			return res, err
		}
	}
}

// readCSV streams CSV rows (first row: header) to emit until it returns false.
func readCSV(in io.Reader, o importOptions, emit func(importRow) bool) error {
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("read CSV header: %w", err)
	}
	cols := make([]string, len(header))
	for i, h := range header {
		cols[i] = columnAttr(o.policy, strings.TrimPrefix(h, "\ufeff"))
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := r.FieldPos(0)
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			if !emit(importRow{line: pe.StartLine, reason: "malformed CSV: " + pe.Err.Error()}) {
				return nil
			}
			continue
		case err != nil:
			return fmt.Errorf("read CSV: %w", err)
		}
		if len(rec) != len(cols) {
			if !emit(importRow{line: line, reason: fmt.Sprintf("%d fields, header has %d", len(rec), len(cols))}) {
				return nil
			}
			continue
		}
		vals := make(map[string]string, len(cols))
		for i, attr := range cols {
			if attr != "" {
				vals[attr] = rec[i]
			}
		}
		if !emit(rowEvent(line, vals, o)) {
			return nil
		}
	}
}

// readJSONL streams one JSON object per line: jml's event shape (with an
// "employee" object) or a flat record mapped like a CSV row.
func readJSONL(in io.Reader, o importOptions, emit func(importRow) bool) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), intake.DefaultMaxBody)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var flat map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &flat); err != nil {
			if !emit(importRow{line: line, reason: "malformed JSON: " + err.Error()}) {
				return nil
			}
			continue
		}
		var row importRow
		if _, nested := flat["employee"]; nested {
			ev, err := hr.ParseJSON([]byte(text))
			row = importRow{line: line, event: ev}
			if err != nil {
				row.reason = err.Error()
			} else if _, ok := flat["type"]; !ok {
				row.event.Type = o.eventType
			}
		} else {
			vals := map[string]string{}
			for k, raw := range flat {
				var s any
				_ = json.Unmarshal(raw, &s)
				switch s := s.(type) {
				case string:
					vals[columnAttr(o.policy, k)] = s
				case nil:
				default:
					vals[columnAttr(o.policy, k)] = strings.TrimSpace(string(raw))
				}
			}
			row = rowEvent(line, vals, o)
		}
		if !emit(row) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read JSONL: %w", err)
	}
	return nil
}

// columnAttr is the attribute a column feeds: the policy's import mapping
// (exact, then case-insensitive), else the column name in snake_case.
func columnAttr(p *policy.Policy, col string) string {
	col = strings.TrimSpace(col)
	if p != nil {
		if a, ok := p.Import.Columns[col]; ok {
			return a
		}
		for c, a := range p.Import.Columns {
			if strings.EqualFold(c, col) {
				return a
			}
		}
	}
	return hr.SnakeCase(col)
}

// rowEvent builds the event of one flat row: event_id, type and
// effective_at (or effective_date) are event fields, the rest attributes;
// without an effective_at, start_date, hire_date or termination_date is used.
func rowEvent(line int, vals map[string]string, o importOptions) importRow {
	ev := hr.Event{EventID: vals["event_id"], Type: vals["type"], Source: o.format, Employee: map[string]string{}}
	if ev.Type == "" {
		ev.Type = o.eventType
	}
	for k, v := range vals {
		switch k {
		case "event_id", "type", "effective_at", "effective_date":
		default:
			ev.Employee[k] = v
		}
	}
	// The first date column present is the effective time.
	var at string
	for _, col := range []string{"effective_at", "effective_date", "start_date", "hire_date", "termination_date"} {
		if at = strings.TrimSpace(vals[col]); at != "" {
			break
		}
	}
	if at != "" {
		loc := o.loc
		if l, err := time.LoadLocation(strings.TrimSpace(vals["time_zone"])); err == nil && vals["time_zone"] != "" {
			loc = l
		}
		t, err := hr.ParseTime(at, loc)
		if err != nil {
			return importRow{line: line, reason: "effective_at: " + err.Error()}
		}
		ev.EffectiveAt = t
	}
	ev.Normalize()
	return importRow{line: line, event: ev}
}

// countingReader counts bytes read, for the progress bar.
type countingReader struct {
	r  io.Reader
	mu sync.Mutex
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// progress draws a bar with rate and ETA on a terminal, or writes a plain
// log line every few seconds otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	size   int64
	read   *countingReader
	start  time.Time
	mu     sync.Mutex
	last   importSummary
	done   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

func newProgress(w io.Writer, size int64, read *countingReader) *progress {
	p := &progress{w: w, size: size, read: read, start: time.Now(), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	p.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-p.done:
				return
			}
		}
	})
	return p
}

func (p *progress) update(s *importSummary) {
	p.mu.Lock()
	p.last = *s
	p.mu.Unlock()
}

func (p *progress) stop() {
	p.closed.Do(func() {
		close(p.done)
		p.wg.Wait()
		p.draw(true)
	})
}

func (p *progress) draw(final bool) {
	p.mu.Lock()
	s := p.last
	p.mu.Unlock()
	elapsed := time.Since(p.start)
	done := s.Started + s.Skipped + len(s.Rejected) + s.Failed
	rate := float64(done) / max(elapsed.Seconds(), 0.001)
	counts := fmt.Sprintf("%d rows: %d started, %d skipped, %d rejected", s.Rows, s.Started, s.Skipped, len(s.Rejected))
	if !p.tty {
		if !final {
			fmt.Fprintf(p.w, "import: %s (%.0f rows/s)\n", counts, rate)
		}
		return
	}
	frac, eta := 0.0, "?"
	if p.size > 0 {
		frac = min(float64(p.read.count())/float64(p.size), 1)
		if frac > 0 && !final {
			eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
		}
	}
	if final {
		frac, eta = 1, "0s"
	}
	const width = 30
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	fmt.Fprintf(p.w, "\r\x1b[K[%s] %3.0f%%  %s  %.0f rows/s  ETA %s", bar, frac*100, counts, rate, eta)
	if final {
		fmt.Fprintln(p.w)
	}
}

func printSummary(w io.Writer, s *importSummary, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return
	}
	verb := "started"
	if s.DryRun {
		verb = "would start"
	}
	fmt.Fprintf(w, "%s: %d rows in %.1fs\n", s.File, s.Rows, s.Seconds)
	fmt.Fprintf(w, "  %-12s %d\n", verb, s.Started)
	fmt.Fprintf(w, "  %-12s %d (event already delivered)\n", "skipped", s.Skipped)
	fmt.Fprintf(w, "  %-12s %d\n", "rejected", len(s.Rejected))
	const show = 50
	for i, r := range s.Rejected {
		if i == show {
			fmt.Fprintf(w, "    … and %d more (--json lists all)\n", len(s.Rejected)-show)
			break
		}
		fmt.Fprintf(w, "    line %d: %s\n", r.Line, r.Reason)
	}
	if s.Failed > 0 {
		fmt.Fprintf(w, "  %-12s %d\n", "not sent", s.Failed)
	}
	if s.Stopped != "" {
		fmt.Fprintf(w, "stopped: %s\n", s.Stopped)
	}
}
