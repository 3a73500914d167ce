// Package metrics is where the worker's Prometheus metrics are defined,
// on a registry the worker injects and serves on --health-addr /metrics
// (docs/operations.md lists them):
//
//   - the Temporal SDK's temporal_* metrics (task slots, poll and
//     schedule-to-start latencies, activity and workflow task failures),
//     through the SDK's OpenTelemetry contrib and OpenTelemetry's
//     Prometheus exporter (Handler);
//   - the counters jml's workflows emit through workflow.GetMetricsHandler,
//     which the SDK drops during replay (Handler: jml_runs_total,
//     jml_reconcile_*_total, jml_attribute_sync_*_total);
//   - what the worker itself counts (Metrics): step attempts, source polls,
//     notifications, failed audit writes and the passwords its vault holds.
package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// NewRegistry is the registry a worker serves: its own, never the global
// one, with the Go runtime's and the process's metrics (go_*, process_*).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Metrics are the counters the worker keeps of its own work. A nil
// *Metrics counts nothing.
type Metrics struct {
	steps         *prometheus.CounterVec
	sourcePolls   *prometheus.CounterVec
	notifications *prometheus.CounterVec
	auditFailures prometheus.Counter
}

// New registers jml's worker metrics on reg. vaultEntries reports how many
// secrets the worker's vault holds (jml_vault_entries, read at scrape
// time); nil leaves the gauge out.
func New(reg prometheus.Registerer, vaultEntries func() int) (*Metrics, error) {
	m := &Metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_steps_total",
			Help: "Step attempts finished on this worker, by policy action, target and error class (\"none\": succeeded).",
		}, []string{"action", "target", "error_class"}),
		sourcePolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_source_polls_total",
			Help: "Source poll attempts finished on this worker, by source and error class (\"none\": succeeded).",
		}, []string{"source", "error_class"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_notifications_total",
			Help: "Notify step attempts, by channel, run outcome and result (sent, not_subscribed, failed).",
		}, []string{"channel", "event", "result"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jml_audit_write_failures_total",
			Help: "Audit record writes the audit store refused or did not answer (each is retried; the run waits until its records are stored).",
		}),
	}
	cs := []prometheus.Collector{m.steps, m.sourcePolls, m.notifications, m.auditFailures}
	if vaultEntries != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jml_vault_entries",
			Help: "Generated and temporary passwords held in this worker's memory (runs in flight hold them; 0 when idle).",
		}, func() float64 { return float64(vaultEntries()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Notification counts one notify step: result is sent, not_subscribed or
// failed.
func (m *Metrics) Notification(channel, event, result string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(channel, event, result).Inc()
}

// AuditWriteFailed counts one write to the audit store that failed.
func (m *Metrics) AuditWriteFailed() {
	if m == nil {
		return
	}
	m.auditFailures.Inc()
}

// ErrorClass is how an activity's error is counted: the Temporal
// application error's type (Transient, Conflict, RateLimited, a
// connector's own such as ScimValidation), Canceled, or Other; "none" for
// success. Activities classify every error once (activities.toTemporal), so
// the set is small.
func ErrorClass(err error) string {
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &app) && app.Type() != "":
		return app.Type()
	case temporal.IsCanceledError(err), errors.Is(err, context.Canceled):
		return "Canceled"
	}
	return "Other"
}

// StepLabeler is the input of a policy step's activity
// (activities.StepInput): it names the step's action and target.
type StepLabeler interface {
	StepLabels() (action, target string)
}

// SourceLabeler is the input of a source poll (workflows.SourcePollInput).
type SourceLabeler interface {
	SourceLabel() string
}

// Interceptor counts every step and source poll attempt this worker
// finishes, by the input it was given: one place for all actions, with
// nothing added to the workflows' commands.
func (m *Metrics) Interceptor() interceptor.WorkerInterceptor {
	return &workerInterceptor{m: m}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	m *Metrics
}

func (w *workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &activityInterceptor{m: w.m}
	i.Next = next
	return i
}

type activityInterceptor struct {
	interceptor.ActivityInboundInterceptorBase
	m *Metrics
}

func (a *activityInterceptor) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	out, err := a.Next.ExecuteActivity(ctx, in)
	if a.m == nil || len(in.Args) == 0 {
		return out, err
	}
	switch arg := in.Args[0].(type) {
	case StepLabeler:
		action, target := arg.StepLabels()
		a.m.steps.WithLabelValues(action, target, ErrorClass(err)).Inc()
	case SourceLabeler:
		a.m.sourcePolls.WithLabelValues(arg.SourceLabel(), ErrorClass(err)).Inc()
	}
	return out, err
}
