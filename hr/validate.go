package hr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Types lists the event types in the order they are documented.
var types = []string{Hire, Change, Terminate, Rehire}

// FieldError is one invalid field of an event. Field is the JSON path of
// the field in our documented shape ("type", "employee.first_name").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every invalid field of an event, so a sender can fix
// them all at once.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "invalid event: " + strings.Join(msgs, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// MaxIDLen bounds employee and event IDs: both end up in workflow IDs.
const MaxIDLen = 128

// Validate checks the event: a known type, an effective time, an employee
// ID and event ID usable in a workflow ID, a loadable time zone, and every
// attribute in required — the attributes the policy requires of this
// event's type, policy.(*Policy).RequiredFor(e.Type), the one rule that
// decides them (by default hire and rehire need them, change and terminate
// only the employee ID). It returns a *ValidationError.
func (e Event) Validate(required []string) error {
	var v ValidationError
	if !slices.Contains(types, e.Type) {
		if e.Type == "" {
			v.add("type", "required (one of %s)", strings.Join(types, ", "))
		} else {
			v.add("type", "unknown event type %q (want one of %s)", e.Type, strings.Join(types, ", "))
		}
	}
	if e.EffectiveAt.IsZero() {
		v.add("effective_at", "required (RFC 3339 with a time zone, e.g. 2026-12-01T09:00:00-05:00)")
	}
	if msg := CheckID(e.EmployeeID()); msg != "" {
		v.add("employee.employee_id", "%s", msg)
	}
	if e.EventID != "" {
		if msg := CheckID(e.EventID); msg != "" {
			v.add("event_id", "%s", msg)
		}
	}
	if tz := e.Employee["time_zone"]; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			v.add("employee.time_zone", "unknown IANA time zone %q", tz)
		}
	}
	for _, attr := range required {
		if attr == "employee_id" {
			continue
		}
		if strings.TrimSpace(e.Employee[attr]) == "" {
			v.add("employee."+attr, "required attribute missing")
		}
	}
	if len(v.Fields) > 0 {
		return &v
	}
	return nil
}

// CheckID returns why id (an employee or event ID) cannot be part of a
// workflow ID, or "": the intake's rule, shared by every entry point.
func CheckID(id string) string {
	switch {
	case id == "":
		return "required"
	case len(id) > MaxIDLen:
		return fmt.Sprintf("longer than %d characters", MaxIDLen)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("._-@:+", r)
		if !ok {
			return fmt.Sprintf("%q: only letters, digits and . _ - @ : + are allowed", id)
		}
	}
	return ""
}

// DeriveID is the event ID of an event whose sender gave none: a hash of its
// content, so a redelivery of the same event gets the same ID and is
// ignored as a duplicate.
func DeriveID(e Event) string {
	canon := struct {
		Type        string            `json:"t"`
		EffectiveAt string            `json:"at"`
		Employee    map[string]string `json:"e"` // encoding/json sorts map keys
		Source      string            `json:"s"`
	}{e.Type, e.EffectiveAt.UTC().Format(time.RFC3339Nano), e.Employee, e.Source}
	b, _ := json.Marshal(canon) // cannot fail: strings only
	sum := sha256.Sum256(b)
	return "h-" + hex.EncodeToString(sum[:12])
}

// Normalize trims attribute values, drops empty ones and fills in a derived
// event ID when the sender gave none. Call it before Validate.
func (e *Event) Normalize() {
	e.Type = strings.ToLower(strings.TrimSpace(e.Type))
	e.EventID = strings.TrimSpace(e.EventID)
	attrs := make(map[string]string, len(e.Employee))
	for k, v := range e.Employee {
		if v = strings.TrimSpace(v); v != "" {
			attrs[strings.TrimSpace(k)] = v
		}
	}
	e.Employee = attrs
	if e.EventID == "" {
		e.EventID = DeriveID(*e)
	}
}
