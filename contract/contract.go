// Package contract declares, once, the names jml's processes and packages
// share over Temporal: the task queue, workflow types, workflow ID formats,
// update, signal and query names, search attribute keys and values, and
// memo keys. The workflows, the activities, the intake, the worker, the
// operator CLI and the source pollers all import it; it imports nothing of
// jml, so any package can. (Notify events live in package notify; the
// workflows' argument and result types in package workflows.)
package contract

import (
	"strings"
	"time"
)

// TaskQueue is the task queue every jml worker polls.
const TaskQueue = "jml"

// HostTaskQueue is the task queue of one worker process. A process that
// holds passwords polls it (besides TaskQueue) with the same activities, so
// steps that consume a password find it in that process's vault.
func HostTaskQueue(host string) string { return TaskQueue + "-host-" + host }

// Workflow types and the updates, signals and queries they answer.
const (
	IdentityWorkflowName = "Identity" // per-person ordering workflow
	GovernorWorkflowName = "Governor" // mass-change safety limit
	// GovernorWorkflowID is the one long-lived governor.
	GovernorWorkflowID = "jml-governor"
	// UpdatePermit asks the governor before a destructive step.
	// Arg: activities.PermitRequest; result: activities.Permit.
	UpdatePermit       = "Permit"
	JoinerWorkflowName = "Joiner"
	MoverWorkflowName  = "Mover"
	LeaverWorkflowName = "Leaver"

	// UpdateHREvent delivers an hr.Event to a running identity workflow
	// (a new identity is started with its first event as input).
	// Result: workflows.EventAccepted.
	UpdateHREvent = "HREvent"
	// SignalHREvent is the fire-and-forget alternative to UpdateHREvent.
	SignalHREvent = "hr-event"

	// Operator updates on a lifecycle workflow in NeedsAttention.
	UpdateRetryStep = "RetryStep" // arg: workflows.RetryStepRequest
	UpdateSkipStep  = "SkipStep"  // arg: workflows.StepRequest
	UpdateAbort     = "Abort"     // arg: workflows.StepRequest (Step may be empty)
	UpdateRelease   = "Release"   // arg: workflows.StepRequest; releases a Blocked step

	// SignalChildState: a lifecycle run tells its identity that it waits
	// (NeedsAttention, Blocked, Waiting) or runs again. Arg: workflows.ChildState.
	SignalChildState = "child-state"

	// SignalAccountLinked: a lifecycle run tells its identity the account
	// a step created, adopted or linked, as soon as the step is done.
	// Arg: workflows.AccountLink.
	SignalAccountLinked = "account-linked"

	// SignalSupersede tells a leaver that a rehire arrived: its pending
	// delayed steps (the delete after the grace period) never run.
	SignalSupersede = "supersede"

	// QuerySteps returns []workflows.StepInfo of a lifecycle run.
	QuerySteps = "steps"
	// QueryCurrent on the identity workflow returns workflows.CurrentRun:
	// which lifecycle run is active, so the CLI can address it by employee ID.
	QueryCurrent = "current"
)

// Attribute sync and password sync.
const (
	AttributeSyncWorkflowName = "AttributeSync"
	// AttributeSyncScheduleID is the Temporal Schedule the worker keeps in
	// line with the policy's attribute_sync.every. Its runs get workflow IDs
	// starting with it; trigger it for an immediate full run.
	AttributeSyncScheduleID = "jml-attribute-sync"
	// PasswordSyncWorkflowName is the password sync group workflow.
	PasswordSyncWorkflowName = "PasswordSync"
	// QueryPasswordStatus on a running PasswordSync returns its result so
	// far (workflows.PasswordSyncResult, State Running).
	QueryPasswordStatus = "password-status"
)

// Source pollers (docs/sources.md).
const (
	SourcePollerWorkflowName = "SourcePoller"
	// SourcePollActivityName is the activity that reads a source, diffs it
	// against the poller's state and delivers the changes as HR events
	// (implemented by package sources, registered by the worker).
	SourcePollActivityName = "SourcePoll"
	// UpdateSourcePoll polls now (arg SourcePollRequest) and returns the
	// SourceStatus after it.
	UpdateSourcePoll = "PollNow"
	// UpdateSourceRelease applies a Blocked poll (arg SourceDecision) and
	// returns the SourceStatus after it.
	UpdateSourceRelease = "ReleaseSnapshot"
	// UpdateSourceDiscard drops a Blocked poll (arg SourceDecision): the
	// source stays as it was and the same poll is not applied later.
	UpdateSourceDiscard = "DiscardSnapshot"
	// QuerySourceStatus returns SourceStatus.
	QuerySourceStatus = "status"
)

const identityPrefix = "identity/"

// IdentityWorkflowID is the ID of a person's ordering workflow.
func IdentityWorkflowID(employeeID string) string { return identityPrefix + employeeID }

// EmployeeIDOf is the employee ID an identity workflow ID names.
func EmployeeIDOf(identityWorkflowID string) (string, bool) {
	return strings.CutPrefix(identityWorkflowID, identityPrefix)
}

// LifecycleWorkflowID is the ID of a joiner/mover/leaver child run, e.g.
// "joiner/E123/evt-42".
func LifecycleWorkflowID(kind, employeeID, eventID string) string {
	return kind + "/" + employeeID + "/" + eventID
}

// ManualSyncWorkflowID is the ID of a manual sync of one identity
// ("starter sync E123"), e.g. attribute-sync/E123/20261122T084500.000Z.
func ManualSyncWorkflowID(employeeID string, at time.Time) string {
	return "attribute-sync/" + employeeID + "/" + at.UTC().Format("20060102T150405.000Z")
}

const (
	passwordSyncPrefix = "password-sync/"
	passwordSyncTime   = "20060102T150405.000Z"
)

// PasswordSyncWorkflowID is e.g. password-sync/E123/20261122T084500.000Z.
func PasswordSyncWorkflowID(employeeID string, at time.Time) string {
	return passwordSyncPrefix + employeeID + "/" + at.UTC().Format(passwordSyncTime)
}

// PasswordChangeID is what the password-change endpoint and "starter
// password status" call a change: its workflow ID without the prefix,
// e.g. E123/20261122T084500.000Z.
func PasswordChangeID(workflowID string) string {
	return strings.TrimPrefix(workflowID, passwordSyncPrefix)
}

// PasswordChangeOf splits a change ID (or a password sync workflow ID)
// into the employee ID and the workflow ID; false when it has not the
// shape PasswordSyncWorkflowID makes, so no other workflow is reached.
// The caller still checks the employee ID (hr.CheckID).
func PasswordChangeOf(id string) (employeeID, workflowID string, ok bool) {
	id = strings.TrimPrefix(id, passwordSyncPrefix)
	emp, at, ok := strings.Cut(id, "/")
	if !ok || emp == "" || strings.Contains(at, "/") {
		return "", "", false
	}
	if _, err := time.Parse(passwordSyncTime, at); err != nil {
		return "", "", false
	}
	return emp, passwordSyncPrefix + id, true
}

const sourcePrefix = "source/"

// SourceWorkflowID is the ID of a source's poller, e.g. "source/workday".
func SourceWorkflowID(name string) string { return sourcePrefix + name }

// SourceNameOf is the source a poller's workflow ID names.
func SourceNameOf(sourceWorkflowID string) (string, bool) {
	return strings.CutPrefix(sourceWorkflowID, sourcePrefix)
}

// Search attributes (keyword), registered by the dev server and by
// internal/temporalenv at start-up, documented for production clusters.
const (
	SAEmployeeID = "JmlEmployeeId"
	SAEvent      = "JmlEvent"
	SAState      = "JmlState"
	SAFailedStep = "JmlFailedStep"
)

// MetricRuns counts lifecycle runs by kind and state (workflow metric,
// exported by the worker as jml_runs_total{kind,state}): starts as state
// Running, then each time a run enters another state.
const MetricRuns = "jml_runs"

// JmlState values.
const (
	StateWaiting        = "Waiting" // on an effective-date timer
	StateRunning        = "Running"
	StateNeedsAttention = "NeedsAttention"
	StateBlocked        = "Blocked"
	StateCompleted      = "Completed"
	// StateCompletedWithSkips: the run ended, but an operator skipped at
	// least one step (the result and the step table say which and why).
	StateCompletedWithSkips = "CompletedWithSkips"
	StateAborted            = "Aborted"
	StateIdle               = "Idle"     // identity workflow with nothing to do
	StateRetrying           = "Retrying" // a source poller whose last poll failed
	// StateGranted: an access request's grant is in place until its expiry.
	StateGranted = "Granted"
)

// States lists every JmlState value, for checking what a user typed.
var States = []string{StateWaiting, StateRunning, StateNeedsAttention, StateBlocked, StateCompleted,
	StateCompletedWithSkips, StateAborted, StateIdle, StateRetrying, StateGranted}

// IdentityMemoKey is the memo key under which an Identity workflow
// publishes its IdentityRecord (workflows.PublishIdentity, read by
// activities.TemporalDirectory). Memos go through the workers' data
// converter, so the payload codec encrypts it.
const IdentityMemoKey = "jml.identity"

// Identity statuses (IdentityRecord.Status, CurrentRun.Status).
const (
	StatusActive        = "active"
	StatusDeprovisioned = "deprovisioned"
)

// Account states of a link (CurrentRun.AccountStates), as the step that
// last wrote the account read it back.
const (
	AccountActive   = "active"
	AccountDisabled = "disabled"
	// AccountAbsent: the leaver found no account under the link (deleted
	// out of band): nothing left to disable.
	AccountAbsent = "absent"
)

// Access requests (docs/approvals.md): one AccessRequest workflow per
// request, ID "request/<id>": approval, grant, a durable expiry, revoke.
const (
	AccessRequestWorkflowName = "AccessRequest"
	// RequestCheckWorkflowName looks a request's group up at its target
	// before the request starts, ID "request-check/<id>".
	RequestCheckWorkflowName = "AccessRequestCheck"
	// JmlEvent of an access request run.
	EventRequest = "request"
	// ApprovalWorkflowName is an approval step of a lifecycle run, run as
	// its child "approval/<run>/<step>"; JmlEvent approval.
	ApprovalWorkflowName = "Approval"
	EventApproval        = "approval"

	// UpdateDecide is an approver's answer (arg: workflows.ApprovalDecision;
	// result: a one-line answer). The same update serves the e-mail link,
	// `starter approve|deny` and the Web UI.
	UpdateDecide = "Decide"
	// UpdateExtend asks for a longer grant (arg: workflows.ExtendRequest):
	// a new approval round; the grant stays until its current expiry if
	// it is denied.
	UpdateExtend = "Extend"
	// UpdateRevoke ends a grant now (arg: workflows.RevokeRequest).
	UpdateRevoke = "Revoke"
	// SignalRevokeGrants: the person left; revoke at once (arg: reason).
	SignalRevokeGrants = "revoke-grants"
	// SignalReapproveGrants: the person moved and the policy asks the
	// grant's approval again (arg: why); denied or timed out, it revokes.
	SignalReapproveGrants = "reapprove-grants"
	// QueryRequest returns workflows.RequestStatus.
	QueryRequest = "request"
	// GrantMemoKey holds the grant of an AccessRequest in state Granted
	// (workflows.Grant), for reconciliation and overlapping grants.
	GrantMemoKey = "jml.grant"
)

const requestPrefix = "request/"

// RequestWorkflowID is the ID of an access request's workflow.
func RequestWorkflowID(id string) string {
	return requestPrefix + strings.TrimPrefix(id, requestPrefix)
}

// RequestIDOf is the request ID a workflow ID names.
func RequestIDOf(workflowID string) (string, bool) {
	return strings.CutPrefix(workflowID, requestPrefix)
}
