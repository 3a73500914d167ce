package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// scimError is the RFC 7644 §3.12 error body.
type scimError struct {
	Status   json.RawMessage `json:"status"` // a string per the RFC, a number on some servers
	ScimType string          `json:"scimType"`
	Detail   string          `json:"detail"`
}

// httpError is a non-2xx answer as classify saw it. It sits inside the
// connectors error classes, so callers can ask for the scimType.
type httpError struct {
	Status   int
	ScimType string
	// JSON is true when the body was JSON (a SCIM error or any JSON): a 404
	// with JSON came from the SCIM service, not from a web server in front
	// of a missing endpoint.
	JSON    bool
	Detail  string // the server's detail, or a one-line summary of a non-JSON body
	msg     string
	wrapped error // ErrNotFound, ErrConflict or nil
}

func (e *httpError) Error() string {
	if e.wrapped != nil {
		return e.msg + ": " + e.wrapped.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.wrapped }

// answer is the httpError inside err, nil when err is not an HTTP answer.
func answer(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	return nil
}

// isScimType reports whether err is an answer with that scimType.
func isScimType(err error, typ string) bool {
	he := answer(err)
	return he != nil && strings.EqualFold(he.ScimType, typ)
}

var (
	titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	dropRE  = regexp.MustCompile(`(?is)<(script|style|head)[^>]*>.*?</(script|style|head)>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// summarize turns a non-JSON body (an HTML error page, a proxy's text) into
// one short line: the page title when there is one, else the first 120
// characters of its visible text.
func summarize(body []byte) string {
	s := string(body)
	if m := titleRE.FindStringSubmatch(s); m != nil {
		if t := strings.Join(strings.Fields(html.UnescapeString(tagRE.ReplaceAllString(m[1], " "))), " "); t != "" {
			return clip(t, 120)
		}
	}
	s = dropRE.ReplaceAllString(s, " ")
	s = tagRE.ReplaceAllString(s, " ")
	return clip(strings.Join(strings.Fields(html.UnescapeString(s)), " "), 120)
}

// clip cuts s to n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// classify turns a non-2xx answer into the connectors error classes. It is
// the only place that decides what is retryable.
func classify(op string, resp *http.Response, body []byte, scrub string) error {
	status := resp.StatusCode
	var se scimError
	isJSON := len(bytes.TrimSpace(body)) > 0 && json.Valid(body)
	if isJSON {
		_ = json.Unmarshal(body, &se)
	}
	detail := strings.Join(strings.Fields(se.Detail), " ")
	if !isJSON && len(bytes.TrimSpace(body)) > 0 {
		detail = summarize(body)
	}
	detail = clip(detail, 500)
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
	he := &httpError{Status: status, ScimType: se.ScimType, JSON: isJSON, Detail: detail, msg: msg}
	v := connectors.Classify(status, resp.Header, time.Now())
	switch {
	case v.Class == connectors.ClassNotFound:
		he.wrapped = connectors.ErrNotFound
	case v.Class == connectors.ClassConflict:
		he.wrapped = connectors.ErrConflict
	case status == http.StatusPreconditionFailed:
		// RFC 7644 §3.14: the resource changed since its ETag was read.
		return connectors.Permanent("ScimPrecondition", he)
	}
	return connectors.HTTPError(v, scimTypes, "ScimRequest", he)
}

// scimTypes name the permanent error classes for Temporal.
var scimTypes = map[connectors.Class]string{
	connectors.ClassConflict:    "ScimConflict",
	connectors.ClassAuth:        "ScimAuth",
	connectors.ClassInvalid:     "ScimValidation",
	connectors.ClassUnsupported: "ScimUnsupported",
}

// errNoGroups is the typed error for a provider without /Groups.
func errNoGroups(op string, he *httpError) error {
	why := "HTTP 404"
	if he.Detail != "" {
		why += ": " + he.Detail
	}
	return connectors.Permanentf("ScimUnsupported", "scim: %s: the server has no /Groups endpoint (%s)", op, why)
}

// notFoundAt refines a 404 by where it came from. A 404 on the /Groups
// collection, or one on a group without a JSON body, means the provider has
// no /Groups endpoint: never "not found" for an account or group. A 404 on
// /Users without a JSON body came from something in front of the SCIM
// service (a wrong base URL), not from it: not "the user is absent".
func notFoundAt(op, path string, err error) error {
	he := answer(err)
	if he == nil || he.Status != http.StatusNotFound {
		return err
	}
	res, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch {
	case res == "Groups" && (path == "/Groups" || !he.JSON):
		return errNoGroups(op, he)
	case res == "Users" && !he.JSON && he.Detail != "":
		return connectors.Permanentf("ScimEndpoint", "%s (not a SCIM answer: is the base URL right?)", he.msg)
	}
	return err
}
