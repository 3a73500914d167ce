package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/secret"
)

type stepIn struct {
	Action, Target, Fail string
}

func (s stepIn) StepLabels() (string, string) { return s.Action, s.Target }

type pollIn struct{ Source string }

func (p pollIn) SourceLabel() string { return p.Source }

func failWith(typ string) error {
	switch typ {
	case "":
		return nil
	case "untyped":
		return errors.New("boom")
	}
	return temporal.NewApplicationError("failed", typ)
}

// Every step and poll attempt is counted once, by what its input names and
// the class of its error; other activities are not.
func TestInterceptorCountsStepsAndPolls(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{m.Interceptor()}})
	env.RegisterActivityWithOptions(func(_ context.Context, in stepIn) error { return failWith(in.Fail) }, activity.RegisterOptions{Name: "Step"})
	env.RegisterActivityWithOptions(func(_ context.Context, in pollIn) error { return nil }, activity.RegisterOptions{Name: "Poll"})
	env.RegisterActivityWithOptions(func(_ context.Context, s string) error { return nil }, activity.RegisterOptions{Name: "Other"})

	for _, in := range []stepIn{
		{"sync_identity", "okta", ""}, {"sync_identity", "okta", ""}, {"sync_identity", "okta", "Transient"},
		{"notify", "portal", "untyped"}, {"sync_identity", "scim", "ScimValidation"},
	} {
		_, _ = env.ExecuteActivity("Step", in)
	}
	_, err = env.ExecuteActivity("Poll", pollIn{Source: "workday"})
	require.NoError(t, err)
	_, err = env.ExecuteActivity("Other", "x")
	require.NoError(t, err)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jml_steps_total Step attempts finished on this worker, by policy action, target and error class ("none": succeeded).
# TYPE jml_steps_total counter
jml_steps_total{action="notify",error_class="Other",target="portal"} 1
jml_steps_total{action="sync_identity",error_class="ScimValidation",target="scim"} 1
jml_steps_total{action="sync_identity",error_class="Transient",target="okta"} 1
jml_steps_total{action="sync_identity",error_class="none",target="okta"} 2
# HELP jml_source_polls_total Source poll attempts finished on this worker, by source and error class ("none": succeeded).
# TYPE jml_source_polls_total counter
jml_source_polls_total{error_class="none",source="workday"} 1
`), "jml_steps_total", "jml_source_polls_total"))
}

func TestErrorClass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "none"},
		{temporal.NewNonRetryableApplicationError("x", "Conflict", nil), "Conflict"},
		{temporal.NewApplicationError("x", ""), "Other"},
		{temporal.NewCanceledError(), "Canceled"},
		{context.Canceled, "Canceled"},
		{errors.New("x"), "Other"},
	} {
		assert.Equal(t, tc.want, ErrorClass(tc.err), "%v", tc.err)
	}
}

// The vault gauge reads the vault at scrape time.
func TestVaultEntriesGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := secret.NewVault(0)
	m, err := New(reg, v.Len)
	require.NoError(t, err)
	gauge := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "jml_vault_entries" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no jml_vault_entries")
		return -1
	}
	assert.Zero(t, gauge())
	v.Put("run-1", secret.New("pw-1"))
	v.Put("run-1", secret.New("pw-2"))
	v.Put("run-2", secret.New("pw-3"))
	assert.Equal(t, 3.0, gauge())
	v.DeleteOwner("run-1")
	assert.Equal(t, 1.0, gauge())

	m.Notification("email", "completed", "sent")
	var nilM *Metrics
	nilM.Notification("email", "completed", "sent") // a nil *Metrics counts nothing
	assert.Equal(t, 1.0, testutil.ToFloat64(m.notifications.WithLabelValues("email", "completed", "sent")))
}
