package activities

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Error types of jml's own (connectors bring their own, e.g. ScimValidation).
const (
	ErrTypeConflict = "Conflict"
	ErrTypeNotFound = "AccountNotFound"
	// ErrTypeGroupNotFound: a group a step or a request names does not exist
	// at the target.
	ErrTypeGroupNotFound = "GroupNotFound"
	ErrTypeUnsupported   = "Unsupported"
	ErrTypeRateLimited   = "RateLimited"
	ErrTypeTransient     = "Transient"
	// ErrTypeInvalidIdentifier: a unique identifier no account can have.
	ErrTypeInvalidIdentifier = "InvalidIdentifier"
)

func permanent(typ string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, nil)
}

// toTemporal classifies err for Temporal's retry policy and scrubs every
// secret in secrets from its message. The original error is not attached as
// a cause: its message would be serialized unscrubbed.
func toTemporal(err error, secrets ...secret.Secret) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr // already classified (and built from scrubbed text)
	}
	msg := redact(err.Error(), secrets...)
	var perm *connectors.PermanentError
	var rate *connectors.RateLimitedError
	switch {
	case errors.As(err, &perm):
		return temporal.NewNonRetryableApplicationError(msg, perm.Type, nil)
	case errors.As(err, &rate):
		return temporal.NewApplicationErrorWithOptions(msg, ErrTypeRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: spread(rate.RetryAfter)})
	case errors.Is(err, connectors.ErrConflict):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeConflict, nil)
	}
	return temporal.NewApplicationError(msg, ErrTypeTransient)
}

// redact replaces each secret in s, in the forms a server may echo it.
func redact(s string, secrets ...secret.Secret) string {
	for _, sec := range secrets {
		v := sec.Reveal()
		if v == "" {
			continue
		}
		js, _ := json.Marshal(v)
		for _, form := range []string{
			v,
			strings.Trim(string(js), `"`),
			base64.StdEncoding.EncodeToString([]byte(v)),
			base64.URLEncoding.EncodeToString([]byte(v)),
			base64.RawStdEncoding.EncodeToString([]byte(v)),
		} {
			s = strings.ReplaceAll(s, form, secret.Redacted)
		}
	}
	return s
}

// spread adds up to half of d again, at random: every run throttled by the
// same 429 burst would otherwise retry at the same instant, be throttled
// again together, and spend its attempts in lockstep.
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		d = time.Second
	}
	return d + rand.N(d/2+1)
}
