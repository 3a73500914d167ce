package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jml-dev/jml/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// PermitRequest asks the governor whether a destructive step may run.
type PermitRequest struct {
	// Key identifies the person's run (the lifecycle workflow ID; runs
	// started before one-permit-per-person add the step name); asking twice
	// with one key gets the same answer and counts once.
	Key        string `json:"key"`
	MaxPerHour int    `json:"max_per_hour"`
	// MaxPercent limits destructive steps in the hour to this percentage
	// of Population, the active identities (AskGovernor counts them).
	MaxPercent float64 `json:"max_percent,omitempty"`
	Population int     `json:"population,omitempty"`
}

// Limit is the number of people whose destructive steps may run in the window: the
// smaller of MaxPerHour and MaxPercent of Population (rounded down, at
// least 1 so a small company can still lose one person an hour); 0 means
// no limit. A percentage without a known population does not limit.
func (r PermitRequest) Limit() int {
	limit := r.MaxPerHour
	if r.MaxPercent > 0 && r.Population > 0 {
		pl := max(1, int(r.MaxPercent*float64(r.Population)/100))
		if limit <= 0 || pl < limit {
			limit = pl
		}
	}
	return limit
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
	if in.Request.MaxPercent > 0 {
		n, err := a.population.count(ctx, a.cfg.Directory)
		if err != nil {
			return Permit{}, toTemporal(fmt.Errorf("governor: count active identities: %w", err))
		}
		if n == 0 {
			a.log.Warn("safety limit: max_destructive_percent ignored: no identity directory to count the population")
		}
		in.Request.Population = n
	}
	if a.cfg.Client == nil || in.Request.Limit() <= 0 {
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

// populationTTL is how long a population count is reused: counting pages
// through every identity, and a burst of leavers asks many times a minute.
const populationTTL = 5 * time.Minute

// populationCache counts the active population: identities of the
// directory whose status is not deprovisioned. A person being deprovisioned
// counts until their leaver run completes, so a burst does not shrink the
// base it is measured against while it runs.
type populationCache struct {
	mu sync.Mutex
	n  int
	at time.Time
}

func (p *populationCache) count(ctx context.Context, d Directory) (int, error) {
	if d == nil {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && time.Since(p.at) < populationTTL {
		return p.n, nil
	}
	n := 0
	for ids, err := range identityPages(ctx, d) {
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			if id.Status != contract.StatusDeprovisioned {
				n++
			}
		}
	}
	p.n, p.at = n, time.Now()
	return n, nil
}
