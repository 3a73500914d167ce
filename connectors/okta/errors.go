package okta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/jml-dev/jml/connectors"
)

// Error types (connectors.PermanentError.Type) this connector returns.
const (
	TypeConfig         = "OktaConfig"         // bad org URL, token, mode
	TypeValidation     = "OktaValidation"     // bad input or E0000001
	TypeConflict       = "OktaConflict"       // unique value taken; wraps connectors.ErrConflict
	TypeAuth           = "OktaAuth"           // 401/403: token invalid or lacks a scope
	TypeRequest        = "OktaRequest"        // any other 4xx, e.g. E0000038 wrong lifecycle state
	TypeAmbiguousReset = "OktaAmbiguousReset" // reset may or may not have happened: an operator decides
	TypeImmutable      = "OktaImmutable"      // an attribute Okta never changes after creation (login)
)

// call runs one SDK call with a probe and classifies its error.
func call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	ctx, p := withProbe(ctx)
	return classify(op, fn(ctx), p)
}

// classify maps an SDK error and what the transport saw to the connectors
// error classes. It is the only place Okta errors are interpreted.
func classify(op string, err error, p *probe) error {
	if err == nil {
		return nil
	}
	var rl *connectors.RateLimitedError
	if errors.As(err, &rl) { // deferred by our own pacing, nothing sent
		return &connectors.RateLimitedError{RetryAfter: rl.RetryAfter, Err: fmt.Errorf("okta: %s: %w", op, rl.Err)}
	}
	var oe *sdk.Error
	if !errors.As(err, &oe) {
		oe = nil
	}
	code := ""
	if oe != nil {
		code = oe.ErrorCode
	}
	v := p.verdict
	switch {
	case code == "E0000047" && v.Class != connectors.ClassRateLimited:
		v.Class = connectors.ClassRateLimited
	case v.Class == connectors.ClassNotFound || code == "E0000007":
		return fmt.Errorf("okta: %s: %w", op, connectors.ErrNotFound)
	case v.Class == connectors.ClassAuth:
	case code == "E0000001" && alreadyExists(oe):
		return connectors.Permanent(TypeConflict, fmt.Errorf("okta: %s: %s: %w", op, describe(oe), connectors.ErrConflict))
	case code == "E0000001":
		return connectors.Permanent(TypeValidation, fmt.Errorf("okta: %s: %s", op, describe(oe)))
	case p.status < 400: // no response, or an unreadable one
		return connectors.Transient(fmt.Errorf("okta: %s: %w", op, err))
	}
	if v.Class == connectors.ClassRateLimited {
		return &connectors.RateLimitedError{RetryAfter: v.RetryAfter, Err: fmt.Errorf("okta: %s: HTTP %d: rate limited (%s)", op, p.status, describe(oe))}
	}
	return connectors.HTTPError(v, map[connectors.Class]string{connectors.ClassAuth: TypeAuth}, TypeRequest,
		fmt.Errorf("okta: %s: HTTP %d: %s", op, p.status, describe(oe)))
}

// describe renders an Okta error as "E0000001 Api validation failed: login
// (login: An object with this field already exists …)".
func describe(oe *sdk.Error) string {
	if oe == nil {
		return "no Okta error body"
	}
	var b strings.Builder
	b.WriteString(oe.ErrorCode)
	if oe.ErrorSummary != "" {
		b.WriteString(" " + oe.ErrorSummary)
	}
	if causes := causeTexts(oe); len(causes) > 0 {
		b.WriteString(" (" + strings.Join(causes, "; ") + ")")
	}
	return strings.TrimSpace(b.String())
}

func causeTexts(oe *sdk.Error) []string {
	var out []string
	for _, c := range oe.ErrorCauses {
		if s, ok := c["errorSummary"].(string); ok {
			out = append(out, s)
			continue
		}
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s: %v", k, c[k]))
		}
	}
	return out
}

func alreadyExists(oe *sdk.Error) bool {
	texts := append(causeTexts(oe), oe.ErrorSummary)
	for _, t := range texts {
		if strings.Contains(strings.ToLower(t), "already exists") {
			return true
		}
	}
	return false
}
