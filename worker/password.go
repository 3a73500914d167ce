package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// A password change enters jml here, in the worker process, because the new
// password must go straight into this worker's in-memory vault: only its
// handle reaches Temporal. The password sync's activities then run on this
// process's own task queue (workflows.HostTaskQueue), where the vault is.
//
// The endpoint is built for a self-service portal (docs/password-sync.md):
// the request names the person and the group, nothing else about them; the
// whole verdict (person, accounts, every rule) is answered at once, and
// only an accepted change starts a run, whose status is read back by ID.

// passwordChange is the body of POST /v1/password-changes: the person and
// the group, never their attributes or accounts.
type passwordChange struct {
	Group      string  `json:"group"`
	EmployeeID string  `json:"employee_id"`
	Password   *string `json:"password"`
}

// startPasswordSync starts the workflow; a func so the handler's own logic
// is testable without a cluster.
type startPasswordSync func(ctx context.Context, req activities.PasswordSyncRequest, pw secret.Secret) (workflowID string, err error)

// passwordService is what the endpoint asks of the worker: the verdict on
// a change (activities.CheckPasswordChange, the same the run repeats), its
// start and its status.
type passwordService struct {
	check  func(ctx context.Context, group, employeeID string, pw secret.Secret) (activities.PasswordCheck, error)
	start  startPasswordSync
	status func(ctx context.Context, id string) (workflows.PasswordSyncResult, error)
}

// passwordEndpoint configures the password-change endpoint.
type passwordEndpoint struct {
	// token is JML_PASSWORD_TOKEN; empty: the endpoint answers 503.
	token   string
	svc     passwordService
	limiter *authLimiter
	metrics passwordMetrics
	log     *zap.Logger
}

// hostQueue names this process's task queue for password steps.
func hostQueue() string {
	host, _ := os.Hostname()
	return contract.HostTaskQueue(fmt.Sprintf("%s-%d", host, os.Getpid()))
}

// startHostWorker polls this process's queue with the same activities.
func startHostWorker(c client.Client, queue string, acts *activities.Activities, o worker.Options) (worker.Worker, error) {
	w := worker.New(c, queue, o)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start host worker on %s: %w", queue, err)
	}
	return w, nil
}

// temporalPasswords is the service over a cluster and this worker's vault.
func temporalPasswords(c client.Client, vault *secret.Vault, queue string, acts *activities.Activities) passwordService {
	return passwordService{
		check: acts.CheckPasswordChange,
		start: func(ctx context.Context, req activities.PasswordSyncRequest, pw secret.Secret) (string, error) {
			run, err := workflows.StartPasswordSync(ctx, c, vault, queue, req, pw)
			if err != nil {
				return "", err
			}
			return run.GetID(), nil
		},
		status: func(ctx context.Context, id string) (workflows.PasswordSyncResult, error) {
			return workflows.PasswordChangeStatus(ctx, c, id)
		},
	}
}

// passwordMetrics count what a security team watches on the endpoint.
type passwordMetrics struct {
	authFailures *prometheus.CounterVec // by reason: missing, wrong
	rateLimited  prometheus.Counter
}

func newPasswordMetrics(reg prometheus.Registerer) passwordMetrics {
	m := passwordMetrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jml_password_auth_failures_total",
			Help: "Requests to the password-change endpoint refused for a missing or wrong bearer token.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jml_password_rate_limited_total",
			Help: "Requests to the password-change endpoint answered 429: their client failed authentication too often.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.authFailures, m.rateLimited)
	}
	return m
}

// authLimiter slows down clients that fail authentication: each client
// (remote IP) has a bucket of failures, burst failures at once then one
// per every; an empty bucket answers 429 with Retry-After, whatever the
// token, so guessing gains nothing from speed. Clients that only succeed
// never touch it.
type authLimiter struct {
	every time.Duration
	burst int
	max   int // most clients remembered; beyond, refilled buckets are dropped
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newAuthLimiter(burst int, every time.Duration, now func() time.Time) *authLimiter {
	return &authLimiter{every: every, burst: burst, max: 10000, now: now, clients: map[string]*rate.Limiter{}}
}

// wait is how long client must wait before its next try; 0: it may try.
func (l *authLimiter) wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[client]
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(l.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(l.every))
}

// fail records one failed authentication of client.
func (l *authLimiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= l.max {
			for c, old := range l.clients {
				if old.TokensAt(now) >= float64(l.burst) {
					delete(l.clients, c)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.clients[client] = lim
	}
	lim.AllowN(now, 1)
}

// clientOf is the remote IP (an IPv6 client by its /64, which one host
// can fill): the endpoint is called by the portal's server directly, so
// forwarding headers (which any caller can set) are ignored.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

// problem is every refusal's body: a message for people, a code and the
// field for programs, and the failed rules of a refused password.
type problem struct {
	Error    string               `json:"error"`
	Code     string               `json:"code"`
	Field    string               `json:"field,omitempty"`
	Failures []policy.RuleFailure `json:"failures,omitempty"`
}

// passwordStatus is the answer of GET /v1/password-changes/{id} and of an
// accepted POST.
type passwordStatus struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
	workflows.PasswordSyncResult
}

// passwordHandler serves POST /v1/password-changes and GET
// /v1/password-changes/{id}. Both need the bearer token (none configured:
// 503). It never echoes or logs the password.
func passwordHandler(e passwordEndpoint) http.Handler {
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.limiter == nil {
		e.limiter = newAuthLimiter(5, 10*time.Second, time.Now)
	}
	if e.metrics.authFailures == nil {
		e.metrics = newPasswordMetrics(nil)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/password-changes", func(w http.ResponseWriter, r *http.Request) {
		if e.authorize(w, r) {
			e.change(w, r)
		}
	})
	mux.HandleFunc("GET /v1/password-changes/{id...}", func(w http.ResponseWriter, r *http.Request) {
		if e.authorize(w, r) {
			e.status(w, r)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// authorize checks the bearer token, slowed down per client after
// failures; false when it answered.
func (e passwordEndpoint) authorize(w http.ResponseWriter, r *http.Request) bool {
	client := clientOf(r)
	if wait := e.limiter.wait(client); wait > 0 {
		e.metrics.rateLimited.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeProblem(w, http.StatusTooManyRequests, problem{Code: "rate_limited",
			Error: "too many failed authentications from this client; retry after the delay in Retry-After"})
		return false
	}
	if e.token == "" {
		writeProblem(w, http.StatusServiceUnavailable, problem{Code: "off", Error: "password changes are off: set JML_PASSWORD_TOKEN"})
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(e.token)) == 1 {
		return true
	}
	reason := "wrong"
	if !ok || got == "" {
		reason = "missing"
	}
	e.limiter.fail(client)
	e.metrics.authFailures.WithLabelValues(reason).Inc()
	// Never the token: a wrong one may be a real token of something else.
	e.log.Warn("password endpoint: authentication failed", zap.String("client", client),
		zap.String("reason", reason), zap.String("method", r.Method), zap.String("path", r.URL.Path))
	w.Header().Set("WWW-Authenticate", `Bearer realm="jml password changes"`)
	writeProblem(w, http.StatusUnauthorized, problem{Code: "unauthorized", Error: "bearer token missing or not accepted"})
	return false
}

// change is POST /v1/password-changes: the whole verdict at once, a run
// only for an accepted change.
func (e passwordEndpoint) change(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, http.StatusUnsupportedMediaType, problem{Code: "content_type", Error: "Content-Type must be application/json"})
		return
	}
	in, status, p := decodeChange(w, r)
	if status != 0 {
		writeProblem(w, status, p)
		return
	}
	pw := secret.New(*in.Password)
	*in.Password = ""
	log := e.log.With(zap.String("employee_id", in.EmployeeID), zap.String("group", in.Group), zap.String("client", clientOf(r)))

	verdict, err := e.svc.check(r.Context(), in.Group, in.EmployeeID, pw)
	if err != nil {
		log.Error("password change: cannot check", zap.String("error", scrub(err, pw)))
		writeProblem(w, http.StatusServiceUnavailable, problem{Code: "unavailable", Error: "could not check the change; retry"})
		return
	}
	if !verdict.OK {
		status, p := refusal(verdict)
		log.Info("password change refused", zap.String("code", p.Code))
		writeProblem(w, status, p)
		return
	}
	wfID, err := e.svc.start(r.Context(), activities.PasswordSyncRequest{Group: in.Group, EmployeeID: in.EmployeeID}, pw)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			writeProblem(w, http.StatusConflict, problem{Code: "in_progress", Error: "a change for this person started at the same moment; retry"})
			return
		}
		log.Error("password change: cannot start", zap.String("error", scrub(err, pw)))
		writeProblem(w, http.StatusServiceUnavailable, problem{Code: "unavailable", Error: "could not start the password sync; retry"})
		return
	}
	id := contract.PasswordChangeID(wfID)
	log.Info("password change accepted", zap.String("id", id))
	out := passwordStatus{ID: id, StatusURL: statusURL(id), PasswordSyncResult: workflows.PasswordSyncResult{
		State: workflows.PasswordRunning, EmployeeID: in.EmployeeID, Group: in.Group}}
	w.Header().Set("Location", out.StatusURL)
	writeJSON(w, http.StatusAccepted, out)
}

// decodeChange reads the body strictly: the three fields, each a string,
// nothing else. A refusal has its HTTP status; 0 when the body is good.
func decodeChange(w http.ResponseWriter, r *http.Request) (passwordChange, int, problem) {
	var in passwordChange
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return in, http.StatusRequestEntityTooLarge, problem{Code: "too_large", Error: "body over 16 KiB"}
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return in, http.StatusBadRequest, problem{Code: "invalid", Field: typeErr.Field, Error: typeErr.Field + ": must be a string"}
	case err != nil && strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if len(field) > 64 {
			field = field[:64] + "…"
		}
		return in, http.StatusBadRequest, problem{Code: "unknown_field", Field: field,
			Error: fmt.Sprintf("unknown field %q: a change names only group, employee_id and password (the person's attributes and accounts are jml's)", field)}
	case err != nil:
		// The decoder's message can quote the body: say only that it broke.
		return in, http.StatusBadRequest, problem{Code: "malformed", Error: "malformed JSON body: want one object {group, employee_id, password}"}
	}
	var missing []string
	if in.Group == "" {
		missing = append(missing, "group")
	}
	if in.EmployeeID == "" {
		missing = append(missing, "employee_id")
	}
	if in.Password == nil || *in.Password == "" {
		missing = append(missing, "password")
	}
	if len(missing) > 0 {
		return in, http.StatusBadRequest, problem{Code: "missing", Field: missing[0], Error: "missing " + strings.Join(missing, ", ")}
	}
	if msg := hr.CheckID(in.EmployeeID); msg != "" {
		return in, http.StatusBadRequest, problem{Code: "invalid", Field: "employee_id", Error: "employee_id: " + msg}
	}
	return in, 0, problem{}
}

// refusal is the answer to a refused change.
func refusal(v activities.PasswordCheck) (int, problem) {
	p := problem{Code: v.Refusal, Error: v.Message}
	switch v.Refusal {
	case activities.RefusedUnknownGroup:
		p.Field = "group"
		return http.StatusUnprocessableEntity, p
	case activities.RefusedUnknownPerson:
		p.Field = "employee_id"
		return http.StatusNotFound, p
	case activities.RefusedTerminated, activities.RefusedNoAccount:
		p.Field = "employee_id"
		return http.StatusConflict, p
	case activities.RefusedRules:
		p.Field, p.Failures = "password", v.Failures
		names := make([]string, len(v.Failures))
		for i, f := range v.Failures {
			names[i] = f.Rule
		}
		p.Error = "the password breaks " + strings.Join(names, ", ") + ": nothing was changed"
		return http.StatusUnprocessableEntity, p
	default: // group_invalid: the operators' policy, not the caller
		return http.StatusInternalServerError, p
	}
}

// status is GET /v1/password-changes/{id}.
func (e passwordEndpoint) status(w http.ResponseWriter, r *http.Request) {
	id := contract.PasswordChangeID(r.PathValue("id"))
	res, err := e.svc.status(r.Context(), id)
	switch {
	case errors.Is(err, workflows.ErrNoPasswordChange):
		writeProblem(w, http.StatusNotFound, problem{Code: "not_found", Field: "id", Error: fmt.Sprintf("no password change %q", id)})
	case err != nil:
		e.log.Error("password change status", zap.String("id", id), zap.Error(err))
		writeProblem(w, http.StatusServiceUnavailable, problem{Code: "unavailable", Error: "could not read the change; retry"})
	default:
		writeJSON(w, http.StatusOK, passwordStatus{ID: id, StatusURL: statusURL(id), PasswordSyncResult: res})
	}
}

// scrub is err's text without the password, should a lower layer quote it.
func scrub(err error, pw secret.Secret) string {
	return strings.ReplaceAll(err.Error(), pw.Reveal(), secret.Redacted)
}

func statusURL(id string) string { return "/v1/password-changes/" + id }

func writeProblem(w http.ResponseWriter, status int, p problem) { writeJSON(w, status, p) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
