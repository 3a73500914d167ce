// Package workflowmetrics exports the counters jml's workflows emit
// through Temporal's metrics handler (jml_attribute_sync_*,
// jml_reconcile_*, tagged by target) to Prometheus, as
// <name>_total{target="…"}. The SDK's own metrics are not exported.
package workflowmetrics

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Prefix selects the metrics exported.
const Prefix = "jml_"

// Handler is a client.MetricsHandler: set it as client.Options.MetricsHandler
// of the worker's client.
type Handler struct {
	root *registry
	tags map[string]string
}

type registry struct {
	reg      prometheus.Registerer
	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
}

// New registers the counters on reg as they are first used.
func New(reg prometheus.Registerer) *Handler {
	return &Handler{root: &registry{reg: reg, counters: map[string]*prometheus.CounterVec{}}}
}

// WithTags returns a handler whose metrics carry tags too.
func (h *Handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return &Handler{root: h.root, tags: merged}
}

// Counter is a Prometheus counter for jml's metrics, a no-op for others.
func (h *Handler) Counter(name string) client.MetricsCounter {
	if !strings.HasPrefix(name, Prefix) {
		return client.MetricsNopHandler.Counter(name)
	}
	vec := h.root.counter(name)
	if vec == nil {
		return client.MetricsNopHandler.Counter(name)
	}
	return counter{vec.WithLabelValues(h.tags["target"])}
}

// Gauge is not exported.
func (h *Handler) Gauge(name string) client.MetricsGauge { return client.MetricsNopHandler.Gauge(name) }

// Timer is not exported.
func (h *Handler) Timer(name string) client.MetricsTimer { return client.MetricsNopHandler.Timer(name) }

func (r *registry) counter(name string) *prometheus.CounterVec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[name]; ok {
		return c
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: name + "_total",
		Help: "jml workflow counter " + name + " (docs/reconciliation.md, docs/operations.md), by target.",
	}, []string{"target"})
	if err := r.reg.Register(c); err != nil {
		r.counters[name] = nil // a clashing name: counted nowhere rather than panicking in a workflow
		return nil
	}
	r.counters[name] = c
	return c
}

type counter struct{ c prometheus.Counter }

func (c counter) Inc(d int64) {
	if d > 0 {
		c.c.Add(float64(d))
	}
}
