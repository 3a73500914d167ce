// Package activities holds every side effect of jml: one method per policy
// action on one struct with injected connectors, a worker-memory password
// vault and an HTTP sender. Each policy action is one type in its own file
// (action_<name>.go: its activity, traits, capabilities, plan facts and
// planned effects), listed once in actionTable (action.go). Workflows refer
// to the methods through a nil *Activities (PlannedStep.Activity).
//
// Every method has "ensure" semantics (a rerun after a crash never makes a
// duplicate), returns only non-secret outputs plus opaque vault handles, and
// turns connector errors into Temporal errors once, here:
//
//   - connectors.PermanentError → non-retryable ApplicationError of its Type
//   - connectors.RateLimitedError → retryable, NextRetryDelay = the server's delay
//   - ErrConflict / ErrNotFound where they are final → non-retryable
//   - anything else → retryable with the workflow's backoff
//
// Error messages are scrubbed of every secret the activity touched (raw,
// JSON-escaped and base64) before they reach Temporal.
package activities

import (
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// Config wires an Activities value.
type Config struct {
	Policy *policy.Policy
	// Targets maps a policy target name to its connector, which implements
	// some of the connectors capability interfaces.
	Targets map[string]any
	// Vault holds generated and temporary passwords in this worker's memory.
	Vault *secret.Vault
	// REST sends Send REST Request / Notify calls. Nil: a connectors/rest
	// client over HTTPClient with the policy's named credentials.
	REST RESTSender
	// HTTPClient is used by the REST client (nil: a client over
	// connectors.NewHTTPTransport with rest's 30 s per-exchange timeout).
	HTTPClient *http.Client
	// AllowInsecureLoopback lets REST requests that carry a secret use
	// plain http to a loopback address (tests only).
	AllowInsecureLoopback bool
	// Client reaches the governor workflow (mass-change safety limit). Nil
	// disables the limit.
	Client client.Client
	Logger *zap.Logger
	Getenv func(string) string
	// Rand feeds password generation (nil: crypto/rand).
	Rand io.Reader
	// Directory lists the identities the attribute sync keeps in sync and
	// resolves one for manual sync and password sync. Nil: the Identity
	// workflows' memos through Client (TemporalDirectory), decoded with
	// DataConverter (set it to the workers' converter when payloads are
	// encrypted; nil: the SDK default).
	Directory     Directory
	DataConverter converter.DataConverter

	// HostQueue is this worker process's own task queue (polled by a second
	// worker with the same activities). A step that puts a secret into this
	// process's vault returns it, and the run schedules the steps that read
	// the secret there. Empty: steps run on the shared queue (one process).
	HostQueue string
	// HostTimeout is how long a step waits to be picked up on HostQueue
	// before the run takes the holder for gone and re-issues (default 20s).
	HostTimeout time.Duration

	// StepTimeout is the StartToCloseTimeout of one step attempt (default 1m).
	StepTimeout time.Duration
	// SessionHeartbeat is how fast a lost worker session is noticed
	// (default 20s).
	SessionHeartbeat time.Duration

	// Metrics counts notifications and failed audit writes
	// (internal/metrics.Metrics); nil counts nothing. Steps are counted by the worker's interceptor.
	Metrics Metrics

	// Audit is the audit store RecordAudit writes to. Nil: runs planned
	// on this worker record nothing (Plan.Audit false).
	Audit AuditStore
}

// Metrics is what the activities count themselves.
type Metrics interface {
	// Notification counts a notify attempt: result is sent,
	// not_subscribed or failed.
	Notification(channel, event, result string)
	// AuditWriteFailed counts a write the audit store failed.
	AuditWriteFailed()
}

// Activities is the activity struct registered with the worker.
type Activities struct {
	cfg  Config
	log  *zap.Logger
	rest RESTSender
	// lookups are the policy's LOOKUP tables, parsed once.
	lookups   map[string]*transform.Table
	lookupErr error
	// population is the governor's count of active identities.
	population populationCache
	// snapshots are the attribute sync's desired states of running syncs.
	snapshots snapshotCache
}

// New returns Activities for cfg.
func New(cfg Config) *Activities {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Directory == nil && cfg.Client != nil {
		cfg.Directory = TemporalDirectory{Client: cfg.Client, DataConverter: cfg.DataConverter}
	}
	if cfg.Vault == nil {
		cfg.Vault = secret.NewVault(time.Hour)
	}
	if cfg.Policy == nil {
		cfg.Policy = &policy.Policy{}
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = time.Minute
	}
	if cfg.HostTimeout == 0 {
		cfg.HostTimeout = 20 * time.Second
	}
	if cfg.SessionHeartbeat == 0 {
		cfg.SessionHeartbeat = 20 * time.Second
	}
	a := &Activities{cfg: cfg, log: cfg.Logger, rest: cfg.REST}
	if a.rest == nil {
		a.rest = rest.New(rest.Options{HTTPClient: cfg.HTTPClient, Getenv: cfg.Getenv, Logger: cfg.Logger,
			Credentials: cfg.Policy.RESTCredentials(), AllowInsecureLoopback: cfg.AllowInsecureLoopback})
	}
	a.lookups, a.lookupErr = cfg.Policy.Tables()
	return a
}

// SecretRef is the history-safe form of a secret output: an opaque vault
// handle plus where the secret belongs, so a step whose handle no longer
// resolves can set a new one on the account.
type SecretRef struct {
	Handle    secret.Handle `json:"handle"`
	Target    string        `json:"target"`
	AccountID string        `json:"account_id"`
	// Temporary: a reset_password temporary password. Re-issuing it
	// expires the password again; it is never made permanent.
	Temporary bool `json:"temporary,omitempty"`
}

// StepInput is what every step activity receives.
type StepInput struct {
	// Owner is the lifecycle workflow ID; vault entries are filed under it.
	Owner string `json:"owner"`
	// Kind is joiner, mover or leaver.
	Kind string      `json:"kind"`
	Step PlannedStep `json:"step"`
	// Attributes are the employee's (new) attributes; OldAttributes the
	// previous ones on a mover (group diff, account lookup).
	Attributes    map[string]string `json:"attributes"`
	OldAttributes map[string]string `json:"old_attributes,omitempty"`
	// Outputs of earlier steps by entity type ({OktaUser.login}); never secret.
	Outputs map[string]map[string]string `json:"outputs,omitempty"`
	// Secrets of earlier steps by "Entity.attr" (OktaUser.password).
	Secrets map[string]SecretRef `json:"secrets,omitempty"`
	// Accounts are known account IDs by target name from earlier runs.
	Accounts map[string]string `json:"accounts,omitempty"`
	// Identifiers are the linked accounts' unique identifiers by target
	// name, as chosen at creation (fallbacks and NEXT_NUMBER included).
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// Rerun: an earlier execution of this step in this run (a lost worker,
	// an operator's RetryStep) may have created the account it finds.
	Rerun bool `json:"rerun,omitempty"`
	// Inactive creates accounts disabled (pre-hire); Reactivate re-enables a
	// disabled account found by a joiner (rehire).
	Inactive   bool `json:"inactive,omitempty"`
	Reactivate bool `json:"reactivate,omitempty"`
	// Outcome is what a notify step reports: rest.OnCompleted (default) or
	// rest.OnNeedsAttention with the failed step and its scrubbed error.
	Outcome    string `json:"outcome,omitempty"`
	FailedStep string `json:"failed_step,omitempty"`
	Error      string `json:"error,omitempty"`
}

// StepLabels name the step in the worker's metrics (jml_steps_total).
func (in StepInput) StepLabels() (action, target string) { return in.Step.Action, in.Step.Target }

// StepResult is what a step activity returns. It is recorded in history,
// so it never holds a secret value.
type StepResult struct {
	EntityType string               `json:"entity_type,omitempty"`
	Outputs    map[string]string    `json:"outputs,omitempty"`
	Secrets    map[string]SecretRef `json:"secrets,omitempty"` // by "Entity.attr"
	AccountID  string               `json:"account_id,omitempty"`
	Note       string               `json:"note,omitempty"`
	// Identifier is the linked account's unique identifier (sync steps).
	Identifier string `json:"identifier,omitempty"`
	// Correlation is how a sync step found its account: Linked, Adopted or
	// Created.
	Correlation string `json:"correlation,omitempty"`
	// AccountState is the account's state after the step, as read back
	// (contract.AccountActive, AccountDisabled); empty when the step did
	// not learn it. The person's link carries it.
	AccountState string `json:"account_state,omitempty"`
	// Queue is the task queue of the worker whose vault now holds the
	// step's secrets (Config.HostQueue); later steps that read them run
	// there.
	Queue string `json:"queue,omitempty"`
	// Effects are what the step did, for the audit trail, when the step
	// knows more than its action and result say (AuditEffects).
	Effects []audit.Effect `json:"effects,omitempty"`
}

// Correlation outcomes of a sync step, after midPoint's synchronization
// situations. A conflict (the identifier is another person's) is an error
// of type ErrTypeConflict and never written.
const (
	Linked  = "linked"  // the account this person's link names
	Adopted = "adopted" // an unlinked account matched by the correlation keys
	Created = "created"
)
