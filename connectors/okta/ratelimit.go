package okta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/jml-dev/jml/connectors"
)

// transport sits under the SDK: it paces requests from the X-Rate-Limit-*
// headers of earlier responses and records what happened to each request in
// the call's probe, so errors are classified from the real status and headers
// (the SDK drops the response of a 429).
type transport struct {
	base http.RoundTripper
	lim  *limiter
	rps  *rate.Limiter // the target's rate_limit; nil: none
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	bucket := bucketOf(req.URL.Path)
	if t.rps != nil {
		if err := t.rps.Wait(req.Context()); err != nil {
			return nil, fmt.Errorf("okta: waiting for the target's rate_limit: %w", err)
		}
	}
	if err := t.lim.wait(req.Context(), bucket); err != nil {
		return nil, err
	}
	p := probeFrom(req.Context())
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		if p != nil {
			p.sent = !isDialError(err)
		}
		// The SDK resends a request whose error wraps io.EOF, without limit
		// and even for a non-idempotent POST; hide EOF so our own
		// classification decides.
		return nil, &wireError{err: err}
	}
	now := time.Now()
	t.lim.observe(bucket, resp, now)
	if p != nil {
		p.sent = true
		p.status = resp.StatusCode
		p.verdict = connectors.Classify(resp.StatusCode, resp.Header, now)
		if _, given := connectors.RetryAfter(resp.Header, now); resp.StatusCode == http.StatusTooManyRequests && !given {
			// Okta says when its bucket refills in X-Rate-Limit-Reset.
			p.verdict.RetryAfter = retryAfter(resp.Header, now)
		}
	}
	return resp, nil
}

type wireError struct{ err error }

func (e *wireError) Error() string { return e.err.Error() }
func (e *wireError) Unwrap() error {
	if errors.Is(e.err, io.EOF) || errors.Is(e.err, io.ErrUnexpectedEOF) {
		return nil
	}
	return e.err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// probe records the outcome of one SDK call (one HTTP request).
type probe struct {
	sent    bool // the request may have reached Okta
	status  int  // 0 when no response arrived
	verdict connectors.Verdict
}

type probeKey struct{}

func withProbe(ctx context.Context) (context.Context, *probe) {
	p := &probe{}
	return context.WithValue(ctx, probeKey{}, p), p
}

func probeFrom(ctx context.Context) *probe {
	p, _ := ctx.Value(probeKey{}).(*probe)
	return p
}

// bucketOf approximates Okta's per-endpoint rate-limit buckets:
// /api/v1/users, /api/v1/users/{id}, /api/v1/groups, /api/v1/groups/{id}, ….
func bucketOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return path
	}
	coll, tail, _ := strings.Cut(rest, "/")
	if tail == "" {
		return "/api/v1/" + coll
	}
	return "/api/v1/" + coll + "/{id}"
}

// retryAfter is the wait until X-Rate-Limit-Reset (Okta's own header,
// not Retry-After), measured against the
// server's Date header when present so clock skew does not matter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	reset, err := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64)
	if err != nil {
		return time.Second
	}
	ref := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		ref = d
	}
	// +1s: Reset and Date have one-second resolution.
	wait := time.Unix(reset, 0).Sub(ref) + time.Second
	return max(wait, time.Second)
}

type bucketState struct {
	limit, remaining int
	resetAt          time.Time // local clock
	nextSlot         time.Time // earliest send time for the next paced request
}

type limiter struct {
	paceBelow float64
	maxWait   time.Duration
	log       *zap.Logger

	mu      sync.Mutex
	buckets map[string]*bucketState
}

func newLimiter(cfg RateLimit, log *zap.Logger) *limiter {
	l := &limiter{paceBelow: cfg.PaceBelow, maxWait: cfg.MaxWait, log: log, buckets: map[string]*bucketState{}}
	if l.paceBelow <= 0 {
		l.paceBelow = 0.1
	}
	if l.maxWait <= 0 {
		l.maxWait = 10 * time.Second
	}
	return l
}

// observe records the X-Rate-Limit-* headers of a response.
func (l *limiter) observe(bucket string, resp *http.Response, now time.Time) {
	limit, err1 := strconv.Atoi(resp.Header.Get("X-Rate-Limit-Limit"))
	remaining, err2 := strconv.Atoi(resp.Header.Get("X-Rate-Limit-Remaining"))
	if resp.StatusCode == http.StatusTooManyRequests {
		remaining, err2 = 0, nil
	}
	if err1 != nil || err2 != nil || resp.Header.Get("X-Rate-Limit-Reset") == "" {
		return
	}
	resetAt := now.Add(retryAfter(resp.Header, now) - time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buckets[bucket]
	if s == nil {
		s = &bucketState{}
		l.buckets[bucket] = s
	}
	s.limit, s.remaining, s.resetAt = limit, remaining, resetAt
}

// wait delays a request when its bucket is nearly spent, spreading the
// remaining calls evenly until the reset; a wait longer than maxWait fails
// at once with RateLimitedError so the workflow waits instead of the worker.
func (l *limiter) wait(ctx context.Context, bucket string) error {
	now := time.Now()
	l.mu.Lock()
	s := l.buckets[bucket]
	var delay, untilReset time.Duration
	remaining := 0
	if s != nil && s.limit > 0 && now.Before(s.resetAt) &&
		float64(s.remaining) <= l.paceBelow*float64(s.limit) {
		untilReset = s.resetAt.Sub(now)
		slot := now
		if s.nextSlot.After(slot) {
			slot = s.nextSlot
		}
		if s.remaining <= 0 {
			if s.resetAt.After(slot) {
				slot = s.resetAt
			}
			s.nextSlot = slot
		} else {
			s.nextSlot = slot.Add(untilReset / time.Duration(s.remaining+1))
		}
		delay = slot.Sub(now)
		remaining = s.remaining
		s.remaining-- // reserve a call so concurrent callers spread out
	}
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	if delay > l.maxWait {
		l.log.Info("okta: rate limit nearly spent; deferring call", zap.String("bucket", bucket),
			zap.Int("remaining", remaining), zap.Duration("retry_after", untilReset))
		return &connectors.RateLimitedError{RetryAfter: untilReset + time.Second,
			Err: fmt.Errorf("okta: %s: rate limit nearly spent (%d left)", bucket, remaining)}
	}
	l.log.Debug("okta: pacing", zap.String("bucket", bucket), zap.Int("remaining", remaining), zap.Duration("wait", delay))
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
