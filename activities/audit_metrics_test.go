package activities

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/internal/metrics"
)

type flakyStore struct{ down bool }

func (s *flakyStore) Append(_ context.Context, recs []audit.Record) (int, error) {
	if s.down {
		return 0, errors.New("database is locked")
	}
	return len(recs), nil
}

// An audit store that refuses a write is counted
// (jml_audit_write_failures_total, alerted on by JmlAuditStoreFailing):
// the run waits for it, and nothing else says so.
func TestAuditWriteFailuresCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, nil)
	require.NoError(t, err)
	store := &flakyStore{down: true}
	a := New(Config{Audit: store, Metrics: m})
	recs := []audit.Record{{Key: "w/r/1", Action: audit.AccountCreated}}
	require.Error(t, a.RecordAudit(context.Background(), recs))
	require.Error(t, a.RecordAudit(context.Background(), recs))
	store.down = false
	require.NoError(t, a.RecordAudit(context.Background(), recs))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jml_audit_write_failures_total Audit record writes the audit store refused or did not answer (each is retried; the run waits until its records are stored).
# TYPE jml_audit_write_failures_total counter
jml_audit_write_failures_total 2
`), "jml_audit_write_failures_total"))
}
