package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/peertest"
)

// scrape reads a /metrics page into series "name{l1="v1",…}" (labels
// sorted) → value; histograms give their _count and _sum.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := series(name, m.GetLabel())
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[series(name+"_count", m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[series(name+"_sum", m.GetLabel())] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func series(name string, labels []*dto.LabelPair) string {
	ls := make([]string, 0, len(labels))
	for _, l := range labels {
		ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// sum adds the series of name whose labels include every one of match.
func sum(m map[string]float64, name string, match ...string) float64 {
	var total float64
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, l := range match {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// TestMetricsAfterTwentyJoiners: the /metrics of a worker that ran 20
// joiners of the dev policy (sync_identity with a generated password, group
// and entitlement steps, the HR portal handoff, a notification) shows the
// SDK's temporal_* series and jml's jml_* series with the counts of those
// runs, and a vault that held 20 passwords back at 0. A 21st joiner that
// waits for an operator is counted as such, and open.
func TestMetricsAfterTwentyJoiners(t *testing.T) {
	healthAddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	q := startQuickStart(t, t.TempDir(), filepath.Join("..", "examples", "dev-policy.yaml"), "metrics-hmac-secret",
		"--health-addr", healthAddr)
	const joiners = 20
	ids := make([]string, joiners)
	for i := range ids {
		ev := hr.Event{EventID: fmt.Sprintf("evt-m%d", i), Type: hr.Hire, EffectiveAt: time.Now().Add(-time.Hour),
			Employee: map[string]string{"employee_id": fmt.Sprintf("M%d", i), "first_name": "Ada",
				"last_name": fmt.Sprintf("Metric%c", 'a'+i), "department": "Engineering"}}
		acc, err := intake.Submit(context.Background(), q.temporal, ev)
		require.NoError(t, err)
		ids[i] = acc.WorkflowID
	}
	// One more joiner lacks a required attribute: its plan fails and it
	// waits for an operator.
	_, err := intake.Submit(context.Background(), q.temporal, hr.Event{EventID: "evt-m-bad", Type: hr.Hire,
		EffectiveAt: time.Now().Add(-time.Hour), Employee: map[string]string{"employee_id": "MBAD", "first_name": "No", "last_name": "Department"}})
	require.NoError(t, err)
	for _, id := range ids { // they run together; they are awaited in turn
		q.wait(t, id)
	}
	require.Len(t, q.passwords(), joiners, "each joiner generated a password, held in the vault")

	// A completed run leaves the wipe of its passwords to the vault's
	// janitor, which wipes the entries of closed runs every 2 s
	// (activities.WipeClosedRuns), and the open runs are counted in
	// Temporal's visibility store at most every 15 s: wait for both.
	var m map[string]float64
	require.Eventually(t, func() bool {
		m = scrape(t, "http://"+healthAddr+"/metrics")
		return m["jml_vault_entries{}"] == 0 && m[`jml_runs_open{kind="joiner",state="NeedsAttention"}`] == 1
	}, 2*time.Minute, 200*time.Millisecond, "the vault holds passwords of completed runs, or the waiting run is not counted")
	var names []string
	for k := range m {
		if strings.HasPrefix(k, "jml_") {
			names = append(names, fmt.Sprintf("%s %v", k, m[k]))
		}
	}
	sort.Strings(names)
	t.Logf("jml series:\n%s", strings.Join(names, "\n"))

	// jml's own.
	assert.Contains(t, m, "jml_vault_entries{}")
	assert.Equal(t, float64(joiners+1), m[`jml_runs_total{kind="joiner",state="Running"}`], "runs started")
	assert.Equal(t, float64(joiners), m[`jml_runs_total{kind="joiner",state="Completed"}`], "runs completed")
	assert.Equal(t, 1.0, m[`jml_runs_total{kind="joiner",state="NeedsAttention"}`], "the one without a department")
	assert.Equal(t, 1.0, sum(m, "jml_runs_open", `kind="joiner"`), "only the waiting run is open")
	for _, action := range []string{"sync_identity", "create_entitlement", "manage_relationships", "send_rest_request", "notify"} {
		assert.Equal(t, float64(joiners), sum(m, "jml_steps_total", `action="`+action+`"`, `error_class="none"`), action)
	}
	assert.Equal(t, float64(joiners), m[`jml_notifications_total{channel="webhook",event="completed",result="sent"}`])

	// The SDK's, by their standard names.
	assert.Equal(t, float64(joiners), sum(m, "temporal_workflow_completed_total", `workflow_type="`+contract.JoinerWorkflowName+`"`))
	assert.Equal(t, float64(joiners), sum(m, "temporal_activity_execution_latency_seconds_count", `activity_type="SyncIdentity"`))
	assert.Positive(t, sum(m, "temporal_workflow_task_schedule_to_start_latency_seconds_count"))
	assert.Positive(t, sum(m, "temporal_activity_schedule_to_start_latency_seconds_count"))
	assert.Positive(t, sum(m, "temporal_worker_task_slots_available", `worker_type="ActivityWorker"`))
	assert.Zero(t, sum(m, "temporal_activity_execution_failed_total"), "no step failed")
	assert.Positive(t, sum(m, "go_goroutines"), "the Go runtime's")
}
