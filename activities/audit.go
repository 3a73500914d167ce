package activities

import (
	"context"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// AuditStore is where RecordAudit writes (auditdb.Store).
type AuditStore interface {
	// Append stores records exactly once per Record.Key.
	Append(ctx context.Context, recs []audit.Record) (int, error)
}

// ErrTypeNoAuditStore: a worker without an audit store picked up a
// RecordAudit; it is retried until a worker with one takes it.
const ErrTypeNoAuditStore = "NoAuditStore"

// RecordAudit writes a run's audit records. The workflow schedules it
// with an unlimited retry policy right after the effect, so the records
// are durable in the run's history until the store takes them; each
// record's key (workflow/run/sequence) is unique in the store, so a
// retry after a worker died mid-write lands nothing twice.
func (a *Activities) RecordAudit(ctx context.Context, recs []audit.Record) error {
	if a.cfg.Audit == nil {
		return temporal.NewApplicationError("this worker has no audit store", ErrTypeNoAuditStore)
	}
	if _, err := a.cfg.Audit.Append(ctx, recs); err != nil {
		if a.cfg.Metrics != nil {
			a.cfg.Metrics.AuditWriteFailed()
		}
		return temporal.NewApplicationError(err.Error(), "AuditStoreUnavailable")
	}
	return nil
}

// HasAuditStore says whether this worker has an audit store: a run that
// has no plan to say so (aborted at its schedule or plan step) asks.
func (a *Activities) HasAuditStore(context.Context) (bool, error) {
	return a.cfg.Audit != nil, nil
}

// AuditEffects are the effects a step that ended with res had, for the
// audit trail: the ones the step reported (StepResult.Effects), else what
// its action and result say. Steps read back what they wrote, so a step
// that succeeded is verified; a request or notification is verified only
// by the recipient's answer and says so (Verified false).
func (s PlannedStep) AuditEffects(res StepResult) []audit.Effect {
	if len(res.Effects) > 0 {
		return res.Effects
	}
	acct := func(action string) audit.Effect {
		return audit.Effect{Action: action, Target: s.Target, AccountID: res.AccountID, Verified: true, Detail: res.Note}
	}
	var out []audit.Effect
	switch s.Action {
	case policy.ActionSyncIdentity:
		action := audit.AccountLinked
		switch res.Correlation {
		case Created:
			action = audit.AccountCreated
		case Adopted:
			action = audit.AccountAdopted
		}
		e := acct(action)
		if res.Identifier != "" {
			e.Detail += "; identifier " + res.Identifier // the name the leavers report lists
		}
		out = append(out, e)
		out = append(out, s.passwordSet(res)...)
	case policy.ActionDeprovisionIdentity:
		if res.AccountID == "" || res.Note == NoteNoAccount {
			out = append(out, acct(audit.AccountAbsent))
		} else {
			out = append(out, acct(audit.AccountDisabled))
		}
	case policy.ActionDeleteIdentity:
		if res.AccountID == "" {
			out = append(out, acct(audit.AccountAbsent))
		} else {
			out = append(out, acct(audit.AccountDeleted))
		}
	case policy.ActionManageRelationships:
		out = append(out, acct("group.changed"))
	case policy.ActionCreateEntitlement:
		e := acct(audit.EntitlementCreated)
		e.Group = res.Outputs["group_id"]
		out = append(out, e)
	case policy.ActionResetPassword:
		out = append(out, s.passwordSet(res)...)
	case policy.ActionSendRESTRequest:
		e := acct(audit.RequestSent)
		e.Verified = false
		out = append(out, e)
	case policy.ActionNotify:
		e := acct(audit.NotificationSent)
		e.Verified = false
		out = append(out, e)
	case "enable":
		out = append(out, acct(audit.AccountEnabled))
	default:
		out = append(out, acct("step."+s.Action))
	}
	return out
}

// passwordSet records a password a step set: which account, never the
// value (the vault holds it; the record names that it exists).
func (s PlannedStep) passwordSet(res StepResult) []audit.Effect {
	var out []audit.Effect
	for _, ref := range res.Secrets {
		d := "generated password"
		if ref.Temporary {
			d = "temporary password"
		}
		out = append(out, audit.Effect{Action: audit.PasswordSet, Target: ref.Target, AccountID: ref.AccountID, Detail: d, Verified: true})
	}
	return out
}

// deliveryEffects records a request or notification that went to recipient over
// channel; when it carried a password, a password.delivered says to whom
// (the value is never recorded). Verified: the recipient accepted it.
func deliveryEffects(action, channel, recipient string, carriedSecret bool) []audit.Effect {
	d := channel + " → " + recipient
	out := []audit.Effect{{Action: action, Detail: d, Verified: true}}
	if carriedSecret {
		out = append(out, audit.Effect{Action: audit.PasswordDelivered, Detail: d, Verified: true})
	}
	return out
}

// movedEffect is the account.moved effect of an account whose DN
// (connectors.AttrDN, which only directories report) differs between
// before, read before the write, and after, its read-back: the directory
// moved it (a new container) or renamed it. Verified: the read-back found
// it at its new DN. Nothing when either read is missing or says no DN.
func movedEffect(target string, before, after *connectors.Account) []audit.Effect {
	if before == nil || after == nil {
		return nil
	}
	from, to := before.Attributes[connectors.AttrDN], after.Attributes[connectors.AttrDN]
	if from == "" || to == "" || strings.EqualFold(from, to) {
		return nil
	}
	return []audit.Effect{{Action: audit.AccountMoved, Target: target, AccountID: after.ID,
		Detail: "from " + from + " to " + to, Verified: true}}
}
