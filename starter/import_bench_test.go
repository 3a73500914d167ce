package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jml-dev/jml/intake/intaketest"
)

// BenchmarkImport delivers 500 new hires per iteration to a temporaltest
// server with the stand-in identity workflow, at several concurrencies.
func BenchmarkImport(b *testing.B) {
	env := intaketest.Start(b, intaketest.Options{})
	b.Setenv("TEMPORAL_ADDRESS", env.Addr)
	b.Setenv("TEMPORAL_NAMESPACE", env.Namespace)
	c := env.Client
	const rows = 500
	batch := 0 // unique employee IDs across b.N rounds
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				batch++
				var sb strings.Builder
				sb.WriteString("employee_id,first_name,last_name,effective_at\n")
				for r := range rows {
					fmt.Fprintf(&sb, "B%d-%d,A,B,2026-12-01T09:00:00Z\n", batch, r)
				}
				o := importOptions{file: "bench.csv", format: "csv", eventType: "hire", loc: time.UTC, concurrency: conc}
				prog := newProgress(discard{}, 0, &countingReader{r: strings.NewReader("")})
				start := time.Now()
				sum := importEvents(context.Background(), c, strings.NewReader(sb.String()), o, prog)
				total += time.Since(start)
				prog.stop()
				if sum.Started+sum.Skipped != rows || sum.Failed > 0 {
					b.Fatalf("started %d of %d: %+v", sum.Started, rows, sum)
				}
			}
			b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
