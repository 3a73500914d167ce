package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

// ApprovalDecision is one approver's answer (UpdateDecide), recorded in
// the run with who, when, why and through what.
type ApprovalDecision struct {
	// Approver is who answers: an e-mail address or employee ID among the
	// asked approvers.
	Approver string `json:"approver"`
	Approve  bool   `json:"approve"`
	Reason   string `json:"reason,omitempty"`
	// Via is link (the e-mail link), cli (starter approve|deny), ui (an
	// Update from the Web UI; the default) or timeout (the policy's
	// on_timeout, decided by jml).
	Via string `json:"via,omitempty"`
	// LinkID names the link used (approval.ID): a link answers once.
	LinkID string `json:"link_id,omitempty"`
	// Round is the approval round the link was sent for (0: the open one).
	Round int       `json:"round,omitempty"`
	Time  time.Time `json:"time,omitzero"`
}

// ExtendRequest asks for a grant to last longer (UpdateExtend): a new
// approval round, the grant unchanged until it is approved.
type ExtendRequest struct {
	For       string `json:"for"` // a duration, e.g. "4h": added to the current expiry
	Reason    string `json:"reason"`
	Requester string `json:"requester"`
}

// RevokeRequest ends a grant now, or withdraws a request still waiting
// for approval (UpdateRevoke).
type RevokeRequest struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
}

// Outcomes of an access request.
const (
	OutcomeGranted = "granted" // in force (the run goes on)
	OutcomeDenied  = "denied"
	OutcomeRefused = "refused" // the policy or the person's state forbids it
	OutcomeExpired = "expired" // granted, then revoked at expiry
	OutcomeRevoked = "revoked" // granted (or asked), then revoked early
	OutcomeFailed  = "failed"  // the grant could not be written
	// OutcomeApproved ends an approval step's run: the flow goes on.
	OutcomeApproved = "approved"
)

// RequestStatus is an access request as QueryRequest and the result show it.
type RequestStatus struct {
	ID string `json:"id"`
	activities.AccessRequest
	State   string `json:"state"` // JmlState: Waiting, Running, Granted, Completed
	Outcome string `json:"outcome,omitempty"`
	// Round is the approval round (1; each extension asks again); Asked
	// who is asked in it, Quorum how many approvals it needs.
	Round     int                   `json:"round,omitempty"`
	Asked     []activities.Approver `json:"asked,omitempty"`
	Quorum    int                   `json:"quorum,omitempty"`
	Approvals int                   `json:"approvals"`
	Deadline  time.Time             `json:"deadline,omitzero"` // of the open approval
	Extending bool                  `json:"extending,omitempty"`
	// Review: the grant's approvers are asked again because the person
	// moved (why); empty when no such round is open.
	Review    string             `json:"review,omitempty"`
	GrantedAt time.Time          `json:"granted_at,omitzero"`
	Until     time.Time          `json:"until,omitzero"`
	EndedAt   time.Time          `json:"ended_at,omitzero"`
	Note      string             `json:"note,omitempty"`
	Decisions []ApprovalDecision `json:"decisions,omitempty"`
	Mails     []string           `json:"mails,omitempty"`
}

type request struct {
	st   RequestStatus
	plan activities.RequestPlan
	// asking: an approval round is open; answered who answered in it.
	asking   bool
	answered map[string]bool
	denied   bool
	// used are the link IDs that answered (a link answers once).
	used  map[string]bool
	grant activities.GrantResult
	// revoke: an operator's Revoke or the person's leaver.
	revoke *RevokeRequest
	// extended is an approved extension not yet applied.
	extended time.Duration
	// moved: the person moved and the policy asks again (why), not yet
	// acted on (SignalReapproveGrants).
	moved string
	// event is the run's JmlEvent (request, approval); what says what an
	// approval step asks (empty: the request's grant); quiet: no outcome
	// mails (an approval step's run reports itself).
	event, what string
	quiet       bool
	// audited: records scheduled (RecordAudit), waited for before the run
	// closes.
	audited []workflow.Future
}

// AccessRequest is one request for time-bound access ("request/<id>"):
// approval → grant (read back) → a durable timer until expiry → revoke
// (read back) → notify. The approval waits on UpdateDecide with timers for
// the reminder, the escalation and the timeout; Extend asks again, Revoke
// ends the grant now; the person's leaver signals SignalRevokeGrants.
func AccessRequest(ctx workflow.Context, in activities.AccessRequest) (RequestStatus, error) {
	id, _ := contract.RequestIDOf(workflow.GetInfo(ctx).WorkflowExecution.ID)
	r := &request{st: RequestStatus{ID: id, AccessRequest: in, State: contract.StateRunning},
		answered: map[string]bool{}, used: map[string]bool{}, event: contract.EventRequest}
	if err := r.handlers(ctx); err != nil {
		return r.st, err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		var reason string
		workflow.GetSignalChannel(ctx, contract.SignalRevokeGrants).Receive(ctx, &reason)
		if r.revoke == nil {
			r.revoke = &RevokeRequest{Operator: "jml", Reason: reason}
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, contract.SignalReapproveGrants)
		for {
			var why string
			ch.Receive(ctx, &why)
			// "reapprove-on-move": a request run by a worker from before it
			// (2026-12-07) ignored the signal, and its replay must not wake
			// (guard-reapprove-on-move-old.json). It can go once no request
			// granted before it is open (they last max_duration at most).
			if workflow.GetVersion(ctx, "reapprove-on-move", workflow.DefaultVersion, 1) == 1 {
				r.moved = why
			}
		}
	})
	r.setState(ctx, contract.StateRunning)

	var a *activities.Activities
	ok, refused, err := r.planAndApprove(ctx, "check request, resolve approvers", a.PlanRequest, in)
	if refused {
		return r.finish(ctx, OutcomeRefused), nil
	}
	if err != nil {
		return r.st, err
	}
	if !ok {
		if r.revoke != nil {
			r.st.Note = "withdrawn before approval by " + r.revoke.Operator + ": " + r.revoke.Reason
			return r.finish(ctx, OutcomeRevoked), nil
		}
		return r.finish(ctx, OutcomeDenied), nil
	}

	r.setState(ctx, contract.StateRunning)
	gctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: "grant",
		Summary: "grant " + in.Group + " in " + in.Target, StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry})
	if err := workflow.ExecuteActivity(gctx, a.GrantAccess, in).Get(ctx, &r.grant); err != nil {
		r.st.Note = "grant failed: " + errorText(err)
		return r.finish(ctx, OutcomeFailed), nil
	}
	now := workflow.Now(ctx)
	r.st.GrantedAt, r.st.Until, r.st.Outcome, r.st.Note = now, now.Add(in.For), OutcomeGranted, r.grant.Note
	r.publishGrant(ctx)
	if !r.grant.Already { // a membership held before the grant is not the grant's
		r.record(ctx, audit.Record{Action: audit.GroupAdded, AccountID: r.grant.AccountID, Verified: true,
			Reason: in.Reason, Detail: "granted until " + r.st.Until.UTC().Format(time.RFC3339) + " at the request of " + in.Requester})
	}
	r.setState(ctx, contract.StateGranted)
	r.mail(ctx, activities.MailOutcome, r.recipients(), "granted until "+r.st.Until.UTC().Format(time.RFC3339), false)

	outcome := OutcomeExpired
	for {
		wait := r.st.Until.Sub(workflow.Now(ctx))
		done := true
		if wait > 0 {
			var err error
			done, err = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait,
				TimerOptions: workflow.TimerOptions{Summary: "grant expires"}},
				func() bool { return r.revoke != nil || r.extended > 0 || r.moved != "" })
			if err != nil {
				return r.st, err
			}
			done = !done // AwaitWithOptions: true when the condition held
		}
		if r.revoke != nil {
			outcome = OutcomeRevoked
			r.st.Note = "revoked early by " + r.revoke.Operator + ": " + r.revoke.Reason
			break
		}
		if r.moved != "" {
			why := r.moved
			r.moved = ""
			r.reapprove(ctx, why)
			continue
		}
		if r.extended > 0 {
			r.st.Until = r.st.Until.Add(r.extended)
			r.extended = 0
			r.publishGrant(ctx)
			r.showDetails(ctx)
			continue
		}
		if done {
			break
		}
	}
	r.setState(ctx, contract.StateRunning)
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: "revoke",
		Summary: "revoke " + in.Group + " in " + in.Target, StartToCloseTimeout: time.Minute,
		// A grant must end: retry until the target takes it (an operator
		// sees the attempts and the last error in starter status).
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute}})
	var note string
	if err := workflow.ExecuteActivity(rctx, a.RevokeAccess, activities.RevokeInput{Request: in, Grant: r.grant,
		Workflow: workflow.GetInfo(ctx).WorkflowExecution.ID}).Get(ctx, &note); err != nil {
		return r.st, err
	}
	if r.st.Note != "" && outcome == OutcomeRevoked {
		note = r.st.Note + "; " + note
	}
	revoked := audit.Record{Action: audit.GroupRemoved, AccountID: r.grant.AccountID, Verified: true, Detail: outcome + ": " + note}
	if r.revoke != nil {
		revoked.Actor, revoked.Reason = r.revoke.Operator, r.revoke.Reason
	}
	if !r.grant.Already {
		r.record(ctx, revoked)
	}
	r.st.Note = note
	return r.finish(ctx, outcome), nil
}

// planAndApprove plans the run (plan: PlanRequest or PlanApproval, a
// local activity) and asks the first approval round; refused: the plan
// refused it and the note says why.
func (r *request) planAndApprove(ctx workflow.Context, summary string, plan, in any) (ok, refused bool, err error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry, Summary: summary})
	if err := workflow.ExecuteLocalActivity(lctx, plan, in).Get(ctx, &r.plan); err != nil {
		r.st.Note = "plan: " + errorText(err)
		return false, true, nil
	}
	if r.plan.Refused != "" {
		r.st.Note = r.plan.Refused
		return false, true, nil
	}
	r.st.Quorum = r.plan.Quorum
	ok, err = r.approve(ctx, 1, false)
	return ok, false, err
}

// approve runs one approval round: asks, reminds, escalates and times
// out; true when the quorum approved.
func (r *request) approve(ctx workflow.Context, round int, extension bool) (bool, error) {
	t := r.plan.Times
	start := workflow.Now(ctx)
	r.st.Round, r.st.Asked, r.st.Approvals, r.st.Deadline = round, r.plan.Approvers, 0, start.Add(t.Timeout)
	r.answered, r.denied, r.asking = map[string]bool{}, false, true
	defer func() { r.asking = false }()
	switch {
	case !extension:
		r.setState(ctx, contract.StateWaiting)
	case r.st.Review != "": // a move's round: the grant stays in force meanwhile
		r.showDetails(ctx)
	default:
		r.st.Extending = true
		r.showDetails(ctx)
		defer func() { r.st.Extending = false }()
	}
	r.mail(ctx, activities.MailAsk, r.st.Asked, "", extension)
	remindAt, escalateAt := start.Add(t.RemindAfter), start.Add(t.EscalateAfter)
	remind, escalate := t.RemindAfter > 0, t.EscalateAfter > 0 && len(r.plan.Approval.EscalateTo) > 0
	for {
		next, what := r.st.Deadline, "approval times out"
		if remind && remindAt.Before(next) {
			next, what = remindAt, "remind approvers"
		}
		if escalate && escalateAt.Before(next) {
			next, what = escalateAt, "escalate approval"
		}
		if wait := next.Sub(workflow.Now(ctx)); wait > 0 {
			if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait,
				TimerOptions: workflow.TimerOptions{Summary: what}},
				func() bool { return r.decided() || r.revoke != nil }); err != nil {
				return false, err
			}
		}
		switch {
		case r.denied:
			return false, nil
		case r.st.Approvals >= r.plan.Quorum:
			return true, nil
		case r.revoke != nil:
			return false, nil
		}
		now := workflow.Now(ctx)
		if remind && !now.Before(remindAt) {
			remind = false
			var waiting []activities.Approver
			for _, ap := range r.st.Asked {
				if !r.answered[strings.ToLower(ap.String())] {
					waiting = append(waiting, ap)
				}
			}
			r.mail(ctx, activities.MailReminder, waiting, "", extension)
		}
		if escalate && !now.Before(escalateAt) {
			escalate = false
			r.escalate(ctx, extension)
		}
		if !now.Before(r.st.Deadline) {
			ok := r.plan.Approval.OnTimeout == policy.OnTimeoutGrant
			d := ApprovalDecision{Approver: "jml", Approve: ok, Via: "timeout", Round: round, Time: now,
				Reason: fmt.Sprintf("no answer within %s: on_timeout %s", t.Timeout, orDefault(r.plan.Approval.OnTimeout, policy.OnTimeoutDeny))}
			r.st.Decisions = append(r.st.Decisions, d)
			r.recordDecision(ctx, d)
			return ok, nil
		}
	}
}

// reapprove asks the approvers again whether a grant in force may stay
// after the person moved (approvals.on_move: reapprove), as the policy
// and the person are now (a new manager is asked). The grant stays while
// they decide; denied, timed out to deny, or refused by the policy now,
// it is revoked. Another move while a round is open asks nothing more.
func (r *request) reapprove(ctx workflow.Context, why string) {
	if r.st.Review != "" {
		return
	}
	r.st.Review = why
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { r.st.Review = ""; r.showDetails(ctx) }()
		// An extension's round closes first: one round at a time.
		if err := workflow.Await(ctx, func() bool { return !r.asking || r.revoke != nil }); err != nil || r.revoke != nil {
			return
		}
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry, Summary: "check grant after a move, resolve approvers"})
		var a *activities.Activities
		var plan activities.RequestPlan
		err := workflow.ExecuteLocalActivity(lctx, a.PlanRequest, r.st.AccessRequest).Get(ctx, &plan)
		switch {
		case err != nil:
			plan.Refused = "plan: " + errorText(err)
		case plan.Refused == "":
			plan.MaxGrant = r.plan.MaxGrant // the grant's bound stays the one it was granted under
			r.plan, r.st.Quorum = plan, plan.Quorum
			ok, err := r.approve(ctx, r.st.Round+1, true)
			if err != nil || ok || r.revoke != nil {
				return
			}
			plan.Refused = "not approved again"
		}
		if r.revoke == nil {
			r.revoke = &RevokeRequest{Operator: "jml", Reason: "after a move (" + why + "): " + plan.Refused}
		}
	})
}

// escalate asks the escalation approvers (each approver's manager, the
// fallback list) besides those asked.
func (r *request) escalate(ctx workflow.Context, extension bool) {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: fmt.Sprintf("escalate.%d", r.st.Round),
		Summary: "resolve escalation approvers", StartToCloseTimeout: time.Minute, RetryPolicy: &stepRetry})
	var more []activities.Approver
	if err := workflow.ExecuteActivity(actx, a.ResolveEscalation, activities.EscalationInput{Asked: r.st.Asked,
		EscalateTo: r.plan.Approval.EscalateTo, Person: r.plan.Person, Requester: r.st.Requester}).Get(ctx, &more); err != nil {
		r.st.Mails = append(r.st.Mails, "escalation failed: "+errorText(err))
		return
	}
	r.st.Asked = append(slices.Clone(r.st.Asked), more...)
	r.showDetails(ctx)
	r.mail(ctx, activities.MailEscalation, more, "", extension)
}

func (r *request) decided() bool { return r.denied || r.st.Approvals >= r.plan.Quorum }

// mail sends one request mail (best effort: the approvers can answer with
// starter approve|deny too; the run records what was sent or failed).
func (r *request) mail(ctx workflow.Context, kind string, to []activities.Approver, outcome string, extension bool) {
	if len(to) == 0 {
		return
	}
	var a *activities.Activities
	n := len(r.st.Mails) + 1
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{ActivityID: fmt.Sprintf("mail.%d.%s", n, kind),
		Summary: "send " + kind + " mail", StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5}})
	m := activities.RequestMail{Workflow: workflow.GetInfo(ctx).WorkflowExecution.ID, Kind: kind, Round: r.st.Round, To: to,
		Request: r.st.AccessRequest, Person: r.plan.Person, Expires: r.st.Deadline, Outcome: outcome, Extension: extension, What: r.what}
	if extension {
		m.Move = r.st.Review
	}
	var note string
	if err := workflow.ExecuteActivity(actx, a.SendRequestMail, m).Get(ctx, &note); err != nil {
		note = kind + " mail failed: " + errorText(err)
	}
	r.st.Mails = append(r.st.Mails, note)
}

// recipients of outcome mails: the person and the requester (when an
// address).
func (r *request) recipients() []activities.Approver {
	out := []activities.Approver{r.plan.Person}
	if strings.Contains(r.st.Requester, "@") && !r.plan.Person.Is(r.st.Requester) {
		out = append(out, activities.Approver{Email: r.st.Requester})
	}
	return out
}

func (r *request) finish(ctx workflow.Context, outcome string) RequestStatus {
	r.st.Outcome, r.st.EndedAt = outcome, workflow.Now(ctx)
	if !r.quiet {
		r.mail(ctx, activities.MailOutcome, r.recipients(), outcome+orEmpty("; ", r.st.Note), false)
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for _, f := range r.audited {
		_ = f.Get(dctx, nil)
	}
	r.setState(ctx, contract.StateCompleted)
	return r.st
}

func orEmpty(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// publishGrant puts the grant in the memo, for reconciliation (a member
// by grant is no drift) and for other grants' revokes (an overlapping
// grant keeps the membership).
func (r *request) publishGrant(ctx workflow.Context) {
	_ = workflow.UpsertMemo(ctx, map[string]any{contract.GrantMemoKey: activities.Grant{
		EmployeeID: r.st.EmployeeID, Target: r.st.Target, Group: r.st.Group, Until: r.st.Until}})
}

func (r *request) setState(ctx workflow.Context, state string) {
	r.st.State = state
	_ = workflow.UpsertTypedSearchAttributes(ctx, saEmployeeID.ValueSet(r.st.EmployeeID),
		saEvent.ValueSet(r.event), saState.ValueSet(state))
	r.showDetails(ctx)
}

// showDetails sets the UI's current details: the state, who is asked and
// how to answer.
func (r *request) showDetails(ctx workflow.Context) {
	var b strings.Builder
	st := r.st
	fmt.Fprintf(&b, "**%s** — %s asks for group `%s` in `%s` for %s (requested by %s: %s)\n\n",
		st.State, st.EmployeeID, st.Group, st.Target, st.For, st.Requester, st.Reason)
	if r.asking {
		var asked []string
		for _, ap := range st.Asked {
			s := ap.String()
			if r.answered[strings.ToLower(s)] {
				s += " (answered)"
			}
			asked = append(asked, s)
		}
		what := "approval"
		switch {
		case st.Review != "":
			what = "approval again (" + st.Review + ")"
		case st.Extending:
			what = "approval of an extension"
		}
		fmt.Fprintf(&b, "Waiting for %s (round %d): %d of %d approvals; asked: %s; until %s\n\n", what, st.Round,
			st.Approvals, r.plan.Quorum, strings.Join(asked, ", "), st.Deadline.UTC().Format("2006-01-02 15:04:05 UTC"))
		fmt.Fprintf(&b, "**To answer**: `starter approve %s --reason …` or `starter deny %s --reason …` · Decide `{\"approver\": \"<e-mail>\", \"approve\": true, \"reason\": \"…\"}`\n\n", st.ID, st.ID)
	}
	if !st.Until.IsZero() {
		fmt.Fprintf(&b, "Granted %s, until %s. Revoke now: `starter revoke %s --reason …` · Extend: `starter extend %s --for 4h --reason …`\n\n",
			st.GrantedAt.UTC().Format(time.RFC3339), st.Until.UTC().Format(time.RFC3339), st.ID, st.ID)
	}
	for _, d := range st.Decisions {
		verb := "denied"
		if d.Approve {
			verb = "approved"
		}
		fmt.Fprintf(&b, "- %s %s by %s via %s: %s\n", d.Time.UTC().Format(time.RFC3339), verb, d.Approver, d.Via, d.Reason)
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

func (r *request) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, contract.QueryRequest, func() (RequestStatus, error) { return r.st, nil },
		workflow.QueryHandlerOptions{Description: "the request: state, who is asked, decisions, expiry"}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateDecide,
		func(ctx workflow.Context, d ApprovalDecision) (string, error) {
			d.Time, d.Round = workflow.Now(ctx), r.st.Round
			if d.Via == "" {
				d.Via = "ui"
			}
			r.st.Decisions = append(r.st.Decisions, d)
			if d.LinkID != "" {
				r.used[d.LinkID] = true
			}
			r.answered[strings.ToLower(r.askedAs(d.Approver).String())] = true
			if d.Approve {
				r.st.Approvals++
			} else {
				r.denied = true
			}
			r.recordDecision(ctx, d)
			r.showDetails(ctx)
			switch {
			case r.denied:
				return "denied: nothing is granted", nil
			case r.st.Approvals >= r.plan.Quorum:
				return fmt.Sprintf("approved (%d of %d): granting", r.st.Approvals, r.plan.Quorum), nil
			}
			return fmt.Sprintf("approved (%d of %d): waiting for more approvals", r.st.Approvals, r.plan.Quorum), nil
		},
		workflow.UpdateHandlerOptions{Description: "an approver's answer: {\"approver\": \"<e-mail or employee ID>\", \"approve\": true|false, \"reason\": \"…\"}",
			Validator: func(ctx workflow.Context, d ApprovalDecision) error { return r.validateDecision(d) }}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateExtend,
		func(ctx workflow.Context, q ExtendRequest) (string, error) {
			d, _ := policy.ParseDuration(q.For)
			r.st.Decisions = append(r.st.Decisions, ApprovalDecision{Approver: q.Requester, Via: "extend",
				Reason: fmt.Sprintf("asks to extend by %s: %s", q.For, q.Reason), Time: workflow.Now(ctx)})
			r.st.Extending = true
			workflow.Go(ctx, func(ctx workflow.Context) {
				ok, err := r.approve(ctx, r.st.Round+1, true)
				if err == nil && ok && r.revoke == nil {
					r.extended = d
				}
			})
			return "extension asked of " + approverList(r.plan.Approvers), nil
		},
		workflow.UpdateHandlerOptions{Description: "ask to extend the grant: {\"for\": \"4h\", \"reason\": \"…\", \"requester\": \"…\"} (a new approval)",
			Validator: func(ctx workflow.Context, q ExtendRequest) error {
				d, err := policy.ParseDuration(q.For)
				switch {
				case r.st.State != contract.StateGranted:
					return fmt.Errorf("nothing to extend: the request is %s", r.st.State)
				case r.st.Extending || r.asking:
					return errors.New("an approval round (an extension, or a review after a move) is open: wait for it")
				case err != nil || d <= 0:
					return fmt.Errorf("for %q: want a positive duration such as 4h", q.For)
				case r.st.Until.Add(d).Sub(r.st.GrantedAt) > r.plan.MaxGrant && r.plan.MaxGrant > 0:
					return fmt.Errorf("for: the grant would last longer than the policy's max_duration (%s)", r.plan.MaxGrant)
				case strings.TrimSpace(q.Reason) == "":
					return errors.New("reason: required")
				}
				return nil
			}}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateRevoke,
		func(ctx workflow.Context, q RevokeRequest) (string, error) {
			if r.revoke == nil {
				r.revoke = &q
			}
			if r.st.Until.IsZero() {
				return "withdrawn: nothing was granted", nil
			}
			return "revoking now", nil
		},
		workflow.UpdateHandlerOptions{Description: "revoke the grant now (or withdraw a request waiting for approval): {\"operator\": \"…\", \"reason\": \"…\"}",
			Validator: func(ctx workflow.Context, q RevokeRequest) error {
				switch {
				case r.st.State == contract.StateCompleted:
					return fmt.Errorf("the request has ended (%s)", r.st.Outcome)
				case r.revoke != nil:
					return errors.New("already being revoked")
				case strings.TrimSpace(q.Reason) == "":
					return errors.New("reason: required")
				}
				return nil
			}})
}

// askedAs is the asked approver who names, zero when none.
func (r *request) askedAs(who string) activities.Approver {
	for _, ap := range r.st.Asked {
		if ap.Is(who) {
			return ap
		}
	}
	return activities.Approver{}
}

// validateDecision refuses an answer nobody may give now; the run's
// history records only the answers taken.
func (r *request) validateDecision(d ApprovalDecision) error {
	switch {
	case !r.asking:
		return fmt.Errorf("no approval is open: the request is %s%s", r.st.State, orEmpty(" ", r.st.Outcome))
	case d.Round != 0 && d.Round != r.st.Round:
		return fmt.Errorf("this link is for approval round %d; round %d is open now", d.Round, r.st.Round)
	case d.LinkID != "" && r.used[d.LinkID]:
		return errors.New("this link was already used")
	case r.plan.Person.Is(d.Approver) || strings.EqualFold(strings.TrimSpace(d.Approver), strings.TrimSpace(r.st.Requester)):
		return errors.New("nobody approves their own request")
	case d.Via != "timeout" && strings.TrimSpace(d.Reason) == "" && d.Via != "link":
		return errors.New("reason: required")
	}
	ap := r.askedAs(d.Approver)
	if ap == (activities.Approver{}) {
		return fmt.Errorf("%s is not asked to approve this request (asked: %s)", d.Approver, approverList(r.st.Asked))
	}
	if r.answered[strings.ToLower(ap.String())] {
		return fmt.Errorf("%s has already answered", ap)
	}
	return nil
}

func approverList(aps []activities.Approver) string {
	var s []string
	for _, ap := range aps {
		s = append(s, ap.String())
	}
	return strings.Join(s, ", ")
}

// recordDecision records an approval decision (who, when, why, through
// which channel) in the audit trail.
func (r *request) recordDecision(ctx workflow.Context, d ApprovalDecision) {
	workflow.GetLogger(ctx).Info("approval decision", "request", r.st.ID, "approve", d.Approve, "via", d.Via, "round", d.Round)
	action := audit.ApprovalDenied
	if d.Approve {
		action = audit.ApprovalApproved
	}
	actor := d.Approver
	if d.Via == "timeout" {
		actor = audit.ActorJML
	}
	r.record(ctx, audit.Record{Action: action, Actor: actor, Reason: d.Reason, Verified: true,
		Detail: fmt.Sprintf("round %d via %s", d.Round, orDefault(d.Via, "ui"))})
}

// record schedules recs for the audit trail when the planning worker has
// a store (RequestPlan.Audit), keyed <workflow>/<run>/<n>/0 so a retry
// lands once. Request runs are new with the audit trail: no history needs
// a version guard.
func (r *request) record(ctx workflow.Context, recs ...audit.Record) {
	if !r.plan.Audit {
		return
	}
	info := workflow.GetInfo(ctx)
	n := len(r.audited) + 1
	for i := range recs {
		rec := &recs[i]
		rec.Key = fmt.Sprintf("%s/%s/%d/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, n, i)
		rec.Time, rec.EmployeeID, rec.Kind = workflow.Now(ctx), r.st.EmployeeID, r.event
		rec.WorkflowID, rec.RunID, rec.EffectiveAt = info.WorkflowExecution.ID, info.WorkflowExecution.RunID, info.WorkflowStartTime
		if rec.Target == "" {
			rec.Target, rec.Group = r.st.Target, r.st.Group
		}
		if rec.Actor == "" {
			rec.Actor = audit.ActorJML
		}
	}
	r.audited = append(r.audited, scheduleAudit(ctx, fmt.Sprintf("audit.%d", n), recs))
}

// Approval is an approval step of a lifecycle run, as a child workflow
// ("approval/<run>/<step>"): the same approval as an access request's
// (ask, remind, escalate, time out; Decide from the link, the CLI or the
// UI), whose result the run waits for.
func Approval(ctx workflow.Context, in activities.ApprovalInput) (RequestStatus, error) {
	r := &request{st: RequestStatus{ID: workflow.GetInfo(ctx).WorkflowExecution.ID, State: contract.StateRunning,
		AccessRequest: activities.AccessRequest{EmployeeID: in.EmployeeID, Reason: in.What, Requester: "jml (" + in.Run + ")"}},
		answered: map[string]bool{}, used: map[string]bool{}, event: contract.EventApproval, what: in.What, quiet: true}
	if err := r.handlers(ctx); err != nil {
		return r.st, err
	}
	r.setState(ctx, contract.StateRunning)
	var a *activities.Activities
	ok, refused, err := r.planAndApprove(ctx, "resolve approvers", a.PlanApproval, in)
	if refused {
		return r.finish(ctx, OutcomeRefused), nil
	}
	if err != nil {
		return r.st, err
	}
	if ok {
		return r.finish(ctx, OutcomeApproved), nil
	}
	if r.revoke != nil {
		r.st.Note = "withdrawn by " + r.revoke.Operator + ": " + r.revoke.Reason
	}
	return r.finish(ctx, OutcomeDenied), nil
}
