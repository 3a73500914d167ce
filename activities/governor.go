package activities

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// PermitRequest asks the governor whether a destructive step may run.
type PermitRequest struct {
	// Key identifies the step run (lifecycle workflow ID + step name); asking
	// twice with one key gets the same answer and counts once.
	Key        string `json:"key"`
	MaxPerHour int    `json:"max_per_hour"`
}

// Permit is the governor's answer.
type Permit struct {
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
}

// GovernorCall addresses the governor workflow. The workflows package fills
// it from its contract (activities cannot import workflows).
type GovernorCall struct {
	WorkflowID   string        `json:"workflow_id"`
	WorkflowType string        `json:"workflow_type"`
	TaskQueue    string        `json:"task_queue"`
	Update       string        `json:"update"`
	Request      PermitRequest `json:"request"`
}

// AskGovernor sends the Permit update to the governor, starting it when it
// is not running (update-with-start). The update ID is the request key, so
// a retried activity is answered once.
func (a *Activities) AskGovernor(ctx context.Context, in GovernorCall) (Permit, error) {
	if a.cfg.Client == nil || in.Request.MaxPerHour <= 0 {
		return Permit{Granted: true, Reason: "no limit"}, nil
	}
	start := a.cfg.Client.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       in.WorkflowID,
		TaskQueue:                in.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, in.WorkflowType, struct{}{}) // empty GovernorState
	h, err := a.cfg.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID:     in.Request.Key,
			UpdateName:   in.Update,
			Args:         []any{in.Request},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return Permit{}, toTemporal(fmt.Errorf("governor: %w", err))
	}
	var p Permit
	if err := h.Get(ctx, &p); err != nil {
		return Permit{}, toTemporal(fmt.Errorf("governor: %w", err))
	}
	return p, nil
}
