package connectors

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// ErrNotFound means the account or group does not exist in the target.
var ErrNotFound = errors.New("not found")

// ErrConflict means the target refused a create because the unique
// identifier is taken (SCIM 409 uniqueness, Okta E0000001 login exists).
var ErrConflict = errors.New("conflict")

// RateLimitedError is a 429: retry after RetryAfter.
type RateLimitedError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited (retry after %s): %v", e.RetryAfter, e.Err)
}
func (e *RateLimitedError) Unwrap() error { return e.Err }

// PermanentError must not be retried: bad input, auth, validation, 4xx.
// Type is a short stable error type for Temporal (e.g. "ScimValidation",
// "OktaAuth"); it never contains PII.
type PermanentError struct {
	Type string
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// TransientError may be retried: 5xx, timeouts, connection errors.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Permanent wraps err as a non-retryable error of the given type.
func Permanent(typ string, err error) error { return &PermanentError{Type: typ, Err: err} }

// Permanentf is Permanent with a formatted message.
func Permanentf(typ, format string, args ...any) error {
	return &PermanentError{Type: typ, Err: fmt.Errorf(format, args...)}
}

// Transient wraps err as retryable.
func Transient(err error) error { return &TransientError{Err: err} }

// WithoutURL is the cause of an HTTP client's *url.Error, whose text
// repeats the request URL: its query may carry personal data (a filter on
// a user name) or credentials, which logs must not get. Other errors are
// returned as they are.
func WithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
