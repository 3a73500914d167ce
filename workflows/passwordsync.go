package workflows

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
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
	PasswordRejected     = "Rejected"     // the group's rules refused it: nothing changed
	PasswordAuthFailed   = "AuthFailed"   // the authoritative target refused: nothing else attempted
	PasswordChanged      = "Changed"      // every account changed
	PasswordPartlyFailed = "PartlyFailed" // the auth target changed, some member did not

	AccountChanged      = "changed"
	AccountFailed       = "failed"
	AccountNotAttempted = "not_attempted"
	AccountMissing      = "no_account"
)

// PasswordOutcome is one account's (or one target's, when it has none) result.
type PasswordOutcome struct {
	Target    string `json:"target"`
	AccountID string `json:"account_id,omitempty"`
	Auth      bool   `json:"auth,omitempty"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
}

// PasswordSyncResult is the workflow's result.
type PasswordSyncResult struct {
	State   string            `json:"state"`
	Rule    string            `json:"rule,omitempty"` // the failed rule when Rejected
	Message string            `json:"message,omitempty"`
	Targets []PasswordOutcome `json:"targets,omitempty"`
}

// passwordRetry: a refused password is final; a flaky target gets a few tries.
var passwordRetry = temporal.RetryPolicy{
	InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5,
}

// PasswordSync sets one new password across a password sync group
// (IdentityNow semantics). Design:
//
//   - The password is checked against the group's rules first; a refusal
//     names the failed rule and changes nothing.
//   - The authoritative (auth) target's accounts change first. If that
//     fails, no other member is attempted.
//   - Then every other member's accounts change in parallel; a failure of
//     one (a disabled account the target refuses, an outage beyond the
//     retries) does not stop the others. Every account of the user on a
//     target is attempted, each on its own.
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

	var check activities.PasswordCheck
	if err := workflow.ExecuteActivity(opts("password.check", "check password against group rules"), a.CheckSyncedPassword, in.PasswordSyncRequest).Get(ctx, &check); err != nil {
		return PasswordSyncResult{State: PasswordRejected, Rule: "check", Message: errorText(err)}, nil
	}
	if !check.OK {
		return PasswordSyncResult{State: PasswordRejected, Rule: check.Rule, Message: check.Message}, nil
	}
	var accounts []activities.TargetAccounts
	if err := workflow.ExecuteActivity(opts("password.accounts", "find the user's accounts"), a.PasswordAccounts, in.PasswordSyncRequest).Get(ctx, &accounts); err != nil {
		return PasswordSyncResult{State: PasswordAuthFailed, Message: errorText(err)}, nil
	}

	set := func(ctx workflow.Context, target, id string, auth bool) PasswordOutcome {
		o := PasswordOutcome{Target: target, AccountID: id, Auth: auth, Outcome: AccountChanged}
		err := workflow.ExecuteActivity(opts("password."+target+"."+id, "set password in "+target), a.SetSyncedPassword,
			activities.SetPasswordInput{Target: target, AccountID: id, Handle: in.Handle}).Get(ctx, nil)
		if err != nil {
			o.Outcome, o.Error = AccountFailed, errorText(err)
		}
		return o
	}
	res := PasswordSyncResult{State: PasswordChanged}
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
	for _, s := range slots {
		res.Targets = append(res.Targets, s.out)
		if s.out.Outcome != AccountChanged {
			res.State = PasswordPartlyFailed
		}
	}
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
