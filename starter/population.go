package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/simulate"
)

// populationArgs are the flags of `starter preview --population`.
type populationArgs struct {
	policy, population, against string
	eventSet, json              bool
	extra                       []string
}

// populationResult is what `starter preview --population --json` prints.
type populationResult struct {
	Policy     string  `json:"policy"`
	Against    string  `json:"against,omitempty"`
	Population string  `json:"population"`
	Seconds    float64 `json:"seconds"`
	*simulate.Report
}

// runPopulation is the population dry run: every row of an HR export
// (CSV or JSONL, read like `starter import`) through the policy, no
// network. Exit 0: no conflict; 1: conflicts that would stop runs; 2: bad
// input (usage, a policy that does not load, an unreadable file or rows
// that are not HR records).
func runPopulation(ctx context.Context, a populationArgs, stdout, stderr io.Writer) int {
	switch {
	case a.policy == "" || a.population == "":
		fmt.Fprintln(stderr, "starter preview: --population needs --policy and a file: starter preview --policy P.yaml --population PEOPLE.csv [--against OLD.yaml]")
		return 2
	case a.eventSet:
		fmt.Fprintln(stderr, "starter preview: give --event or --population, not both")
		return 2
	case len(a.extra) > 0:
		fmt.Fprintf(stderr, "starter preview: unexpected arguments %q\n", a.extra)
		return 2
	}
	p, err := policy.Load(a.policy)
	if err != nil {
		fmt.Fprintf(stderr, "policy %s is not valid:\n%v\n", a.policy, err)
		return 2
	}
	var old *policy.Policy
	if a.against != "" {
		if old, err = policy.Load(a.against); err != nil {
			fmt.Fprintf(stderr, "policy %s (--against) is not valid:\n%v\n", a.against, err)
			return 2
		}
	}
	f, err := os.Open(a.population)
	if err != nil {
		fmt.Fprintf(stderr, "starter preview: %v\n", err)
		return 2
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	counted := &countingReader{r: f}
	bar := newPopulationBar(stderr, size, counted)
	start := time.Now()
	rows, readErr := populationRows(counted, a.population, p)
	rep, err := simulate.Run(ctx, rows, simulate.Options{Policy: p, Against: old, Now: start, Progress: bar.rows})
	bar.stop()
	if err == nil {
		err = *readErr
	}
	if err != nil {
		fmt.Fprintf(stderr, "starter preview: %s: %v\n", a.population, err)
		return 2
	}
	res := populationResult{Policy: a.policy, Against: a.against, Population: a.population,
		Seconds: time.Since(start).Seconds(), Report: rep}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "starter preview: %v\n", err)
			return 2
		}
	} else {
		printPopulation(stdout, res)
	}
	switch {
	case len(rep.Rejected) > 0:
		return 2
	case len(rep.Conflicts) > 0:
		return 1
	}
	return 0
}

// populationRows reads the file as `starter import` does (the policy's
// column mapping; rows without a type are its import.type, else hire).
// The error, if reading stops, is set once the sequence is done.
func populationRows(in io.Reader, name string, p *policy.Policy) (iter.Seq[simulate.Row], *error) {
	o := importOptions{file: name, format: "csv", policy: p, eventType: p.Import.Type, loc: time.UTC}
	if o.eventType == "" {
		o.eventType = hr.Hire
	}
	read := readCSV
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json":
		o.format, read = "jsonl", readJSONL
	}
	var err error
	return func(yield func(simulate.Row) bool) {
		err = read(in, o, func(r importRow) bool {
			return yield(simulate.Row{Line: r.line, Event: r.event, Reject: r.reason})
		})
	}, &err
}

func printPopulation(w io.Writer, r populationResult) {
	fmt.Fprintf(w, "Population dry run of %s over %s: %d rows in %.1fs — nothing is sent, no target is asked.\n",
		r.Policy, r.Population, r.Rows, r.Seconds)
	if r.Against != "" {
		fmt.Fprintf(w, "Only what changes from %s.\n", r.Against)
	}
	fmt.Fprintln(w)
	if len(r.Flows) > 1 || r.Flows[simulate.NoFlow] > 0 {
		fmt.Fprintf(w, "People by flow (scopes): %s\n", counts(r.Flows))
	}
	for _, m := range r.Moves {
		what := "flow " + m.Flow
		if m.Step != "" {
			what = m.Flow + " " + m.Step
		}
		fmt.Fprintf(w, "Scope/condition change: %s: %d in, %d out\n", what, m.In, m.Out)
	}
	if len(r.Flows) > 1 || len(r.Moves) > 0 {
		fmt.Fprintln(w)
	}
	if len(r.Steps) == 0 {
		fmt.Fprintln(w, "No step does anything.")
	}
	for _, s := range r.Steps {
		target := ""
		if s.Target != "" {
			target = " → " + s.Target
		}
		fmt.Fprintf(w, "%s %s (%s%s): %s\n", s.Flow, s.Step, s.Action, target, counts(s.Counts))
		if len(s.Attributes) > 0 {
			fmt.Fprintf(w, "    updates by attribute: %s\n", counts(s.Attributes))
		}
		if len(s.Groups) > 0 {
			fmt.Fprintf(w, "    groups: %s\n", counts(s.Groups))
		}
		for _, e := range s.Examples {
			fmt.Fprintf(w, "    e.g. %s (line %d) %s: %s\n", e.EmployeeID, e.Line, e.Kind, e.Detail)
		}
	}
	fmt.Fprintf(w, "\nTotals: %s\n", counts(r.Totals))
	if len(r.Resolved) > 0 {
		fmt.Fprintf(w, "Identifiers another person renders first, resolved by fallbacks: %s\n", counts(r.Resolved))
	}
	if r.PreExisting > 0 {
		fmt.Fprintf(w, "Conflicts the old policy has too (not listed): %d\n", r.PreExisting)
	}
	if len(r.Conflicts) == 0 {
		fmt.Fprintln(w, "Conflicts: none")
	} else {
		fmt.Fprintf(w, "Conflicts that would stop runs: %d (%s)\n", len(r.Conflicts), counts(r.ConflictCounts))
		const show = 20
		shown := map[string]int{}
		for _, c := range r.Conflicts {
			if shown[c.Kind]++; shown[c.Kind] > show {
				continue
			}
			fmt.Fprintf(w, "  line %d: %s: %s\n", c.Line, c.Kind, c.Message)
		}
		for _, k := range slices.Sorted(maps.Keys(shown)) {
			if shown[k] > show {
				fmt.Fprintf(w, "  … and %d more %s (--json lists all)\n", shown[k]-show, k)
			}
		}
	}
	if len(r.Rejected) > 0 {
		fmt.Fprintf(w, "Rows that are not HR records: %d\n", len(r.Rejected))
		for i, rej := range r.Rejected {
			if i == 20 {
				fmt.Fprintf(w, "  … and %d more (--json lists all)\n", len(r.Rejected)-20)
				break
			}
			fmt.Fprintf(w, "  line %d: %s\n", rej.Line, rej.Reason)
		}
	}
}

// counts prints "a 3, b 1", largest first (then by name).
func counts(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// populationBar draws a progress bar on stderr when it is a terminal, and
// nothing otherwise (CI logs stay clean).
type populationBar struct {
	w     io.Writer
	size  int64
	read  *countingReader
	start time.Time
	mu    sync.Mutex
	n     int
	done  chan struct{}
	wg    sync.WaitGroup
}

func newPopulationBar(w io.Writer, size int64, read *countingReader) *populationBar {
	b := &populationBar{w: w, size: size, read: read, start: time.Now()}
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return b
	}
	b.done = make(chan struct{})
	b.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.draw(false)
			case <-b.done:
				return
			}
		}
	})
	return b
}

func (b *populationBar) rows(n int) {
	b.mu.Lock()
	b.n = n
	b.mu.Unlock()
}

func (b *populationBar) stop() {
	if b.done == nil {
		return
	}
	close(b.done)
	b.wg.Wait()
	b.draw(true)
}

func (b *populationBar) draw(final bool) {
	b.mu.Lock()
	n := b.n
	b.mu.Unlock()
	frac := 1.0
	if b.size > 0 && !final {
		frac = min(float64(b.read.count())/float64(b.size), 1)
	}
	const width = 30
	rate := float64(n) / max(time.Since(b.start).Seconds(), 0.001)
	fmt.Fprintf(b.w, "\r\x1b[K[%s%s] %3.0f%%  %d rows  %.0f rows/s", strings.Repeat("=", int(frac*width)),
		strings.Repeat(" ", width-int(frac*width)), frac*100, n, rate)
	if final {
		fmt.Fprintln(b.w)
	}
}
