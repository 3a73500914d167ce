package metrics

import (
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/contract"
)

// Prefix names jml's own metrics; the SDK's start with temporal_.
const Prefix = "jml_"

// latencyBuckets are the histogram bounds (seconds) of the SDK's timers:
// OpenTelemetry's defaults (0–10000) suit milliseconds, and would put every
// schedule-to-start latency in the first bucket.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// workflowLabels are the label names of the counters workflows emit, by
// metric; the rest are tagged by target only (jml_reconcile_*,
// jml_attribute_sync_*).
var workflowLabels = map[string][]string{
	contract.MetricRuns: {"kind", "state"},
}

// Handler is a client.MetricsHandler: set it as client.Options.MetricsHandler
// of the worker's client. The SDK's metrics go to OpenTelemetry and out
// through its Prometheus exporter; jml's counters (Prefix) are Prometheus
// counters named <name>_total with their own labels only, so that the
// SDK's tags (namespace, task queue, workflow type) do not multiply them.
type Handler struct {
	root *registry
	tags map[string]string
	sdk  client.MetricsHandler
}

type registry struct {
	reg      prometheus.Registerer
	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
}

// NewSDKHandler registers the SDK's metrics exporter on reg and returns the
// handler; jml's counters are registered on reg as they are first used.
// An SDK metric that cannot be recorded is logged to log (nil: dropped).
func NewSDKHandler(reg prometheus.Registerer, log *zap.Logger) (*Handler, error) {
	if log == nil {
		log = zap.NewNop()
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(sdkmetric.NewView(
		sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}},
	)))
	sdk := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: mp.Meter("temporal-sdk-go"),
		// Counters as Prometheus counters (temporal_*_total), not gauges.
		UseMonotonicCounters: true,
		// The default panics; a metric the SDK cannot record is not worth a
		// worker.
		OnError: func(err error) { log.Warn("SDK metric not recorded", zap.Error(err)) },
	})
	return &Handler{root: &registry{reg: reg, counters: map[string]*prometheus.CounterVec{}}, sdk: sdk}, nil
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
	return &Handler{root: h.root, tags: merged, sdk: h.sdk.WithTags(tags)}
}

// Counter is a Prometheus counter for jml's metrics, the SDK's otherwise.
func (h *Handler) Counter(name string) client.MetricsCounter {
	if !strings.HasPrefix(name, Prefix) {
		return h.sdk.Counter(name)
	}
	labels := workflowLabels[name]
	if labels == nil {
		labels = []string{"target"}
	}
	vec := h.root.counter(name, labels)
	if vec == nil {
		return client.MetricsNopHandler.Counter(name)
	}
	values := make([]string, len(labels))
	for i, l := range labels {
		values[i] = h.tags[l]
	}
	return counter{vec.WithLabelValues(values...)}
}

// Gauge is the SDK's (jml's gauges are not emitted from workflows).
func (h *Handler) Gauge(name string) client.MetricsGauge { return h.sdk.Gauge(name) }

// Timer is the SDK's.
func (h *Handler) Timer(name string) client.MetricsTimer { return h.sdk.Timer(name) }

func (r *registry) counter(name string, labels []string) *prometheus.CounterVec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[name]; ok {
		return c
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: name + "_total",
		Help: "jml workflow counter " + name + " (docs/reconciliation.md, docs/operations.md), by " + strings.Join(labels, ", ") + ".",
	}, labels)
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
