package connectors

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what an HTTP answer means for the step that got it: whether
// to retry, when, and what to tell the operator. It is decided in one
// place (Classify) for every connector and notification channel, so the
// same answer means the same thing whichever target sent it. The classes
// are listed for operators in docs/operator.md.
type Class string

const (
	ClassOK          Class = "OK"          // 2xx
	ClassRateLimited Class = "RateLimited" // 429, or a 503 with Retry-After: retry after the delay
	ClassTransient   Class = "Transient"   // 5xx (not 501), 408: retry with backoff
	ClassNotFound    Class = "NotFound"    // 404
	ClassConflict    Class = "Conflict"    // 409
	ClassAuth        Class = "Auth"        // 401, 403: the credential is wrong or lacks a right
	ClassInvalid     Class = "Invalid"     // 400, 422: the target refused the request's content
	ClassUnsupported Class = "Unsupported" // 501: the target does not do this
	ClassRejected    Class = "Rejected"    // any other 4xx
	ClassUnexpected  Class = "Unexpected"  // 1xx, 3xx: not an answer a client follows
)

// DefaultRetryAfter is the wait after a 429 that does not say when to
// come back.
const DefaultRetryAfter = 10 * time.Second

// Verdict is an HTTP answer classified.
type Verdict struct {
	Status int
	Class  Class
	// RetryAfter is when to try again (ClassRateLimited; for other
	// classes the server's Retry-After, if any).
	RetryAfter time.Duration
}

// Retryable reports whether trying again may succeed.
func (v Verdict) Retryable() bool {
	return v.Class == ClassRateLimited || v.Class == ClassTransient
}

// Classify reads an HTTP answer's status and headers (Retry-After) at
// time now.
func Classify(status int, h http.Header, now time.Time) Verdict {
	ra, hasRA := RetryAfter(h, now)
	v := Verdict{Status: status, RetryAfter: ra}
	switch {
	case status >= 200 && status < 300:
		v.Class = ClassOK
	case status == http.StatusTooManyRequests:
		v.Class = ClassRateLimited
		if !hasRA {
			v.RetryAfter = DefaultRetryAfter
		}
	case status == http.StatusServiceUnavailable && hasRA:
		// RFC 9110 §10.2.3: a 503 with Retry-After says when to come back.
		v.Class = ClassRateLimited
	case status == http.StatusNotImplemented:
		v.Class = ClassUnsupported
	case status >= 500 || status == http.StatusRequestTimeout:
		v.Class = ClassTransient
	case status == http.StatusNotFound:
		v.Class = ClassNotFound
	case status == http.StatusConflict:
		v.Class = ClassConflict
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		v.Class = ClassAuth
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		v.Class = ClassInvalid
	case status >= 400:
		v.Class = ClassRejected
	default:
		v.Class = ClassUnexpected
	}
	return v
}

// RetryAfter parses a Retry-After header, delta-seconds or an HTTP date
// (RFC 9110 §10.2.3), as a wait from now; ok is false when there is none
// or it cannot be read. A date in the past is a wait of 0.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0).Round(time.Second), true
	}
	return 0, false
}

// HTTPError wraps err, the caller's message of a failed answer, in the
// error of v's class: RateLimitedError with the delay, TransientError, or
// a PermanentError whose Type is types[class] (the caller's own name, e.g.
// "ScimAuth"), else other. A 404 is ErrNotFound, a lookup's answer, unless
// types names ClassNotFound (a request step, where it is a failure); a 409
// also wraps ErrConflict.
func HTTPError(v Verdict, types map[Class]string, other string, err error) error {
	typ := types[v.Class]
	if typ == "" {
		typ = other
	}
	switch v.Class {
	case ClassRateLimited:
		return &RateLimitedError{RetryAfter: v.RetryAfter, Err: err}
	case ClassTransient:
		return Transient(err)
	case ClassNotFound:
		if !errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w: %w", err, ErrNotFound)
		}
		if types[ClassNotFound] == "" {
			return err
		}
	case ClassConflict:
		if !errors.Is(err, ErrConflict) {
			err = fmt.Errorf("%w: %w", err, ErrConflict)
		}
	}
	return Permanent(typ, err)
}
