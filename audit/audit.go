// Package audit is jml's audit trail: one Record for every effect a step
// had on a target and every decision taken about a run (jml's or an
// operator's), kept in a store of its own that outlives Temporal's
// retention. Records are append-only and chained: each holds the SHA-256
// of its predecessor, so an edited, inserted or removed row shows
// (Verify). The store itself is in package auditdb; this package holds
// what workflows, activities and the reports share, and imports no
// database driver.
//
// A record never holds a secret: a password set is recorded as an action
// with the channel and recipient it went to, never its value, and
// attribute values only for the attributes the policy marks auditable.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Actions. An effect on a target is account.*, group.*, entitlement.*,
// password.*, notification.*, request.*; a decision is operator.*,
// safety.*, correlation.*, step.*, run.* or source.*. A reconciliation's
// actions are the effects they had (group.added, account.disabled, …) of
// Kind "reconcile".
const (
	AccountCreated = "account.created"
	AccountAdopted = "account.adopted"
	AccountLinked  = "account.linked"
	AccountUpdated = "account.updated"
	AccountEnabled = "account.enabled"
	// AccountDisabled: the account read back disabled (leavers report).
	AccountDisabled = "account.disabled"
	AccountMoved    = "account.moved"
	AccountDeleted  = "account.deleted"
	// AccountAbsent: a leaver found no account in the target.
	AccountAbsent = "account.absent"

	GroupAdded         = "group.added"
	GroupRemoved       = "group.removed"
	EntitlementCreated = "entitlement.created"

	PasswordSet       = "password.set"
	PasswordDelivered = "password.delivered"
	NotificationSent  = "notification.sent"
	RequestSent       = "request.sent"

	CorrelationConflict = "correlation.conflict"
	StepFailed          = "step.failed"
	StepSkipped         = "step.skipped"

	OperatorRetry   = "operator.retry"
	OperatorSkip    = "operator.skip"
	OperatorAbort   = "operator.abort"
	OperatorRelease = "operator.release"
	// OperatorTerminate: `starter terminate` ended the run through
	// Temporal (recorded by the CLI, before).
	OperatorTerminate = "operator.terminate"
	SafetyHold        = "safety.hold"
	SafetyRelease     = "safety.release"

	ApprovalApproved = "approval.approved"
	ApprovalDenied   = "approval.denied"

	RunStarted   = "run.started"
	RunCompleted = "run.completed"
	RunAborted   = "run.aborted"

	SourceApplied   = "source.applied"
	SourceHeld      = "source.held"
	SourceDiscarded = "source.discarded"
)

// ActorJML is the actor of everything jml did by itself.
const ActorJML = "jml"

// Effect is what a step did, as the activity that did it reports it
// (StepResult.Effects); the workflow adds who, when and in which run.
type Effect struct {
	Action    string `json:"action"`
	Target    string `json:"target,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	// EmployeeID is the person of an effect on someone else's account than
	// the run's (a reconciliation's); "" for the run's own person.
	EmployeeID string `json:"employee_id,omitempty"`
	// Group names the group of group.* and entitlement.*.
	Group string `json:"group,omitempty"`
	// Attributes are the names of the attributes written; a value only
	// for those the policy marks auditable ("" otherwise).
	Attributes map[string]string `json:"attributes,omitempty"`
	// Detail is a short line: the channel and recipient a password or a
	// notification went to, the error type of a failure.
	Detail string `json:"detail,omitempty"`
	// Verified: the target read back in the intended state.
	Verified bool `json:"verified,omitempty"`
}

// Record is one row of the audit trail.
type Record struct {
	// Seq is the record's position in the chain (1, 2, …), given by the
	// store; Key its idempotency key (workflow/run/step/n), unique, so a
	// record retried after a crash lands once.
	Seq int64  `json:"seq"`
	Key string `json:"key"`
	// Time is when the effect or decision happened (the run's clock);
	// RecordedAt when the store took it.
	Time       time.Time         `json:"time"`
	RecordedAt time.Time         `json:"recorded_at"`
	EmployeeID string            `json:"employee_id,omitempty"`
	Action     string            `json:"action"`
	Target     string            `json:"target,omitempty"`
	AccountID  string            `json:"account_id,omitempty"`
	Group      string            `json:"group,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Detail     string            `json:"detail,omitempty"`
	// Kind is the run's kind (joiner, mover, leaver, source, reconcile).
	Kind string `json:"kind,omitempty"`
	// EventID and EffectiveAt are the HR event's; EffectiveAt is its
	// effective time (a termination's last day), or when the run started
	// for an event effective at once.
	EventID     string    `json:"event_id,omitempty"`
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	WorkflowID  string    `json:"workflow_id,omitempty"`
	RunID       string    `json:"run_id,omitempty"`
	Step        string    `json:"step,omitempty"`
	Verified    bool      `json:"verified"`
	// Actor is ActorJML or the operator who decided; Reason the
	// operator's reason.
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// PrevHash is the predecessor's Hash ("" for the first record); Hash
	// the SHA-256 of PrevHash and every other field.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Precision is what the stores keep of a time; records are truncated to
// it before they are hashed so a stored record hashes the same.
const Precision = time.Microsecond

// Normalize truncates r's times to Precision in UTC.
func (r *Record) Normalize() {
	norm := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC().Truncate(Precision)
	}
	r.Time, r.RecordedAt, r.EffectiveAt = norm(r.Time), norm(r.RecordedAt), norm(r.EffectiveAt)
	if len(r.Attributes) == 0 {
		r.Attributes = nil
	}
}

// ComputeHash is the record's chain hash: SHA-256 over its canonical JSON
// (every field but Hash, PrevHash included).
func (r Record) ComputeHash() string {
	r.Normalize()
	r.Hash = ""
	b, err := json.Marshal(r) // struct fields in order, map keys sorted
	if err != nil {
		panic(err) // strings, times and a string map always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Break is the first record at which a chain does not hold.
type Break struct {
	Seq    int64
	Key    string
	Reason string
}

// Chain checks records in order, starting after an anchor: the Hash and
// Seq of the record before the first one ("", 0 at the chain's start; the
// last purged record after a retention purge).
type Chain struct {
	prev    string
	lastSeq int64
}

// NewChain starts a check after anchor.
func NewChain(anchor string, anchorSeq int64) *Chain {
	return &Chain{prev: anchor, lastSeq: anchorSeq}
}

// Next checks r, the next record; a non-nil Break is the first bad one.
func (c *Chain) Next(r Record) *Break {
	switch {
	case r.Seq != c.lastSeq+1:
		return &Break{Seq: r.Seq, Key: r.Key, Reason: "a record is missing before it (sequence jumps from " + itoa(c.lastSeq) + ")"}
	case r.PrevHash != c.prev:
		return &Break{Seq: r.Seq, Key: r.Key, Reason: "its predecessor hash does not match the record before it (a record before it was changed, removed or inserted)"}
	case r.ComputeHash() != r.Hash:
		return &Break{Seq: r.Seq, Key: r.Key, Reason: "its content does not match its hash (the row was edited)"}
	}
	c.prev, c.lastSeq = r.Hash, r.Seq
	return nil
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
