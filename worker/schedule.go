package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// ensureSchedules makes the attribute-sync Temporal Schedule match the
// policy: created with attribute_sync.every, updated when the interval
// changed, deleted when the policy no longer asks for a continuous sync.
// Runs never overlap (a run still going when the next is due is skipped);
// `starter sync --all` triggers one at once. Every worker calls this at
// start, in the background: a server still starting may take a while to
// describe an existing schedule, and the worker has work to do meanwhile.
func ensureSchedules(ctx context.Context, c client.Client, p *policy.Policy, log *zap.Logger) error {
	h := c.ScheduleClient().GetHandle(ctx, contract.AttributeSyncScheduleID)
	var nf *serviceerror.NotFound
	if p.AttributeSync.Every == "" {
		err := h.Delete(ctx)
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("schedule %s: delete: %w", contract.AttributeSyncScheduleID, err)
		}
		log.Info("attribute sync schedule deleted: attribute_sync.every is not set")
		return nil
	}
	every, err := policy.ParseDuration(p.AttributeSync.Every)
	if err != nil || every < time.Minute {
		return fmt.Errorf("attribute_sync.every %q: want a duration of at least 1m", p.AttributeSync.Every)
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       contract.AttributeSyncScheduleID,
		Workflow:                 contract.AttributeSyncWorkflowName,
		Args:                     []any{workflows.AttributeSyncInput{}},
		TaskQueue:                contract.TaskQueue,
		WorkflowExecutionTimeout: 24 * time.Hour,
		StaticSummary:            "scheduled attribute sync",
	}
	// Create first: it needs no answer from the schedule itself, which a
	// server still starting its system workers may not give for a while.
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            contract.AttributeSyncScheduleID,
		Spec:          spec,
		Action:        action,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: every,
		Note:          "jml: keeps account attributes in sync with the policy (attribute_sync.every)",
	})
	if err == nil {
		log.Info("attribute sync schedule created", zap.Duration("every", every))
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("schedule %s: create: %w", contract.AttributeSyncScheduleID, err)
	}
	// It exists (an earlier start, another worker): bring it in line.
	var desc *client.ScheduleDescription
	for attempt := 1; ; attempt++ {
		if desc, err = h.Describe(ctx); err == nil || attempt == 6 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 2 * time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("schedule %s: describe: %w", contract.AttributeSyncScheduleID, err)
	}
	if sameInterval(desc, every) {
		return nil
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec = &spec
		s.Action = action
		if s.Policy == nil {
			s.Policy = &client.SchedulePolicies{}
		}
		s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
		s.Policy.CatchupWindow = every
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return fmt.Errorf("schedule %s: update: %w", contract.AttributeSyncScheduleID, err)
	}
	log.Info("attribute sync schedule updated", zap.Duration("every", every))
	return nil
}

func sameInterval(d *client.ScheduleDescription, every time.Duration) bool {
	if d == nil || d.Schedule.Spec == nil {
		return false
	}
	iv := d.Schedule.Spec.Intervals
	return len(iv) == 1 && iv[0].Every == every && iv[0].Offset == 0
}
