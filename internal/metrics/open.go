package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/contract"
)

// WorkflowCounter counts workflows by a visibility query (client.Client).
type WorkflowCounter interface {
	CountWorkflow(ctx context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}

// openKinds and openStates are the series of jml_runs_open: the workflow
// type of each kind of run, and the states an open run can be in.
var (
	openKinds = []struct{ kind, workflowType string }{
		{"joiner", contract.JoinerWorkflowName}, {"mover", contract.MoverWorkflowName}, {"leaver", contract.LeaverWorkflowName},
	}
	openStates = []string{contract.StateWaiting, contract.StateRunning, contract.StateNeedsAttention, contract.StateBlocked}
)

// openRuns is jml_runs_open: the namespace's open runs by kind and state,
// counted in Temporal's visibility store, not in this worker, so that a
// run waiting for an operator is counted whichever worker last ran it (and
// after restarts). Every worker reports the same figures: aggregate them
// with max, not sum. The counts are read at most once per interval.
type openRuns struct {
	c        WorkflowCounter
	ns       string
	interval time.Duration
	log      *zap.Logger
	desc     *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[[2]string]int64
}

// RegisterOpenRuns registers jml_runs_open on reg, read from c in namespace
// ns at most once per interval (at scrape time; a scrape within the
// interval gets the figures of the last count). When the count fails the
// series are left out of that scrape (and logged).
func RegisterOpenRuns(reg prometheus.Registerer, c WorkflowCounter, ns string, interval time.Duration, log *zap.Logger) error {
	return reg.Register(&openRuns{c: c, ns: ns, interval: interval, log: log,
		desc: prometheus.NewDesc("jml_runs_open",
			"Open lifecycle runs in the namespace by kind and state (JmlState), from Temporal's visibility store; the same on every worker.",
			[]string{"kind", "state"}, nil)})
}

func (o *openRuns) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *openRuns) Collect(ch chan<- prometheus.Metric) {
	counts, err := o.read()
	if err != nil {
		o.log.Warn("jml_runs_open: count of open runs failed", zap.Error(err))
		return
	}
	for _, k := range openKinds {
		for _, s := range openStates {
			ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, float64(counts[[2]string{k.kind, s}]), k.kind, s)
		}
	}
}

func (o *openRuns) read() (map[[2]string]int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts != nil && time.Since(o.at) < o.interval {
		return o.counts, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts := map[[2]string]int64{}
	for _, k := range openKinds {
		for _, s := range openStates {
			q := fmt.Sprintf("WorkflowType = %q AND ExecutionStatus = 'Running' AND %s = %q", k.workflowType, contract.SAState, s)
			res, err := o.c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: o.ns, Query: q})
			if err != nil {
				return nil, fmt.Errorf("count %s runs in %s: %w", k.kind, s, err)
			}
			counts[[2]string{k.kind, s}] = res.GetCount()
		}
	}
	o.counts, o.at = counts, time.Now()
	return counts, nil
}
