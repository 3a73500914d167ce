package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// defaultRetryAfter applies to a 429 that does not say when to come back.
const defaultRetryAfter = 5 * time.Second

// scimError is the RFC 7644 §3.12 error body.
type scimError struct {
	Status   json.RawMessage `json:"status"` // a string per the RFC, a number on some servers
	ScimType string          `json:"scimType"`
	Detail   string          `json:"detail"`
}

// classify turns a non-2xx answer into the connectors error classes. It is
// the only place that decides what is retryable.
func classify(op string, resp *http.Response, body []byte, scrub string) error {
	status := resp.StatusCode
	var se scimError
	_ = json.Unmarshal(body, &se)
	detail := strings.TrimSpace(se.Detail)
	if detail == "" && len(body) > 0 && !json.Valid(body) {
		detail = strings.TrimSpace(string(body))
	}
	if len(detail) > 500 {
		detail = detail[:500] + "…"
	}
	if scrub != "" {
		detail = strings.ReplaceAll(detail, scrub, secret.Redacted)
	}
	msg := fmt.Sprintf("scim: %s: HTTP %d", op, status)
	if se.ScimType != "" {
		msg += " " + se.ScimType
	}
	if detail != "" {
		msg += ": " + detail
	}
	switch {
	case status == http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, connectors.ErrNotFound)
	case status == http.StatusConflict:
		return connectors.Permanent("ScimConflict", fmt.Errorf("%s: %w", msg, connectors.ErrConflict))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return connectors.Permanentf("ScimAuth", "%s", msg)
	case status == http.StatusTooManyRequests:
		return &connectors.RateLimitedError{RetryAfter: retryAfter(resp.Header, time.Now(), defaultRetryAfter), Err: fmt.Errorf("%s", msg)}
	case status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		// RFC 9110: a 503 with Retry-After says when to come back.
		return &connectors.RateLimitedError{RetryAfter: retryAfter(resp.Header, time.Now(), defaultRetryAfter), Err: fmt.Errorf("%s", msg)}
	case status == http.StatusNotImplemented:
		return connectors.Permanentf("ScimUnsupported", "%s", msg)
	case status >= 500 || status == http.StatusRequestTimeout:
		return connectors.Transient(fmt.Errorf("%s", msg))
	case status == http.StatusBadRequest:
		return connectors.Permanentf("ScimValidation", "%s", msg)
	case status == http.StatusPreconditionFailed:
		return connectors.Permanentf("ScimPrecondition", "%s", msg)
	}
	return connectors.Permanentf("ScimRequest", "%s", msg)
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return def
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
		return 0
	}
	return def
}
