package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jml-dev/jml/policy"
)

// approvalAction is approval: the run waits for people's yes before the
// steps after it (the workflow runs the wait as an Approval child; this
// activity only says who would be asked, for previews).
type approvalAction struct{}

func (approvalAction) Name() string               { return policy.ActionApproval }
func (approvalAction) Activity(a *Activities) any { return a.ApprovalStep }
func (approvalAction) Traits() Traits             { return Traits{} }
func (approvalAction) Supports(any) bool          { return true }
func (approvalAction) Needs(policy.Step, string) []string {
	return nil
}
func (approvalAction) plan(*PlannedStep) error { return nil }
func (approvalAction) sources(*policy.Policy, policy.Step) (string, []string) {
	return "", nil
}
func (approvalAction) secret(policy.Step) bool { return false }
func (approvalAction) does(s policy.Step, _ string) string {
	who := s.Approval.Approvers
	if len(who) == 0 {
		who = []string{policy.ApproverManager}
	}
	return "wait for approval by " + strings.Join(who, ", ")
}

func (approvalAction) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	return []Effect{{Kind: EffectOther, Note: approvalAction{}.does(ps.Step, "")}}, nil
}

// ApprovalInput starts an Approval child of a run.
type ApprovalInput struct {
	EmployeeID string            `json:"employee_id"`
	Attributes map[string]string `json:"attributes"`
	// What is asked, in words ("the joiner of E123 to go on").
	What string          `json:"what"`
	Spec policy.Approval `json:"spec"`
	// Run is the lifecycle run that waits.
	Run string `json:"run"`
}

// PlanApproval resolves an approval step's approvers from the person's
// attributes (their manager by manager_id), without the person.
func (a *Activities) PlanApproval(ctx context.Context, in ApprovalInput) (RequestPlan, error) {
	times, err := in.Spec.Times()
	if err != nil {
		return RequestPlan{}, permanent("PolicyInvalid", fmt.Errorf("approval: %w", err))
	}
	rec := IdentityRecord{EmployeeID: in.EmployeeID, Attributes: in.Attributes}
	plan := RequestPlan{Approval: in.Spec, Times: times, Quorum: max(in.Spec.Quorum, 1), Person: approverOf(rec), Audit: a.cfg.Audit != nil}
	srcs := in.Spec.Approvers
	if len(srcs) == 0 {
		srcs = []string{policy.ApproverManager}
	}
	asked, err := a.resolveApprovers(ctx, rec, srcs)
	var re *RequestError
	if errors.As(err, &re) {
		plan.Refused = re.Error()
		return plan, nil
	}
	if err != nil {
		return RequestPlan{}, err
	}
	plan.Approvers, plan.Excluded = excludeSelf(asked, plan.Person, "")
	if len(plan.Approvers) < plan.Quorum {
		plan.Refused = fmt.Sprintf("approvers: %d found from %s, quorum is %d", len(plan.Approvers), strings.Join(srcs, ", "), plan.Quorum)
	}
	return plan, nil
}

// ApprovalStep is the approval step's activity as a preview calls it:
// who would be asked. (A run waits in an Approval child workflow.)
func (a *Activities) ApprovalStep(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.Approval
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not an approval step"))
	}
	plan, err := a.PlanApproval(ctx, ApprovalInput{EmployeeID: in.Attributes["employee_id"], Attributes: in.Attributes, Spec: *spec})
	if err != nil {
		return StepResult{}, err
	}
	if plan.Refused != "" {
		return StepResult{}, permanent("ApprovalRefused", errors.New(plan.Refused))
	}
	var who []string
	for _, ap := range plan.Approvers {
		who = append(who, ap.String())
	}
	return StepResult{Note: fmt.Sprintf("asks %s (quorum %d)", strings.Join(who, ", "), plan.Quorum)}, nil
}
