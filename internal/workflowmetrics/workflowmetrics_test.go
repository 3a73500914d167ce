package workflowmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandlerExportsJmlCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := New(reg)
	wf := h.WithTags(map[string]string{"namespace": "default", "workflow_type": "AttributeSync"})
	wf.WithTags(map[string]string{"target": "okta"}).Counter("jml_reconcile_orphans").Inc(7)
	wf.WithTags(map[string]string{"target": "okta"}).Counter("jml_reconcile_orphans").Inc(0)
	wf.WithTags(map[string]string{"target": "app"}).Counter("jml_reconcile_orphans").Inc(2)
	wf.Counter("temporal_workflow_completed").Inc(1) // the SDK's own: not exported
	wf.Gauge("jml_x").Update(1)

	want := `
# HELP jml_reconcile_orphans_total jml workflow counter jml_reconcile_orphans (docs/reconciliation.md, docs/operations.md), by target.
# TYPE jml_reconcile_orphans_total counter
jml_reconcile_orphans_total{target="app"} 2
jml_reconcile_orphans_total{target="okta"} 7
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}
