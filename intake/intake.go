// Package intake is jml's HTTP front door for HR events: it authenticates a
// delivery (HMAC signature or bearer token), parses it — jml's own JSON
// shape, or a Workday- or BambooHR-style body — validates it, and hands each
// event to the person's identity workflow with update-with-start. Bad input
// is answered with a 4xx that names the problem and starts nothing.
// See docs/intake.md.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// DefaultMaxBody is the largest accepted body (1 MiB).
const DefaultMaxBody = 1 << 20

// Config configures the intake handler.
type Config struct {
	Client client.Client
	// Policy supplies the required employee attributes (nil: only
	// employee_id and the built-in fields are checked).
	Policy *policy.Policy
	// HMACSecret (JML_INTAKE_HMAC_SECRET) verifies signed requests;
	// BearerToken (JML_INTAKE_TOKEN) accepts Authorization: Bearer. At least
	// one is needed unless AllowUnauthenticated.
	HMACSecret  string
	BearerToken string
	// AllowUnauthenticated accepts unsigned requests (worker --dev only).
	AllowUnauthenticated bool
	Logger               *zap.Logger
	Now                  func() time.Time // default time.Now
	MaxBody              int64            // default DefaultMaxBody
	// SubmitTimeout bounds one delivery to Temporal (default 15s); when it
	// passes the caller gets 503 and retries.
	SubmitTimeout time.Duration
	// Registry receives the intake metrics (default: a new registry, served
	// on /metrics either way).
	Registry *prometheus.Registry
	// MaxInFlight bounds concurrent event deliveries (default 64); beyond it
	// callers get 503 and retry, instead of piling up on a slow Temporal.
	MaxInFlight int
	// Submit delivers one event (default: Submit with Client). Tests
	// replace it to script the workflow's answers.
	Submit func(ctx context.Context, ev hr.Event) (workflows.EventAccepted, error)
	// Known reports whether jml has an identity for an employee ID, and
	// Holder which other spelling of it (letter case) one has (defaults:
	// Known and Holder with Client; none without a Client). A change or
	// termination for an unknown person, and a new person whose ID only
	// differs by case from a known one, are refused with nothing started.
	Known  func(ctx context.Context, employeeID string) (bool, error)
	Holder func(ctx context.Context, employeeID string) (string, error)
	// Claim claims an event's ID for its person (default: ClaimEvent with
	// Client; none without a Client): an ID another person's event used is
	// refused (409) with nothing started.
	Claim func(ctx context.Context, ev hr.Event) error

	// Directory resolves the person of an access request (POST
	// /v1/requests; default: the identity workflows through Client,
	// decoded with DataConverter).
	Directory     activities.Directory
	DataConverter converter.DataConverter
	// ApprovalKey (JML_APPROVAL_KEY) verifies the approval links of
	// GET/POST /v1/approvals; nil: links are refused.
	ApprovalKey []byte
}

// parser turns a body into events; one per payload shape.
type parser func(body []byte) ([]hr.Event, error)

type server struct {
	cfg      Config
	metrics  *metrics
	inflight chan struct{}
}

// New returns the intake handler:
//
//	POST /v1/events            jml's JSON event
//	POST /v1/events/workday    Workday-style business process message
//	POST /v1/events/bamboohr   BambooHR field-based webhook
//	POST /v1/requests          an access request (docs/approvals.md)
//	GET  /v1/approvals?t=…     an approval link: what is asked, two buttons
//	POST /v1/approvals         the answer (form: t, decision, reason)
//	GET  /healthz              the process is up
//	GET  /readyz               Temporal answers
//	GET  /metrics              Prometheus metrics
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.SubmitTimeout <= 0 {
		cfg.SubmitTimeout = 15 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if c := cfg.Client; c != nil && cfg.Known == nil {
		cfg.Known = func(ctx context.Context, id string) (bool, error) { return Known(ctx, c, id) }
	}
	if c := cfg.Client; c != nil && cfg.Claim == nil {
		cfg.Claim = func(ctx context.Context, ev hr.Event) error { return ClaimEvent(ctx, c, ev) }
	}
	if c := cfg.Client; c != nil && cfg.Holder == nil {
		cfg.Holder = func(ctx context.Context, id string) (string, error) { return Holder(ctx, c, id) }
	}
	if c := cfg.Client; c != nil && cfg.Directory == nil {
		cfg.Directory = activities.TemporalDirectory{Client: c, DataConverter: cfg.DataConverter}
	}
	if cfg.Policy == nil {
		cfg.Policy = &policy.Policy{}
	}
	own := cfg.Registry == nil
	if own {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &server{cfg: cfg, metrics: newMetrics(cfg.Registry, own), inflight: make(chan struct{}, cfg.MaxInFlight)}
	mux := http.NewServeMux()
	ours := func(body []byte) ([]hr.Event, error) {
		ev, err := hr.ParseJSON(body)
		return []hr.Event{ev}, err
	}
	mux.Handle("POST /v1/events", s.events("api", ours, false))
	mux.Handle("POST /v1/events/workday", s.events("workday", hr.ParseWorkday, false))
	mux.Handle("POST /v1/events/bamboohr", s.events("bamboohr", hr.ParseBambooHR, true))
	mux.HandleFunc("POST /v1/requests", s.requests)
	mux.HandleFunc("GET /v1/approvals", s.approvalForm)
	mux.HandleFunc("POST /v1/approvals", s.approvalDecide)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", s.metrics.handler(cfg.Registry))
	return mux
}

// Response is the body of every answer to POST /v1/events*.
type Response struct {
	// Events lists each accepted event (several for a BambooHR batch).
	Events []Result `json:"events,omitempty"`
	// WorkflowID and EventID repeat the first event, for the common
	// single-event case.
	WorkflowID string `json:"workflow_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	Duplicate  bool   `json:"duplicate,omitempty"`

	// Error says what went wrong. On 409 EventID and WorkflowID name the
	// conflicting event and the run that holds its first version.
	Error  string          `json:"error,omitempty"`
	Fields []hr.FieldError `json:"fields,omitempty"` // 422: every invalid field
	Line   int             `json:"line,omitempty"`   // 400: parse position
	Column int             `json:"column,omitempty"`

	events []hr.Event // validated, not yet delivered
}

// Result is one delivered event.
type Result struct {
	EventID    string `json:"event_id"`
	EmployeeID string `json:"employee_id"`
	WorkflowID string `json:"workflow_id"`
	Duplicate  bool   `json:"duplicate"`
}

func (s *server) events(source string, parse parser, bamboo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var status int
		var resp Response
		var cause error // why Temporal did not take the event (503)
		select {
		case s.inflight <- struct{}{}:
			s.metrics.inflight.Inc()
			status, resp, cause = s.handle(r, source, parse, bamboo)
			s.metrics.inflight.Dec()
			<-s.inflight
		default:
			status, resp = http.StatusServiceUnavailable, Response{Error: "too many deliveries in flight, retry later"}
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, status, resp)
		s.metrics.observe(source, status, time.Since(start))
		log := s.cfg.Logger.With(zap.String("source", source), zap.Int("status", status))
		switch {
		case cause != nil:
			// Temporal refused or did not answer: the sender retries, but an
			// operator may have to act (e.g. register a search attribute).
			log.Error("hr event not delivered: temporal did not take it, the sender will retry", zap.Error(cause))
		case status >= 500:
			log.Warn("hr event not delivered", zap.String("error", resp.Error))
		case status >= 400:
			// Field names only: the values may be PII.
			log.Info("hr event refused", zap.String("error", resp.Error))
		default:
			for _, e := range resp.Events {
				log.Info("hr event accepted", zap.String("event_id", e.EventID),
					zap.String("workflow_id", e.WorkflowID), zap.Bool("duplicate", e.Duplicate))
			}
		}
	})
}

// handle answers one delivery. The error is set when Temporal did not take
// an event (503): only the workflow refusing the event itself is a 4xx,
// because HR systems drop an event answered with a 4xx for good.
func (s *server) handle(r *http.Request, source string, parse parser, bamboo bool) (int, Response, error) {
	status, resp := s.check(r, parse, bamboo)
	if status != 0 {
		return status, resp, nil
	}
	return s.deliver(r.Context(), source, resp.events)
}

// check reads, authenticates, parses and validates a delivery; status 0
// means every event is valid (in resp.events).
func (s *server) check(r *http.Request, parse parser, bamboo bool) (int, Response) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, Response{Error: fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBody)}
		}
		return http.StatusBadRequest, Response{Error: "reading body: " + err.Error()}
	}
	if err := s.authenticate(r, body, bamboo); err != nil {
		return http.StatusUnauthorized, Response{Error: err.Error()}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, Response{Error: fmt.Sprintf("content type %q not supported: send application/json", r.Header.Get("Content-Type"))}
	}
	events, err := parse(body)
	var syn *hr.SyntaxError
	var inv *hr.ValidationError
	switch {
	case errors.As(err, &syn):
		return http.StatusBadRequest, Response{Error: syn.Error(), Line: syn.Line, Column: syn.Column}
	case errors.As(err, &inv):
		return http.StatusUnprocessableEntity, Response{Error: inv.Error(), Fields: inv.Fields}
	case err != nil:
		return http.StatusBadRequest, Response{Error: err.Error()}
	}
	// Validate every event before delivering any: a bad batch starts nothing.
	// The policy decides which attributes each event type requires.
	for _, ev := range events {
		if err := ev.Validate(s.cfg.Policy.RequiredFor(ev.Type)); err != nil {
			errors.As(err, &inv)
			return http.StatusUnprocessableEntity, Response{Error: inv.Error(), Fields: inv.Fields}
		}
	}
	return 0, Response{events: events}
}

// deliver hands the events to their identity workflows in order, stopping
// at the first that is not taken.
func (s *server) deliver(ctx context.Context, source string, events []hr.Event) (int, Response, error) {
	resp := Response{Events: make([]Result, 0, len(events))}
	allDup := true
	for _, ev := range events {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SubmitTimeout)
		err := s.knowable(sctx, ev)
		var acc workflows.EventAccepted
		if err == nil {
			acc, err = s.submit(sctx, ev)
		}
		cancel()
		if err == nil && acc.Conflict {
			err = &ConflictError{EventID: ev.EventID, WorkflowID: acc.WorkflowID}
		}
		var rej *RejectedError
		var conflict *ConflictError
		var unknown *UnknownPersonError
		var folded *CaseConflictError
		var held *EventHeldError
		switch {
		case errors.As(err, &held):
			s.metrics.events.WithLabelValues(source, ev.Type, "conflict").Inc()
			return http.StatusConflict, Response{Error: held.Error(), Events: resp.Events,
				EventID: held.EventID, WorkflowID: held.WorkflowID}, nil
		case errors.As(err, &unknown):
			s.metrics.events.WithLabelValues(source, ev.Type, "unknown_person").Inc()
			return http.StatusNotFound, Response{Error: unknown.Error(), Events: resp.Events, EventID: ev.EventID,
				Fields: []hr.FieldError{{Field: "employee_id", Message: unknown.Error()}}}, nil
		case errors.As(err, &folded):
			s.metrics.events.WithLabelValues(source, ev.Type, "conflict").Inc()
			return http.StatusConflict, Response{Error: folded.Error(), Events: resp.Events, EventID: ev.EventID,
				WorkflowID: contract.IdentityWorkflowID(folded.Existing),
				Fields:     []hr.FieldError{{Field: "employee_id", Message: folded.Error()}}}, nil
		case errors.As(err, &rej):
			return http.StatusUnprocessableEntity, Response{Error: rej.Error(), Events: resp.Events}, nil
		case errors.As(err, &conflict):
			s.metrics.events.WithLabelValues(source, ev.Type, "conflict").Inc()
			return http.StatusConflict, Response{Error: conflict.Error(), Events: resp.Events,
				EventID: conflict.EventID, WorkflowID: conflict.WorkflowID}, nil
		case err != nil:
			// Events already delivered stay delivered; a retry of the whole
			// body finds them as duplicates.
			return http.StatusServiceUnavailable, Response{Error: "event not delivered to Temporal, retry later: " + err.Error(), Events: resp.Events}, err
		}
		outcome := "new"
		if acc.Duplicate {
			outcome = "duplicate"
		}
		s.metrics.events.WithLabelValues(source, ev.Type, outcome).Inc()
		allDup = allDup && acc.Duplicate
		resp.Events = append(resp.Events, Result{EventID: ev.EventID, EmployeeID: ev.EmployeeID(), WorkflowID: acc.WorkflowID, Duplicate: acc.Duplicate})
	}
	first := resp.Events[0]
	resp.WorkflowID, resp.EventID, resp.Duplicate = first.WorkflowID, first.EventID, allDup
	if allDup {
		return http.StatusOK, resp, nil
	}
	return http.StatusAccepted, resp, nil
}

// knowable refuses what no run could act on: an event ID another person's
// event holds, a change or termination for
// a person jml has no identity for, and a new person whose employee ID
// differs only by case from an existing one's.
func (s *server) knowable(ctx context.Context, ev hr.Event) error {
	if s.cfg.Known != nil {
		id := ev.EmployeeID()
		known, err := s.cfg.Known(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case !known && (ev.Type == hr.Change || ev.Type == hr.Terminate):
			return &UnknownPersonError{EmployeeID: id, Type: ev.Type}
		case !known && s.cfg.Holder != nil:
			other, err := s.cfg.Holder(ctx, id)
			if err != nil {
				return err
			}
			if other != "" {
				return &CaseConflictError{EmployeeID: id, Existing: other}
			}
		}
	}
	if s.cfg.Claim == nil {
		return nil
	}
	return s.cfg.Claim(ctx, ev) // last: a refused event claims nothing
}

func (s *server) submit(ctx context.Context, ev hr.Event) (workflows.EventAccepted, error) {
	if s.cfg.Submit != nil {
		return s.cfg.Submit(ctx, ev)
	}
	return Submit(ctx, s.cfg.Client, ev)
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, err := s.cfg.Client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "temporal: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
