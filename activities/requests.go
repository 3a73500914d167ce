package activities

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

// Access requests (docs/approvals.md): the activities of the AccessRequest
// workflow. The grant and the revoke are the group membership writes of
// manage_relationships (the same connector calls, verified by read-back).

// AccessRequest is what someone asks for: a group at a target for a while.
type AccessRequest struct {
	EmployeeID string        `json:"employee_id"`
	Target     string        `json:"target"`
	Group      string        `json:"group"`
	For        time.Duration `json:"for"`
	Reason     string        `json:"reason"`
	// Requester is who asked (an e-mail address, an employee ID or an
	// operator name): never an approver of this request.
	Requester string `json:"requester"`
}

// RequestError is a request refused before anything starts: Field names
// what is wrong (employee_id, grant, for, reason, requester).
type RequestError struct {
	Field, Msg string
	// Unknown: the person is not known (404 rather than 422).
	Unknown bool
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Msg }

// CheckRequest refuses what no approval could make right: an unknown or
// terminated person, a grant the policy does not offer, a duration out of
// bounds. The intake and the CLI call it before starting a request, and
// the workflow's plan again (the person may have left since).
func CheckRequest(ctx context.Context, p *policy.Policy, dir Directory, r AccessRequest) (IdentityRecord, error) {
	switch {
	case strings.TrimSpace(r.EmployeeID) == "":
		return IdentityRecord{}, &RequestError{Field: "employee_id", Msg: "required"}
	case r.Group == "" || r.Target == "":
		return IdentityRecord{}, &RequestError{Field: "grant", Msg: "required: group:NAME@TARGET"}
	case !p.Approvals.MayRequest(r.Group, r.Target):
		return IdentityRecord{}, &RequestError{Field: "grant", Msg: fmt.Sprintf("group %q at %q is not requestable (policy approvals.requestable)", r.Group, r.Target)}
	case r.For <= 0:
		return IdentityRecord{}, &RequestError{Field: "for", Msg: "required: a positive duration such as 8h"}
	case r.For > p.Approvals.MaxGrant():
		return IdentityRecord{}, &RequestError{Field: "for", Msg: fmt.Sprintf("longer than the policy's max_duration (%s)", p.Approvals.MaxGrant())}
	case strings.TrimSpace(r.Reason) == "":
		return IdentityRecord{}, &RequestError{Field: "reason", Msg: "required"}
	case strings.TrimSpace(r.Requester) == "":
		return IdentityRecord{}, &RequestError{Field: "requester", Msg: "required"}
	case dir == nil:
		return IdentityRecord{}, errors.New("no identity directory configured")
	}
	rec, err := dir.Identity(ctx, r.EmployeeID)
	if errors.Is(err, connectors.ErrNotFound) {
		return rec, &RequestError{Field: "employee_id", Msg: fmt.Sprintf("no identity %q is known to jml", r.EmployeeID), Unknown: true}
	}
	if err != nil {
		return rec, err
	}
	if !active(rec) {
		return rec, &RequestError{Field: "employee_id", Msg: fmt.Sprintf("%s is terminated (deprovisioned): no access can be granted", r.EmployeeID)}
	}
	return rec, nil
}

// Approver is one person asked to approve.
type Approver struct {
	EmployeeID string `json:"employee_id,omitempty"`
	Email      string `json:"email,omitempty"`
	Name       string `json:"name,omitempty"`
}

// Is reports whether who (an e-mail address or employee ID) names a.
func (a Approver) Is(who string) bool {
	who = strings.TrimSpace(who)
	return who != "" && (strings.EqualFold(who, a.Email) || strings.EqualFold(who, a.EmployeeID))
}

// String is how the approver is shown (the e-mail, else the ID).
func (a Approver) String() string {
	if a.Email != "" {
		return a.Email
	}
	return a.EmployeeID
}

// RequestPlan is a request as the policy answers it when the run starts,
// recorded in history: a policy edit never changes a running request.
type RequestPlan struct {
	Approval  policy.Approval      `json:"approval"`
	Times     policy.ApprovalTimes `json:"times"`
	Quorum    int                  `json:"quorum"`
	Approvers []Approver           `json:"approvers"`
	// MaxGrant bounds the grant with its extensions.
	MaxGrant time.Duration `json:"max_grant"`
	// Person is the subject (never an approver of their own request).
	Person Approver `json:"person"`
	// Excluded lists who was left out of the approvers and why.
	Excluded []string `json:"excluded,omitempty"`
	// Refused: the request cannot go on (RequestError text); nothing is granted.
	Refused string `json:"refused,omitempty"`
	// Audit: the planning worker has an audit store; the run records its
	// decisions, grant and revoke (RecordAudit).
	Audit bool `json:"audit,omitempty"`
}

// PlanRequest checks the request again and resolves its approvers.
func (a *Activities) PlanRequest(ctx context.Context, r AccessRequest) (RequestPlan, error) {
	rec, err := CheckRequest(ctx, a.cfg.Policy, a.cfg.Directory, r)
	var re *RequestError
	if errors.As(err, &re) {
		return RequestPlan{Refused: re.Error()}, nil
	}
	if err != nil {
		return RequestPlan{}, toTemporal(err)
	}
	ap := a.cfg.Policy.Approvals.Approval
	times, err := ap.Times()
	if err != nil {
		return RequestPlan{}, permanent("PolicyInvalid", fmt.Errorf("approvals.approval: %w", err))
	}
	plan := RequestPlan{Approval: ap, Times: times, Quorum: max(ap.Quorum, 1), Person: approverOf(rec),
		MaxGrant: a.cfg.Policy.Approvals.MaxGrant(), Audit: a.cfg.Audit != nil}
	srcs := ap.Approvers
	if len(srcs) == 0 {
		srcs = []string{policy.ApproverManager}
	}
	asked, err := a.resolveApprovers(ctx, rec, srcs)
	if err != nil {
		return RequestPlan{}, err
	}
	plan.Approvers, plan.Excluded = excludeSelf(asked, plan.Person, r.Requester)
	if len(plan.Approvers) < plan.Quorum {
		plan.Refused = fmt.Sprintf("approvers: %d found (%s), quorum is %d", len(plan.Approvers),
			strings.Join(append([]string{"from " + strings.Join(srcs, ", ")}, plan.Excluded...), "; "), plan.Quorum)
	}
	return plan, nil
}

// excludeSelf drops the person and the requester from the approvers:
// nobody approves their own request.
func excludeSelf(asked []Approver, person Approver, requester string) ([]Approver, []string) {
	var out []Approver
	var excluded []string
	for _, ap := range asked {
		switch {
		case ap.Is(person.Email) || ap.Is(person.EmployeeID):
			excluded = append(excluded, ap.String()+" (the person themself)")
		case ap.Is(requester):
			excluded = append(excluded, ap.String()+" (the requester)")
		case slices.ContainsFunc(out, func(o Approver) bool { return o.Is(ap.Email) || o.Is(ap.EmployeeID) }):
		default:
			out = append(out, ap)
		}
	}
	return out, excluded
}

func approverOf(rec IdentityRecord) Approver {
	name := strings.TrimSpace(rec.Attributes["first_name"] + " " + rec.Attributes["last_name"])
	return Approver{EmployeeID: rec.EmployeeID, Email: rec.Attributes["email"], Name: name}
}

// EscalationInput names who an approval escalates to.
type EscalationInput struct {
	Asked      []Approver `json:"asked"`
	EscalateTo []string   `json:"escalate_to"`
	Person     Approver   `json:"person"`
	Requester  string     `json:"requester"`
}

// ResolveEscalation returns the people an approval escalates to who were
// not asked yet: the manager of each approver ("manager"), and the
// fallback list.
func (a *Activities) ResolveEscalation(ctx context.Context, in EscalationInput) ([]Approver, error) {
	var out []Approver
	for _, src := range in.EscalateTo {
		if src != policy.ApproverManager {
			ap, err := a.person(ctx, src)
			if err != nil {
				return nil, err
			}
			out = append(out, ap)
			continue
		}
		for _, asked := range in.Asked {
			if asked.EmployeeID == "" {
				continue // an address only: no manager known
			}
			rec, err := a.cfg.Directory.Identity(ctx, asked.EmployeeID)
			if err != nil {
				continue // gone: the fallback list covers it
			}
			if m := rec.Attributes["manager_id"]; m != "" {
				if ap, err := a.person(ctx, m); err == nil {
					out = append(out, ap)
				}
			}
		}
	}
	out = slices.DeleteFunc(out, func(ap Approver) bool {
		return slices.ContainsFunc(in.Asked, func(o Approver) bool { return o.Is(ap.Email) || o.Is(ap.EmployeeID) })
	})
	out, _ = excludeSelf(out, in.Person, in.Requester)
	return out, nil
}

// resolveApprovers turns the policy's approver sources into people.
func (a *Activities) resolveApprovers(ctx context.Context, rec IdentityRecord, srcs []string) ([]Approver, error) {
	var out []Approver
	for _, src := range srcs {
		switch {
		case src == policy.ApproverManager:
			m := rec.Attributes["manager_id"]
			if m == "" {
				continue // no manager: the other sources or the quorum check say so
			}
			ap, err := a.person(ctx, m)
			if err != nil {
				var re *RequestError
				if errors.As(err, &re) {
					continue
				}
				return nil, err
			}
			out = append(out, ap)
		case strings.HasPrefix(src, policy.GrantGroup):
			members, err := a.groupMembers(ctx, src)
			if err != nil {
				return nil, err
			}
			out = append(out, members...)
		default:
			ap, err := a.person(ctx, src)
			if err != nil {
				return nil, err
			}
			out = append(out, ap)
		}
	}
	return out, nil
}

// person resolves an e-mail address or an employee ID (through the
// directory: the person's e-mail).
func (a *Activities) person(ctx context.Context, who string) (Approver, error) {
	if addr, err := mail.ParseAddress(who); err == nil && strings.Contains(who, "@") {
		return Approver{Email: addr.Address, Name: addr.Name}, nil
	}
	rec, err := a.cfg.Directory.Identity(ctx, who)
	if errors.Is(err, connectors.ErrNotFound) {
		return Approver{}, &RequestError{Field: "approvers", Msg: fmt.Sprintf("no identity %q", who)}
	}
	if err != nil {
		return Approver{}, toTemporal(fmt.Errorf("approver %s: %w", who, err))
	}
	if !active(rec) {
		return Approver{}, &RequestError{Field: "approvers", Msg: fmt.Sprintf("%s is terminated", who)}
	}
	return approverOf(rec), nil
}

// groupMembers are the active people whose linked account is a member of
// group:NAME@TARGET.
func (a *Activities) groupMembers(ctx context.Context, src string) ([]Approver, error) {
	name, target, err := policy.ParseGrant(src)
	if err != nil {
		return nil, permanent("PolicyInvalid", err)
	}
	c, err := a.connector(target)
	if err != nil {
		return nil, err
	}
	gl, ok := c.(connectors.GroupLister)
	if !ok {
		return nil, unsupported(target, "list group members")
	}
	ids, err := a.groupIDs(ctx, c, target, []string{name}, false, false, nil)
	if err != nil {
		return nil, err
	}
	members := map[string]bool{}
	for cursor := ""; ; {
		page, next, err := gl.ListMembers(ctx, ids[0], cursor, 0)
		if err != nil {
			return nil, toTemporal(fmt.Errorf("%s: list members of %s: %w", target, name, err))
		}
		for _, id := range page {
			members[id] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	var out []Approver
	for ids, err := range identityPages(ctx, a.cfg.Directory) {
		if err != nil {
			return nil, toTemporal(err)
		}
		for _, rec := range ids {
			if active(rec) && members[rec.Accounts[target]] {
				out = append(out, approverOf(rec))
			}
		}
	}
	return out, nil
}

// GrantResult is a grant in place, as read back.
type GrantResult struct {
	AccountID string `json:"account_id"`
	GroupID   string `json:"group_id"`
	// Already: the account was a member before the grant (a birthright or
	// another grant); the revoke then leaves the membership alone.
	Already bool   `json:"already,omitempty"`
	Note    string `json:"note"`
}

// GrantAccess adds the person's account to the group and reads it back.
func (a *Activities) GrantAccess(ctx context.Context, r AccessRequest) (GrantResult, error) {
	rec, err := CheckRequest(ctx, a.cfg.Policy, a.cfg.Directory, r)
	var re *RequestError
	if errors.As(err, &re) {
		return GrantResult{}, permanent("RequestRefused", re)
	}
	if err != nil {
		return GrantResult{}, toTemporal(err)
	}
	c, rm, acct, gid, err := a.membership(ctx, r, rec)
	if err != nil {
		return GrantResult{}, err
	}
	gs, err := rm.Memberships(ctx, acct)
	if err != nil {
		return GrantResult{}, toTemporal(fmt.Errorf("%s: memberships: %w", r.Target, err))
	}
	_ = c
	res := GrantResult{AccountID: acct, GroupID: gid}
	if slices.ContainsFunc(gs, func(g connectors.Group) bool { return g.ID == gid }) && activity.GetInfo(ctx).Attempt == 1 {
		// (A retry that finds the membership may be finding its own
		// earlier write: only the first attempt can tell.) A membership
		// another grant holds is no "before": the last grant to end
		// revokes it.
		held, err := a.grantedElsewhere(ctx, r, activity.GetInfo(ctx).WorkflowExecution.ID)
		if err != nil {
			return GrantResult{}, err
		}
		if !held {
			res.Already, res.Note = true, "already a member: kept at expiry"
			return res, nil
		}
	}
	if err := rm.AddMember(ctx, gid, acct); err != nil {
		return GrantResult{}, toTemporal(fmt.Errorf("%s: add member: %w", r.Target, err))
	}
	if err := verifyMemberships(ctx, rm, r.Target, acct, []string{gid}, nil); err != nil {
		return GrantResult{}, err
	}
	res.Note = "added to " + r.Group + " (read back)"
	return res, nil
}

// CheckGrant looks the request's group up at its target, as the grant
// will (groupIDs): a group that does not exist fails GroupNotFound before
// anyone is asked to approve it.
func (a *Activities) CheckGrant(ctx context.Context, r AccessRequest) error {
	c, err := a.connector(r.Target)
	if err != nil {
		return err
	}
	_, err = a.groupIDs(ctx, c, r.Target, []string{r.Group}, false, false, nil)
	return err
}

// RevokeInput is a grant to end.
type RevokeInput struct {
	Request AccessRequest `json:"request"`
	Grant   GrantResult   `json:"grant"`
	// Workflow is the request's own workflow (its grant does not count as
	// another one).
	Workflow string `json:"workflow"`
}

// RevokeAccess removes the membership the grant added and reads it back,
// unless the person holds it otherwise: a member before the grant, a
// group their birthright rules give them, or another grant in force.
func (a *Activities) RevokeAccess(ctx context.Context, in RevokeInput) (string, error) {
	r := in.Request
	if in.Grant.Already {
		return "kept: a member before the grant", nil
	}
	rec, err := a.cfg.Directory.Identity(ctx, r.EmployeeID)
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		rec = IdentityRecord{EmployeeID: r.EmployeeID}
	case err != nil:
		return "", toTemporal(err)
	}
	if active(rec) {
		due, bad, err := a.birthright(r.Target, rec.Attributes)
		if err != nil {
			return "", err
		}
		if bad {
			return "", permanent("PolicyInvalid", fmt.Errorf("%s: the person's group rules cannot be evaluated: not revoked (a birthright may be at stake); fix the policy or the attributes and retry", r.Target))
		}
		if slices.ContainsFunc(due, func(g string) bool { return strings.EqualFold(g, r.Group) }) {
			return "kept: a birthright group of the person", nil
		}
	}
	held, err := a.grantedElsewhere(ctx, r, in.Workflow)
	if err != nil {
		return "", err
	}
	if held {
		return "kept: another grant of the same group is in force", nil
	}
	c, err := a.connector(r.Target)
	if err != nil {
		return "", err
	}
	rm, ok := c.(connectors.RelationshipManager)
	if !ok {
		return "", unsupported(r.Target, "manage relationships")
	}
	if err := rm.RemoveMember(ctx, in.Grant.GroupID, in.Grant.AccountID); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return "revoked: the account or group is gone", nil
		}
		return "", toTemporal(fmt.Errorf("%s: remove member: %w", r.Target, err))
	}
	if err := verifyMemberships(ctx, rm, r.Target, in.Grant.AccountID, nil, []string{in.Grant.GroupID}); err != nil {
		// A target that answered the removal and kept the member: a grant
		// must end, so the revoke is retried (the remove is idempotent)
		// until the target reads back without it.
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == ErrTypePostcondition {
			return "", temporal.NewApplicationError(app.Message(), ErrTypePostcondition)
		}
		return "", err
	}
	return "removed from " + r.Group + " (read back)", nil
}

// grantedElsewhere reports whether another request than workflow holds a
// grant of the same group for the person.
func (a *Activities) grantedElsewhere(ctx context.Context, r AccessRequest, workflow string) (bool, error) {
	gd, ok := a.cfg.Directory.(GrantDirectory)
	if !ok {
		return false, nil
	}
	grants, err := gd.ActiveGrants(ctx)
	if err != nil {
		return false, toTemporal(err)
	}
	return slices.ContainsFunc(grants, func(g Grant) bool {
		return g.Workflow != workflow && strings.EqualFold(g.EmployeeID, r.EmployeeID) &&
			g.Target == r.Target && strings.EqualFold(g.Group, r.Group)
	}), nil
}

// membership finds the connector, the person's account and the group.
func (a *Activities) membership(ctx context.Context, r AccessRequest, rec IdentityRecord) (any, connectors.RelationshipManager, string, string, error) {
	c, err := a.connector(r.Target)
	if err != nil {
		return nil, nil, "", "", err
	}
	rm, ok := c.(connectors.RelationshipManager)
	if !ok {
		return nil, nil, "", "", unsupported(r.Target, "manage relationships")
	}
	acct, err := a.accountID(ctx, c, r.Target, StepInput{Attributes: rec.Attributes, Accounts: rec.Accounts, Identifiers: rec.Identifiers})
	if err != nil {
		return nil, nil, "", "", err
	}
	if acct == "" {
		return nil, nil, "", "", permanent(ErrTypeNotFound, fmt.Errorf("%s: %s has no account to grant to", r.Target, r.EmployeeID))
	}
	ids, err := a.groupIDs(ctx, c, r.Target, []string{r.Group}, false, false, nil)
	if err != nil {
		return nil, nil, "", "", err
	}
	return c, rm, acct, ids[0], nil
}

// birthright renders the groups the policy's rules give a person in
// target (the reconciler's "due" groups). bad: a rule cannot be evaluated.
func (a *Activities) birthright(target string, attrs map[string]string) ([]string, bool, error) {
	tables, err := a.cfg.Policy.Tables()
	if err != nil {
		return nil, false, permanent("PolicyInvalid", err)
	}
	rules, err := parseGroupRules(a.cfg.Policy, target)
	if err != nil {
		return nil, false, err
	}
	due, bad := dueGroups(rules, nil, attrs, tables)
	return due, bad, nil
}

// Grant is an access request's grant in force (the request workflow's
// memo while it is Granted).
type Grant struct {
	Workflow   string    `json:"workflow"`
	EmployeeID string    `json:"employee_id"`
	Target     string    `json:"target"`
	Group      string    `json:"group"`
	Until      time.Time `json:"until"`
}

// GrantDirectory lists the grants in force (TemporalDirectory does).
type GrantDirectory interface {
	ActiveGrants(ctx context.Context) ([]Grant, error)
}

// ActiveGrants lists the running access requests in state Granted.
func (d TemporalDirectory) ActiveGrants(ctx context.Context) ([]Grant, error) {
	dc := d.DataConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var out []Grant
	var token []byte
	for {
		resp, err := d.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
				contract.AccessRequestWorkflowName, contract.SAState, contract.StateGranted),
			PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, connectors.Transient(fmt.Errorf("list access requests: %w", err))
		}
		for _, e := range resp.GetExecutions() {
			p := e.GetMemo().GetFields()[contract.GrantMemoKey]
			if p == nil {
				continue
			}
			var g Grant
			if err := dc.FromPayload(p, &g); err != nil {
				return nil, connectors.Permanent("GrantMemo", fmt.Errorf("%s: memo: %w", e.GetExecution().GetWorkflowId(), err))
			}
			g.Workflow = e.GetExecution().GetWorkflowId()
			out = append(out, g)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// RevokeGrantsOf tells every open access request of a person that they
// left (a leaver): each revokes its grant, or stops asking, at once. It
// waits until they have ended, so the leaver's step is done when every
// grant is gone at its target. Returns how many there were.
func (a *Activities) RevokeGrantsOf(ctx context.Context, employeeID string) (int, error) {
	return a.endGrants(ctx, employeeID, "the person left (leaver)")
}

// GrantReview is a mover's review of the person's time-bound grants
// (Plan.GrantReview).
type GrantReview struct {
	EmployeeID string `json:"employee_id"`
	Action     string `json:"action"` // policy.OnMoveReapprove | OnMoveRevoke
	Why        string `json:"why"`
}

// ReviewGrantsOf does what the policy's approvals.on_move says to the
// person's grants after a move: reapprove signals each grant in force to
// ask its approvers again (it does not wait for them: a denial or a
// timeout revokes); revoke ends every open request as a leaver does.
// Returns how many requests it told.
func (a *Activities) ReviewGrantsOf(ctx context.Context, in GrantReview) (int, error) {
	switch in.Action {
	case policy.OnMoveRevoke:
		return a.endGrants(ctx, in.EmployeeID, in.Why)
	case policy.OnMoveReapprove:
		ids, err := a.openRequests(ctx, in.EmployeeID, contract.StateGranted)
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			if err := a.cfg.Client.SignalWorkflow(ctx, id, "", contract.SignalReapproveGrants, in.Why); err != nil {
				return 0, toTemporal(connectors.Transient(fmt.Errorf("signal %s: %w", id, err)))
			}
		}
		return len(ids), nil
	}
	return 0, permanent("PolicyInvalid", fmt.Errorf("approvals.on_move.action %q: want reapprove or revoke", in.Action))
}

// openRequests lists the running access requests of a person (in state,
// when set).
func (a *Activities) openRequests(ctx context.Context, employeeID, state string) ([]string, error) {
	if a.cfg.Client == nil {
		return nil, nil
	}
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		contract.AccessRequestWorkflowName, contract.SAEmployeeID, strings.ReplaceAll(employeeID, "'", "\\'"))
	if state != "" {
		q += fmt.Sprintf(" AND %s = '%s'", contract.SAState, state)
	}
	resp, err := a.cfg.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000})
	if err != nil {
		return nil, toTemporal(connectors.Transient(fmt.Errorf("list access requests: %w", err)))
	}
	var ids []string
	for _, e := range resp.GetExecutions() {
		ids = append(ids, e.GetExecution().GetWorkflowId())
	}
	return ids, nil
}

// endGrants signals every open access request of a person to revoke (or
// stop asking) for reason, and waits until each has ended.
func (a *Activities) endGrants(ctx context.Context, employeeID, reason string) (int, error) {
	ids, err := a.openRequests(ctx, employeeID, "")
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := a.cfg.Client.SignalWorkflow(ctx, id, "", contract.SignalRevokeGrants, reason); err != nil {
			return 0, toTemporal(connectors.Transient(fmt.Errorf("signal %s: %w", id, err)))
		}
	}
	for _, id := range ids {
		activity.RecordHeartbeat(ctx, id)
		// Bounded, so the heartbeat goes on; a request still revoking
		// (its target down) makes this attempt fail and the next one
		// wait again.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.cfg.Client.GetWorkflow(wctx, id, "").Get(wctx, nil)
		timedOut := wctx.Err() != nil
		cancel()
		if err != nil && timedOut {
			return 0, toTemporal(connectors.Transient(fmt.Errorf("%s has not revoked its grant yet", id)))
		}
	}
	return len(ids), nil
}
