package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// promtool finds Debian's promtool (package prometheus). In CI (CI set) a
// missing one fails the test; elsewhere the test skips with the install
// command.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	msg := "no promtool: apt-get install -y prometheus (./test.sh installs it when it may)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runPromtool runs promtool in dir and returns whether it passed, and its
// output.
func runPromtool(t *testing.T, dir string, args ...string) (bool, string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); !ok {
		require.NoError(t, err)
	}
	return err == nil, string(out)
}

func promDir(t *testing.T) string { return filepath.Join(root(t), "deploy", "prometheus") }

// The shipped alert rules and Prometheus configuration are valid, and the
// rules pass their unit test.
func TestPrometheusRules(t *testing.T) {
	dir := promDir(t)
	ok, out := runPromtool(t, dir, "check", "config", "prometheus.yml")
	assert.True(t, ok, out)
	ok, out = runPromtool(t, dir, "check", "rules", "jml-rules.yml")
	assert.True(t, ok, out)
	ok, out = runPromtool(t, dir, "test", "rules", "jml-rules.test.yml")
	assert.True(t, ok, out)
}

// The unit test pins the thresholds: with any one of them changed, it
// fails, naming the alert.
func TestPrometheusRulesTestFailsOnAChangedThreshold(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(promDir(t), "jml-rules.yml"))
	require.NoError(t, err)
	test, err := os.ReadFile(filepath.Join(promDir(t), "jml-rules.test.yml"))
	require.NoError(t, err)
	for _, tc := range []struct{ alert, from, to string }{
		{"JmlStepErrorRate", "[15m])) > 0.2", "[15m])) > 0.4"},
		{"JmlRunsNeedAttention", "for: 4h", "for: 6h"},
		{"JmlStepsWaitForWorkers", "[5m]))) > 30", "[5m]))) > 90"},
		{"JmlVaultHoldsPasswordsWithoutRuns", "[15m]) > 0\n", "[15m]) > 2\n"},
		{"JmlAuditStoreFailing", "jml_audit_write_failures_total{job=\"jml-worker\"}[5m]", "jml_audit_write_failures_total{job=\"jml-worker\"}[15m]"},
	} {
		t.Run(tc.alert, func(t *testing.T) {
			require.Equal(t, 1, strings.Count(string(rules), tc.from), "the threshold %q appears once", tc.from)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "jml-rules.yml"), []byte(strings.Replace(string(rules), tc.from, tc.to, 1)), 0o600))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "jml-rules.test.yml"), test, 0o600))
			ok, out := runPromtool(t, dir, "check", "rules", "jml-rules.yml")
			require.True(t, ok, "the changed rules are still valid:\n%s", out)
			ok, out = runPromtool(t, dir, "test", "rules", "jml-rules.test.yml")
			assert.False(t, ok, "promtool test rules passed with %s changed", tc.alert)
			assert.Contains(t, out, "alertname: "+tc.alert, out)
		})
	}
}
