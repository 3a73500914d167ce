package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
)

// Step states in the step table.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	StepSkipped = "skipped"
	StepBlocked = "blocked"
	// StepAborted: the step an operator aborted the run at.
	StepAborted = "aborted"
	// StepSuperseded: a delayed step a later event made moot (a leaver's
	// pending delete when the person is rehired).
	StepSuperseded = "superseded"
)

// IdentityVersion is the identity workflow's current shape: 1 publishes
// the IdentityRecord memo; 2 runs children without worker sessions
// (LifecycleInput.HostQueues) and publishes once it knows something; 3
// (VersionOperatorUI) mirrors its child's state and details, and its
// children take one safety-limit permit per person, end
// CompletedWithSkips when steps were skipped and report progress; 4
// (VersionLean) records no version markers for the guards of changes
// older than it (link-at-write, link-state, revoke-grants, audit-trail):
// the shape comes with the input, so a run pays no marker and no
// TemporalChangeVersion upsert (a visibility write) for them.
const IdentityVersion = VersionLean

// VersionOperatorUI is the identity (and LifecycleInput.Version) shape
// from which runs show operators what to do (see IdentityVersion).
const VersionOperatorUI = 3

// VersionLean is the shape from which the identity and its runs take the
// guarded changes that predate it as given (see IdentityVersion) instead
// of asking workflow.GetVersion.
const VersionLean = 4

// IdentityInput starts (and continues-as-new) the identity workflow. The
// intake starts a new identity with its first event in Pending (see
// FirstEvent); the rest is carried state.
type IdentityInput struct {
	EmployeeID string `json:"employee_id"`
	// Version is the identity workflow's shape, set by whoever starts it
	// (IdentityVersion) and carried across continue-as-new, so a new
	// identity needs no version marker of its own. Zero: started before
	// this field; the workflow asks workflow.GetVersion.
	Version    int               `json:"version,omitempty"`
	Handled    []string          `json:"handled,omitempty"`    // event IDs already processed (bounded)
	Pending    []hr.Event        `json:"pending,omitempty"`    // queued events not yet run
	Attributes map[string]string `json:"attributes,omitempty"` // HR's latest word on the person
	// Applied, when set, are the attributes the targets were last brought
	// to, behind Attributes because a run since did not complete (aborted,
	// failed): a mover diffs from them, so what that run did not write is
	// written. Nil: the same as Attributes.
	Applied map[string]string `json:"applied,omitempty"`
	Status  string            `json:"status,omitempty"` // "", active, deprovisioned
	// Accounts are the account IDs by target name made by earlier runs
	// (leaver and mover steps act on them).
	Accounts map[string]string `json:"accounts,omitempty"`
	// Identifiers are the linked accounts' unique identifiers by target,
	// as chosen at creation (fallbacks and NEXT_NUMBER included).
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// AccountStates are the linked accounts' states by target
	// (contract.AccountActive, AccountDisabled), as the step that last
	// wrote each read it back; absent for links recorded before them.
	AccountStates map[string]string `json:"account_states,omitempty"`
	// Receipts remember each received event's content digest and run,
	// by event ID (bounded like Handled): a resend with other content is
	// a conflict, not a duplicate.
	Receipts map[string]Receipt `json:"receipts,omitempty"`
	// LastRun is the most recent lifecycle workflow ID (QueryCurrent), so
	// it survives continue-as-new.
	LastRun string `json:"last_run,omitempty"`
}

// FirstEvent is the input that starts a person's identity workflow with
// its first event already queued, and what the intake answers for it. A
// start carrying the event costs no update (two history events fewer than
// update-with-start) and is as durable: the event is in the started event.
func FirstEvent(ev hr.Event) (IdentityInput, EventAccepted) {
	id := ev.EmployeeID()
	run := contract.LifecycleWorkflowID(kindOf(ev, ""), id, ev.EventID)
	return IdentityInput{
		EmployeeID: id,
		Version:    IdentityVersion,
		Pending:    []hr.Event{ev},
		Receipts:   map[string]Receipt{ev.EventID: {Digest: ev.Digest(), WorkflowID: run}},
	}, EventAccepted{WorkflowID: run}
}

// FirstEventKind is the lifecycle kind (joiner, mover, leaver) a new
// identity runs for its first event: the JmlEvent it starts with.
func FirstEventKind(ev hr.Event) string { return kindOf(ev, "") }

// ValidateEvent is what an identity accepts from HR, checked by its update
// validator and by the intake before it starts a new identity.
func ValidateEvent(employeeID string, ev hr.Event) error {
	switch {
	case ev.EventID == "":
		return errors.New("event_id is required")
	case ev.EmployeeID() != employeeID:
		return errors.New("employee.employee_id does not match this identity")
	}
	switch ev.Type {
	case hr.Hire, hr.Change, hr.Terminate, hr.Rehire:
		return nil
	}
	return fmt.Errorf("type %q is not one of hire, change, terminate, rehire", ev.Type)
}

// Receipt is what an identity remembers of a received event.
type Receipt struct {
	Digest     string `json:"digest"`
	WorkflowID string `json:"workflow_id"`
}

// CurrentRun answers QueryCurrent.
type CurrentRun struct {
	EmployeeID string   `json:"employee_id"`
	WorkflowID string   `json:"workflow_id,omitempty"` // the running lifecycle child; empty when idle
	Kind       string   `json:"kind,omitempty"`        // joiner | mover | leaver
	EventID    string   `json:"event_id,omitempty"`
	Pending    []string `json:"pending,omitempty"` // queued event IDs
	Status     string   `json:"status,omitempty"`
	LastRun    string   `json:"last_run,omitempty"` // the most recent lifecycle workflow ID
	// Accounts and Identifiers are the person's links by target, as the
	// identity knows them now (a waiting run's accounts included).
	Accounts    map[string]string `json:"accounts,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// AccountStates: IdentityInput.AccountStates.
	AccountStates map[string]string `json:"account_states,omitempty"`
}

// ChildState is what a lifecycle run reports to its identity, which
// mirrors it in its own JmlState, JmlFailedStep and details.
type ChildState struct {
	WorkflowID string `json:"workflow_id"`
	State      string `json:"state"`
	FailedStep string `json:"failed_step,omitempty"`
	Details    string `json:"details,omitempty"`
}

// AccountLink is what a lifecycle run reports to its identity when a step
// has created, adopted or linked an account (SignalAccountLinked): the
// identity records and publishes the link at once, not when the run ends.
type AccountLink struct {
	WorkflowID string `json:"workflow_id"` // the reporting run
	Target     string `json:"target"`
	AccountID  string `json:"account_id"`
	Identifier string `json:"identifier,omitempty"`
	// State is the account's state (contract.AccountActive,
	// AccountDisabled); empty from runs before it.
	State string `json:"state,omitempty"`
}

// EventAccepted answers UpdateHREvent.
type EventAccepted struct {
	WorkflowID string `json:"workflow_id"`
	Duplicate  bool   `json:"duplicate"` // the event ID was already handled
	// Conflict: the event ID was received before with different content;
	// WorkflowID names the run that holds the first one. The intake
	// answers 409, never a silent duplicate.
	Conflict bool `json:"conflict,omitempty"`
}

// HREventRequest is the UpdateHREvent / SignalHREvent argument.
type HREventRequest struct {
	Event hr.Event `json:"event"`
}

// StepRequest names the failed step an operator acts on.
type StepRequest struct {
	Step   string `json:"step"`
	Reason string `json:"reason,omitempty"`
	// Operator is who decided (the CLI sends user@host; in the Web UI,
	// type your name). Recorded with the reason in the step table, the
	// run's details and its result.
	Operator string `json:"operator,omitempty"`
	// Rollback (Abort only): also deprovision every account this run
	// created (disable and drop groups; never delete).
	Rollback bool `json:"rollback,omitempty"`
	// Cascade (SkipStep only): also skip the later steps that use the
	// skipped step's outputs; without it such a skip is refused.
	Cascade bool `json:"cascade,omitempty"`
}

// RetryStepRequest re-runs exactly the failed step, optionally with
// corrected identity attributes.
type RetryStepRequest struct {
	Step       string            `json:"step"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Operator   string            `json:"operator,omitempty"`
}

// Decision is an operator's update as a run records it (step table row,
// details, LifecycleResult.Decisions).
type Decision struct {
	Update   string    `json:"update"` // RetryStep | SkipStep | Abort | Release
	Step     string    `json:"step,omitempty"`
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// Update and query descriptions: the Web UI shows them in its Send an
// Update dialog and on the run's Queries tab.
const (
	DescRetryStep = `Re-run the failed step (JmlFailedStep) once its cause is fixed, optionally with corrected attributes. ` +
		`Only while JmlState is NeedsAttention. Payload: {"step": "<failed step>", "attributes": {"department": "Sales"}, "reason": "…", "operator": "<your name>"}. ` +
		`CLI: starter retry <employee> --step <step> [--set name=value]`
	DescSkipStep = `Skip the failed step and go on with the next one; the run ends CompletedWithSkips. Refused when later steps use ` +
		`its outputs, unless "cascade": true skips them too. Only while NeedsAttention. ` +
		`Payload: {"step": "<failed step>", "reason": "…", "operator": "<your name>", "cascade": false}. CLI: starter skip <employee> --step <step> --reason …`
	DescAbort = `Stop the run (JmlState Aborted) while it waits in NeedsAttention or Blocked; what it created stays in place and is listed ` +
		`("rollback": true disables the accounts it created, never deletes). Payload: {"reason": "…", "operator": "<your name>", "rollback": false}. ` +
		`CLI: starter abort <employee> --reason …`
	DescRelease = `Let a run stopped by the mass-change safety limit (JmlState Blocked) go on; one release covers all of the person's ` +
		`destructive steps. Not for NeedsAttention runs (use RetryStep). Payload: {"step": "<blocked step>", "reason": "…", "operator": "<your name>"}. ` +
		`CLI: starter release <employee> | starter release --all`
	DescSteps   = `The step table: each step's state, attempts, last error, and operator decisions.`
	DescCurrent = `Which lifecycle run (joiner/mover/leaver) of this person is active, and the queued events.`
)

// StepInfo is one row of the step table.
type StepInfo struct {
	Name      string    `json:"name"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	Note      string    `json:"note,omitempty"` // e.g. "password re-issued: worker lost the vault entry"
	Time      time.Time `json:"time,omitempty"`
	// Decision is the operator's last update on this step (who and why).
	Decision *Decision `json:"decision,omitempty"`
}

// NotApplicable: the row is the leaver's requests.revoke that found no
// access request to revoke. Step tables leave it out (it would be noise in
// every leaver of a company that uses no requests); the query keeps it.
func (s StepInfo) NotApplicable() bool {
	return s.Action == stepRevokeGrants && s.State == StepDone && s.Note == revokedNote(0)
}

// ShownSteps are the rows a step table shows: those not NotApplicable.
func ShownSteps(rows []StepInfo) []StepInfo {
	var out []StepInfo
	for _, s := range rows {
		if !s.NotApplicable() {
			out = append(out, s)
		}
	}
	return out
}
