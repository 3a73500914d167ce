package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

// TestSourcePollerRetry: a failed poll shows its error, is retried with
// backoff with the same generation and effective time (so event IDs keep
// their content), and an applied poll continues as new with the new state.
func TestSourcePollerRetry(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SourcePoller, workflow.RegisterOptions{Name: contract.SourcePollerWorkflowName})
	var got []workflows.SourcePollInput
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.SourcePollInput) (workflows.SourcePollResult, error) {
		got = append(got, in)
		if len(got) < 3 {
			return workflows.SourcePollResult{}, errors.New("report hr: GET https://hr.example/r: 503 Service Unavailable")
		}
		return workflows.SourcePollResult{Every: time.Hour, Snapshot: []byte("snap"), People: 2,
			Emitted: map[string]int{"hire": 2}}, nil
	}, activity.RegisterOptions{Name: contract.SourcePollActivityName})
	var during workflows.SourceStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QuerySourceStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
	}, 15*time.Second)
	env.ExecuteWorkflow(contract.SourcePollerWorkflowName, workflows.SourcePollerInput{Source: "hr"})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)

	assert.Equal(t, contract.StateRetrying, during.State)
	assert.Contains(t, during.LastError, "503 Service Unavailable")
	assert.Equal(t, 2, during.Failures, "failed at 0 s and 10 s, next at 30 s")
	require.Len(t, got, 3)
	for _, in := range got[1:] {
		assert.Equal(t, got[0].At, in.At, "a retried poll keeps its effective time")
		assert.Equal(t, 1, in.Generation)
	}
	var next workflows.SourcePollerInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	assert.Equal(t, 1, next.Generation)
	assert.Equal(t, []byte("snap"), next.Snapshot)
	assert.Equal(t, map[string]int{"hire": 2}, next.Status.Emitted)
	assert.Empty(t, next.Status.LastError)
	assert.True(t, next.PollAt.IsZero())
	assert.Equal(t, time.Hour, next.Status.NextPoll.Sub(next.Status.LastPoll))
}
