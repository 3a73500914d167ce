package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

func TestEnsureSchedules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := temporaltest.NewServer(temporaltest.WithT(t)).GetDefaultClient()
	pol := func(every string) *policy.Policy {
		return &policy.Policy{AttributeSync: policy.AttributeSync{Every: every}}
	}
	h := c.ScheduleClient().GetHandle(ctx, contract.AttributeSyncScheduleID)
	interval := func() time.Duration {
		d, err := h.Describe(ctx)
		require.NoError(t, err)
		require.Len(t, d.Schedule.Spec.Intervals, 1)
		assert.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, d.Schedule.Policy.Overlap)
		return d.Schedule.Spec.Intervals[0].Every
	}

	require.NoError(t, ensureSchedules(ctx, c, pol(""), zap.NewNop()), "no schedule, none asked: nothing to do")
	require.NoError(t, ensureSchedules(ctx, c, pol("15m"), zap.NewNop()))
	assert.Equal(t, 15*time.Minute, interval())
	require.NoError(t, ensureSchedules(ctx, c, pol("15m"), zap.NewNop()), "a second worker finds it in line")
	require.NoError(t, ensureSchedules(ctx, c, pol("1d"), zap.NewNop()))
	assert.Equal(t, 24*time.Hour, interval())
	assert.Error(t, ensureSchedules(ctx, c, pol("10s"), zap.NewNop()))

	// On demand: the trigger starts a run now, with the schedule's ID prefix.
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'AttributeSync'"})
		require.NoError(t, err)
		return len(resp.GetExecutions()) == 1 && strings.HasPrefix(resp.GetExecutions()[0].GetExecution().GetWorkflowId(), contract.AttributeSyncScheduleID)
	}, 20*time.Second, 200*time.Millisecond)

	require.NoError(t, ensureSchedules(ctx, c, pol(""), zap.NewNop()))
	_, err := h.Describe(ctx)
	assert.Error(t, err, "deleted when the policy stops asking")
}
