package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

// PasswordSyncInput starts PasswordSync. It carries a vault handle, never
// the password.
type PasswordSyncInput struct {
	activities.PasswordSyncRequest
	// HostQueue is the task queue of the worker whose vault holds Handle.
	HostQueue string `json:"host_queue"`
}

// Password sync outcomes.
const (
	PasswordRunning      = "Running"      // not done yet (the status of a running change)
	PasswordRejected     = "Rejected"     // refused before anything changed (Refusal says why)
	PasswordAuthFailed   = "AuthFailed"   // the authoritative target refused: nothing else attempted
	PasswordChanged      = "Changed"      // every account changed
	PasswordPartlyFailed = "PartlyFailed" // the auth target changed, some member did not
	PasswordEnded        = "Ended"        // the run stopped without a result (terminated, timed out)

	AccountChanged      = "changed" // the target accepted the write (a password cannot be read back)
	AccountFailed       = "failed"
	AccountNotAttempted = "not_attempted"
	AccountMissing      = "no_account"
	AccountDisabled     = "disabled" // disabled on its target: left unchanged
)

// PasswordOutcome is one account's (or one target's, when it has none) result.
type PasswordOutcome struct {
	Target    string `json:"target"`
	AccountID string `json:"account_id,omitempty"`
	Auth      bool   `json:"auth,omitempty"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
}

// PasswordSyncResult is the workflow's result, and its status while it
// runs (QueryPasswordStatus).
type PasswordSyncResult struct {
	State      string `json:"state"`
	EmployeeID string `json:"employee_id,omitempty"`
	Group      string `json:"group,omitempty"`
	// Refusal is why a Rejected change was refused (activities.Refused*).
	Refusal string `json:"refusal,omitempty"`
	// Rule is the (first) failed rule when Rejected.
	Rule     string               `json:"rule,omitempty"`
	Message  string               `json:"message,omitempty"`
	Failures []policy.RuleFailure `json:"failures,omitempty"`
	Targets  []PasswordOutcome    `json:"targets,omitempty"`
}

// passwordRetry: a refused password is final; a flaky target gets a few tries.
var passwordRetry = temporal.RetryPolicy{
	InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5,
}

// PasswordSync sets one new password across a password sync group
// (IdentityNow semantics). Design:
//
//   - The change is checked first, as the endpoint checked it before
//     starting the run (activities.CheckPasswordChange): the person is
//     known, not terminated, has an account on the auth target, and the
//     password keeps the group's and every member's rules. A refusal
//     names why and changes nothing. The accounts are the person's links.
//   - The authoritative (auth) target's accounts change first. If that
//     fails, no other member is attempted.
//   - Then every other member's accounts change in parallel; a failure of
//     one (an outage beyond the retries) does not stop the others. A
//     disabled account is read back as such and left unchanged.
//   - The password lives only in the vault of the worker on HostQueue; all
//     activities run there and history holds only the handle. The vault
//     entry is wiped when the run ends, whatever the outcome.
func PasswordSync(ctx workflow.Context, in PasswordSyncInput) (PasswordSyncResult, error) {
	var a *activities.Activities
	owner := workflow.GetInfo(ctx).WorkflowExecution.ID
	opts := func(id, summary string) workflow.Context {
		return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: in.HostQueue, ActivityID: id, Summary: summary,
			// The host worker gone means the password is gone too.
			ScheduleToStartTimeout: time.Minute,
			StartToCloseTimeout:    time.Minute,
			RetryPolicy:            &passwordRetry,
		})
	}
	defer func() {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		fctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			TaskQueue: in.HostQueue, ActivityID: "vault.forget", Summary: "wipe the new password",
			ScheduleToStartTimeout: time.Minute, StartToCloseTimeout: 10 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2},
		})
		_ = workflow.ExecuteActivity(fctx, a.ForgetSecrets, owner).Get(dctx, nil)
	}()

	res := PasswordSyncResult{State: PasswordRunning, EmployeeID: in.EmployeeID, Group: in.Group}
	// The status of a running change (no command: safe for every history).
	if err := workflow.SetQueryHandler(ctx, contract.QueryPasswordStatus, func() (PasswordSyncResult, error) {
		return res, nil
	}); err != nil {
		return res, err
	}
	reject := func(refusal, rule, msg string, fails []policy.RuleFailure) (PasswordSyncResult, error) {
		res.State, res.Refusal, res.Rule, res.Message, res.Failures = PasswordRejected, refusal, rule, msg, fails
		return res, nil
	}

	var check activities.PasswordCheck
	if err := workflow.ExecuteActivity(opts("password.check", "check password against group rules"), a.CheckSyncedPassword, in.PasswordSyncRequest).Get(ctx, &check); err != nil {
		return reject("", "check", errorText(err), nil)
	}
	if !check.OK {
		return reject(check.Refusal, check.Rule, check.Message, check.Failures)
	}
	var accounts []activities.TargetAccounts
	if err := workflow.ExecuteActivity(opts("password.accounts", "find the user's accounts"), a.PasswordAccounts, in.PasswordSyncRequest).Get(ctx, &accounts); err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == activities.ErrTypePasswordRefused {
			return reject("", "accounts", errorText(err), nil)
		}
		res.State, res.Message = PasswordAuthFailed, errorText(err)
		return res, nil
	}

	set := func(ctx workflow.Context, target, id string, auth bool) PasswordOutcome {
		o := PasswordOutcome{Target: target, AccountID: id, Auth: auth, Outcome: AccountChanged}
		err := workflow.ExecuteActivity(opts("password."+target+"."+id, "set password in "+target), a.SetSyncedPassword,
			activities.SetPasswordInput{Target: target, AccountID: id, Handle: in.Handle}).Get(ctx, nil)
		var app *temporal.ApplicationError
		switch {
		case err == nil:
		case errors.As(err, &app) && app.Type() == activities.ErrTypeAccountDisabled:
			o.Outcome, o.Error = AccountDisabled, app.Message()
		default:
			o.Outcome, o.Error = AccountFailed, errorText(err)
		}
		return o
	}
	if len(accounts) == 0 {
		return PasswordSyncResult{}, fmt.Errorf("password sync group %q has no targets", in.Group)
	}
	auth := accounts[0]
	if len(auth.IDs) == 0 {
		res.Targets = append(res.Targets, PasswordOutcome{Target: auth.Target, Auth: true, Outcome: AccountMissing, Error: "no account on the authoritative target"})
	}
	for _, id := range auth.IDs {
		res.Targets = append(res.Targets, set(ctx, auth.Target, id, true))
	}
	for _, o := range res.Targets {
		if o.Outcome != AccountChanged {
			res.State, res.Message = PasswordAuthFailed, "the authoritative target refused the change; no other target was attempted"
			for _, t := range accounts[1:] {
				res.Targets = append(res.Targets, PasswordOutcome{Target: t.Target, Outcome: AccountNotAttempted})
			}
			return res, nil
		}
	}

	// Every other account in parallel; outcomes keep the group's order.
	type slot struct {
		target, id string
		out        PasswordOutcome
	}
	var slots []*slot
	for _, t := range accounts[1:] {
		if len(t.IDs) == 0 {
			slots = append(slots, &slot{out: PasswordOutcome{Target: t.Target, Outcome: AccountMissing}})
		}
		for _, id := range t.IDs {
			slots = append(slots, &slot{target: t.Target, id: id})
		}
	}
	wg := workflow.NewWaitGroup(ctx)
	for _, s := range slots {
		if s.target == "" {
			continue
		}
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			s.out = set(ctx, s.target, s.id, false)
		})
	}
	wg.Wait(ctx)
	state := PasswordChanged
	for _, s := range slots {
		res.Targets = append(res.Targets, s.out)
		if s.out.Outcome != AccountChanged {
			state = PasswordPartlyFailed
		}
	}
	res.State = state
	return res, nil
}

// StartPasswordSync is how a new password enters jml. Call it in a worker
// process (the intake, a self-service endpoint) with that worker's vault
// and host queue: the password goes into the vault, the workflow gets the
// handle. The handle is wiped if the start fails.
func StartPasswordSync(ctx context.Context, c client.Client, vault *secret.Vault, hostQueue string, req activities.PasswordSyncRequest, pw secret.Secret) (client.WorkflowRun, error) {
	if req.Group == "" || req.EmployeeID == "" {
		return nil, fmt.Errorf("password sync: group and employee_id are required")
	}
	if msg := hr.CheckID(req.EmployeeID); msg != "" {
		return nil, fmt.Errorf("password sync: employee_id %s", msg)
	}
	if pw.Empty() {
		return nil, fmt.Errorf("password sync: the new password is empty")
	}
	id := contract.PasswordSyncWorkflowID(req.EmployeeID, time.Now())
	req.Handle = vault.Put(id, pw)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: contract.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            "password sync " + req.Group,
	}, contract.PasswordSyncWorkflowName, PasswordSyncInput{PasswordSyncRequest: req, HostQueue: hostQueue})
	if err != nil {
		vault.Delete(req.Handle)
		return nil, fmt.Errorf("password sync: start: %w", err)
	}
	return run, nil
}

// ErrNoPasswordChange: no password change has that ID.
var ErrNoPasswordChange = errors.New("no such password change")

// PasswordChangeStatus reads a password change by its change ID (or
// workflow ID): its result when done, its progress while it runs. The one
// reading the status endpoint and "starter password status" share.
func PasswordChangeStatus(ctx context.Context, c client.Client, id string) (PasswordSyncResult, error) {
	emp, wfID, ok := contract.PasswordChangeOf(id)
	if !ok || hr.CheckID(emp) != "" {
		return PasswordSyncResult{}, fmt.Errorf("password change %q: %w", id, ErrNoPasswordChange)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) || (err == nil && desc.GetWorkflowExecutionInfo().GetType().GetName() != contract.PasswordSyncWorkflowName) {
		return PasswordSyncResult{}, fmt.Errorf("password change %q: %w", id, ErrNoPasswordChange)
	}
	if err != nil {
		return PasswordSyncResult{}, fmt.Errorf("password change %q: describe: %w", id, err)
	}
	res := PasswordSyncResult{State: PasswordRunning, EmployeeID: emp}
	switch st := desc.GetWorkflowExecutionInfo().GetStatus(); st {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		v, err := c.QueryWorkflow(ctx, wfID, "", contract.QueryPasswordStatus)
		if err == nil {
			err = v.Get(&res)
		}
		if err != nil {
			res.Message = "running; progress not readable yet"
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := c.GetWorkflow(ctx, wfID, "").Get(ctx, &res); err != nil {
			return res, fmt.Errorf("password change %q: result: %w", id, err)
		}
		res.EmployeeID = emp // runs started before the result named the person
	default:
		res.State, res.Message = PasswordEnded, "the run stopped without a result: "+strings.ToLower(strings.TrimPrefix(st.String(), "WorkflowExecutionStatus"))
	}
	return res, nil
}
