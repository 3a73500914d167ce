package entra

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/jml-dev/jml/connectors"
)

// Error types reported to Temporal (PermanentError.Type).
const (
	TypeValidation = "EntraValidation" // 400: Graph refused the request
	TypeAuth       = "EntraAuth"       // 401/403 and token endpoint refusals
	TypeConflict   = "EntraConflict"   // unique value taken, ambiguous match
	TypeConfig     = "EntraConfig"     // missing or malformed configuration
)

// apiError is one failed Graph request, before classification.
type apiError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Targets   []string // details[].target of ObjectConflict details
	Verdict   connectors.Verdict
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request-id " + e.RequestID + ")"
	}
	return s
}

// conflict reports Graph's "Another object with the same value for
// property X already exists" (an ObjectConflict detail) on property prop,
// or on any property when prop is "".
func (e *apiError) conflict(prop string) bool {
	if e.Status != http.StatusBadRequest {
		return false
	}
	for _, t := range e.Targets {
		if prop == "" || strings.EqualFold(t, prop) {
			return true
		}
	}
	return strings.Contains(e.Message, "Another object with the same value for property "+prop)
}

// odataError is Graph's error body.
type odataError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
		} `json:"innerError"`
		Details []struct {
			Code   string `json:"code"`
			Target string `json:"target"`
		} `json:"details"`
	} `json:"error"`
}

// parseAPIError reads a failed response (status, body, Retry-After).
func parseAPIError(status int, body []byte, retryAfter string) *apiError {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	e := &apiError{Status: status, Verdict: connectors.Classify(status, h, time.Now())}
	var oe odataError
	if json.Unmarshal(body, &oe) == nil && oe.Error.Code != "" {
		e.Code, e.Message, e.RequestID = oe.Error.Code, oe.Error.Message, oe.Error.InnerError.RequestID
		for _, d := range oe.Error.Details {
			if d.Code == "ObjectConflict" {
				e.Targets = append(e.Targets, d.Target)
			}
		}
	} else {
		e.Code, e.Message = http.StatusText(status), strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	return e
}

// classify maps a failed Graph request to the connectors error classes.
// It is the only place where Entra status codes become retry decisions.
func classify(op string, e *apiError) error {
	err := fmt.Errorf("entra: %s: %w", op, e)
	switch {
	case e.Status == http.StatusNotFound:
		return fmt.Errorf("entra: %s: %w: %w", op, connectors.ErrNotFound, e)
	case e.Status == http.StatusConflict:
		// Graph's 409 is Directory_ConcurrencyViolation, which it asks
		// callers to retry; a taken value is a 400 ObjectConflict.
		return connectors.Transient(err)
	case e.conflict(""):
		return connectors.Permanent(TypeConflict, fmt.Errorf("entra: %s: %w: %w", op, connectors.ErrConflict, e))
	}
	return connectors.HTTPError(e.Verdict, map[connectors.Class]string{connectors.ClassAuth: TypeAuth}, TypeValidation, err)
}

// classifyToken maps a token endpoint failure. Its messages carry Entra's
// AADSTS code and description, never the client secret or assertion.
func classifyToken(err error) error {
	var re *oauth2.RetrieveError
	if connectors.IsPermanent(err) {
		return err
	}
	if !errors.As(err, &re) {
		return connectors.Transient(fmt.Errorf("entra: get token: %w", err))
	}
	status, h := 0, http.Header{}
	if re.Response != nil {
		status, h = re.Response.StatusCode, re.Response.Header
	}
	msg := fmt.Errorf("entra: get token: %d %s: %s", status, re.ErrorCode, firstLine(re.ErrorDescription))
	// Every refusal of the token endpoint (a 404 too: a wrong tenant) is
	// the credential's problem.
	return connectors.HTTPError(connectors.Classify(status, h, time.Now()),
		map[connectors.Class]string{connectors.ClassNotFound: TypeAuth}, TypeAuth, msg)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\r\n")
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// worst picks the error that decides the retry of a multi-request
// operation: every request is idempotent, so one retryable failure makes
// the whole operation worth retrying; a rate limit waits for the longest
// delay asked for.
func worst(errs []error) error {
	var rl *connectors.RateLimitedError
	var transient error
	for _, err := range errs {
		var r *connectors.RateLimitedError
		var t *connectors.TransientError
		switch {
		case errors.As(err, &r):
			if rl == nil || r.RetryAfter > rl.RetryAfter {
				rl = r
			}
		case errors.As(err, &t) && transient == nil:
			transient = err
		}
	}
	switch {
	case rl != nil:
		return rl
	case transient != nil:
		return transient
	case len(errs) > 0:
		return errs[0]
	}
	return nil
}

// reclass gives msg the class of err: rate limited (with its delay),
// permanent (with its type) or transient.
func reclass(err, msg error) error {
	var rl *connectors.RateLimitedError
	var p *connectors.PermanentError
	switch {
	case errors.As(err, &rl):
		return &connectors.RateLimitedError{RetryAfter: rl.RetryAfter, Err: msg}
	case errors.As(err, &p):
		return connectors.Permanent(p.Type, msg)
	}
	return connectors.Transient(msg)
}
