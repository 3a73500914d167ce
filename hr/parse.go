package hr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// SyntaxError is a body that is not well-formed JSON, or a field of the
// wrong JSON type, with the 1-based line and column where it was found.
type SyntaxError struct {
	Line, Column int
	Offset       int64
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at line %d, column %d (byte %d): %s", e.Line, e.Column, e.Offset, e.Msg)
}

// wireEvent is the documented JSON shape before normalization: the time
// stays a string so a missing zone is reported by name, and attribute
// values may be JSON numbers or booleans (HR systems send both).
type wireEvent struct {
	EventID     string                     `json:"event_id"`
	Type        string                     `json:"type"`
	EffectiveAt string                     `json:"effective_at"`
	Employee    map[string]json.RawMessage `json:"employee"`
	Source      string                     `json:"source"`
}

// ParseJSON decodes one event in jml's documented shape (docs/intake.md),
// normalizes it and derives its event ID when absent. A malformed body gives
// a *SyntaxError; a well-formed one with bad values gives a
// *ValidationError (from parsing only: call Validate for the rest).
func ParseJSON(body []byte) (Event, error) {
	var w wireEvent
	if err := decodeStrict(body, &w); err != nil {
		return Event{}, err
	}
	var v ValidationError
	ev := Event{EventID: w.EventID, Type: w.Type, Source: w.Source, Employee: map[string]string{}}
	if ev.Source == "" {
		ev.Source = "api"
	}
	if w.EffectiveAt != "" {
		t, err := ParseTime(w.EffectiveAt, nil)
		if err != nil {
			v.add("effective_at", "%v", err)
		}
		ev.EffectiveAt = t
	}
	for k, raw := range w.Employee {
		s, err := scalar(raw)
		if err != nil {
			v.add("employee."+k, "%v", err)
			continue
		}
		ev.Employee[k] = s
	}
	if len(v.Fields) > 0 {
		return Event{}, &v
	}
	ev.Normalize()
	return ev, nil
}

// decodeStrict unmarshals one JSON value and turns the decoder's errors into
// *SyntaxError with a line and column.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return syntaxAt(body, dec.InputOffset(), "unexpected data after the JSON value")
		}
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the offending byte: point at it.
		return syntaxAt(body, se.Offset-1, se.Error())
	case errors.As(err, &te):
		return syntaxAt(body, te.Offset, fmt.Sprintf("field %q: expected a JSON %s, got %s", te.Field, te.Type, te.Value))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return syntaxAt(body, int64(len(body)), "unexpected end of JSON input")
	}
	return syntaxAt(body, dec.InputOffset(), err.Error())
}

func syntaxAt(body []byte, off int64, msg string) *SyntaxError {
	off = min(max(off, 0), int64(len(body)))
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return &SyntaxError{Line: line, Column: col, Offset: off, Msg: msg}
}

// scalar renders a JSON string, number or boolean attribute as a string.
func scalar(raw json.RawMessage) (string, error) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		// Keep the sender's digits: 00123 is not a JSON number, but 1e3 or
		// 12345678901234567890 must not be rounded through float64.
		return string(bytes.TrimSpace(raw)), nil
	default:
		return "", errors.New("must be a string, number or boolean")
	}
}

// ParseTime parses an effective time: RFC 3339 with a zone, or — only when
// loc is not nil — a date (2026-12-01) or a local date-time
// (2026-12-01T09:00:00) taken in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if loc != nil {
		for _, layout := range []string{time.DateOnly, "2006-01-02T15:04:05", time.DateTime} {
			if t, err := time.ParseInLocation(layout, s, loc); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not a date (2026-12-01) or RFC 3339 time", s)
	}
	if _, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return time.Time{}, fmt.Errorf("%q has no time zone (want RFC 3339, e.g. %s)", s, s+"Z")
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time with a zone (e.g. 2026-12-01T09:00:00-05:00)", s)
}
