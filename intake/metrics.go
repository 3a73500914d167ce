package intake

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	inflight prometheus.Gauge
	duration *prometheus.HistogramVec
}

// newMetrics registers the intake metrics on reg, and the Go runtime and
// process collectors when the registry is our own.
func newMetrics(reg *prometheus.Registry, own bool) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_intake_requests_total",
			Help: "HR event deliveries by source (api, workday, bamboohr) and HTTP status code.",
		}, []string{"source", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_intake_events_total",
			Help: "HR events handed to identity workflows, by source, event type and outcome (new, duplicate, conflict).",
		}, []string{"source", "type", "outcome"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jml_intake_in_flight_requests",
			Help: "Event deliveries being handled now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jml_intake_request_duration_seconds",
			Help:    "Time to answer an HR event delivery, including the hand-off to Temporal.",
			Buckets: prometheus.DefBuckets,
		}, []string{"source"}),
	}
	reg.MustRegister(m.requests, m.events, m.inflight, m.duration)
	if own {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

func (m *metrics) observe(source string, status int, d time.Duration) {
	m.requests.WithLabelValues(source, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(source).Observe(d.Seconds())
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
