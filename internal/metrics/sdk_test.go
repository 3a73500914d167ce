package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
)

func TestHandlerExportsJmlCountersWithTheirLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewSDKHandler(reg, nil)
	require.NoError(t, err)
	wf := h.WithTags(map[string]string{"namespace": "default", "workflow_type": "AttributeSync"})
	wf.WithTags(map[string]string{"target": "okta"}).Counter("jml_reconcile_orphans").Inc(7)
	wf.WithTags(map[string]string{"target": "okta"}).Counter("jml_reconcile_orphans").Inc(0)
	wf.WithTags(map[string]string{"target": "app"}).Counter("jml_reconcile_orphans").Inc(2)
	wf.WithTags(map[string]string{"kind": "joiner", "state": "Completed"}).Counter(contract.MetricRuns).Inc(1)

	want := `
# HELP jml_reconcile_orphans_total jml workflow counter jml_reconcile_orphans (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_orphans_total counter
jml_reconcile_orphans_total{target="app"} 2
jml_reconcile_orphans_total{target="okta"} 7
# HELP jml_runs_total jml workflow counter jml_runs (docs/reconciliation.md, docs/operations.md), by kind, state.
# TYPE jml_runs_total counter
jml_runs_total{kind="joiner",state="Completed"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "jml_reconcile_orphans_total", "jml_runs_total"))
}

// The SDK's metrics come out as Prometheus counters and histograms in
// seconds, with the SDK's tags as labels.
func TestHandlerExportsSDKMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewSDKHandler(reg, nil)
	require.NoError(t, err)
	wf := h.WithTags(map[string]string{"namespace": "default", "workflow_type": "joiner"})
	wf.Counter("temporal_workflow_completed").Inc(3)
	wf.Timer("temporal_workflow_task_schedule_to_start_latency").Record(40 * time.Millisecond)
	wf.Gauge("temporal_worker_task_slots_available").Update(5)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			assert.Equal(t, map[string]string{"namespace": "default", "workflow_type": "joiner"}, labels, mf.GetName())
			switch {
			case m.Counter != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
				for _, b := range m.GetHistogram().GetBucket() {
					if b.GetUpperBound() == 0.05 {
						assert.EqualValues(t, 1, b.GetCumulativeCount(), "40ms falls in the 50ms bucket")
					}
				}
			}
		}
	}
	assert.Equal(t, map[string]float64{
		"temporal_workflow_completed_total":                        3,
		"temporal_workflow_task_schedule_to_start_latency_seconds": 1,
		"temporal_worker_task_slots_available":                     5,
	}, got)
}
