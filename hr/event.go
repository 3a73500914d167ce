// Package hr defines the normalized HR event that starts every lifecycle
// workflow, and its validation.
package hr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Event types.
const (
	Hire      = "hire"
	Change    = "change"
	Terminate = "terminate"
	Rehire    = "rehire"
)

// Event is one HR event. Employee holds normalized attributes (snake_case):
// employee_id (required), first_name, last_name, email, department, title,
// manager_id, country_code, time_zone (IANA, for local-time scheduling), …
type Event struct {
	EventID     string            `json:"event_id"`
	Type        string            `json:"type"`
	EffectiveAt time.Time         `json:"effective_at"`
	Employee    map[string]string `json:"employee"`
	// Source names where the event came from (api, csv, workday, bamboohr, okta).
	Source string `json:"source,omitempty"`
}

// EmployeeID is the person's stable identifier (never email or name).
func (e Event) EmployeeID() string { return e.Employee["employee_id"] }

// Digest identifies the event's content, so a resend of an event ID with
// different content is told apart from a duplicate. Deterministic
// (encoding/json sorts map keys), so workflows may call it.
func (e Event) Digest() string {
	b, _ := json.Marshal(struct {
		Type        string            `json:"type"`
		EffectiveAt time.Time         `json:"effective_at"`
		Employee    map[string]string `json:"employee"`
	}{e.Type, e.EffectiveAt.UTC(), e.Employee})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
