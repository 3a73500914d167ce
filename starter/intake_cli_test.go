package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
)

// starter runs the command line with the Temporal environment of env.
func starter(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func useTemporal(t *testing.T, env *intaketest.Env) {
	t.Setenv("TEMPORAL_ADDRESS", env.Addr)
	t.Setenv("TEMPORAL_NAMESPACE", env.Namespace)
	t.Setenv("JML_CODEC_KEYS", "")
	t.Setenv("JML_POLICY", "")
}

func countWorkflows(t *testing.T, env *intaketest.Env, query string) int64 {
	t.Helper()
	resp, err := env.Client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: env.Namespace, Query: query})
	require.NoError(t, err)
	return resp.Count
}

// writeCSV writes n hire rows in the column names of examples/policy.yaml,
// with bad rows at the given 1-based data rows; it returns their file lines.
func writeCSV(t *testing.T, n int, bad map[int]string) (path string, badLines []int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("Employee ID,First Name,Last Name,Department,Work Country,Effective Date\n")
	for i := 1; i <= n; i++ {
		row := fmt.Sprintf("E%05d,First%d,Last%d,Engineering,US,2026-12-01", i, i, i)
		if r, ok := bad[i]; ok {
			row = r
			badLines = append(badLines, i+1)
		}
		b.WriteString(row + "\n")
	}
	path = filepath.Join(t.TempDir(), "hires.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path, badLines
}

func TestImportCSV(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	useTemporal(t, env)
	path, badLines := writeCSV(t, 300, map[int]string{
		17:  "E00017,Ada,,Engineering,US,2026-12-01",          // missing last name
		150: "E00150,Bob,Builder,Engineering,US,next tuesday", // bad date
		299: "E00299/x,Carla,Bruni,Engineering,FR,2026-12-01", // employee ID with a slash
	})

	code, out, errs := starter(t, "import", "--policy", "../examples/policy.yaml", path)
	require.Equal(t, 2, code, "stdout:\n%s\nstderr:\n%s", out, errs)
	assert.Contains(t, out, "300 rows")
	assert.Regexp(t, `started\s+297\n`, out)
	assert.Regexp(t, `skipped\s+0 `, out)
	assert.Regexp(t, `rejected\s+3\n`, out)
	assert.Contains(t, out, fmt.Sprintf("line %d: invalid event: employee.last_name: required attribute missing", badLines[0]))
	assert.Contains(t, out, fmt.Sprintf("line %d: effective_at: \"next tuesday\"", badLines[1]))
	assert.Contains(t, out, fmt.Sprintf("line %d: invalid event: employee.employee_id", badLines[2]))
	assert.NotContains(t, errs, "\r", "no progress bar when stderr is not a terminal")
	assert.NotContains(t, errs, "\x1b[", "no progress bar when stderr is not a terminal")
	require.Eventually(t, func() bool { return countWorkflows(t, env, "") == 297 }, 60*time.Second, 100*time.Millisecond)

	// Importing the same file again delivers nothing new.
	code, out, _ = starter(t, "import", "--policy", "../examples/policy.yaml", "--json", path)
	require.Equal(t, 2, code)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, 0, sum.Started)
	assert.Equal(t, 297, sum.Skipped)
	require.Len(t, sum.Rejected, 3)
	assert.Equal(t, badLines, []int{sum.Rejected[0].Line, sum.Rejected[1].Line, sum.Rejected[2].Line})
	assert.Equal(t, int64(297), countWorkflows(t, env, ""))
}

func TestImportDryRunNeedsNoTemporal(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1") // nothing listens there
	t.Setenv("JML_POLICY", "")
	path, _ := writeCSV(t, 20, map[int]string{5: "E00005,Ada,Lovelace,Engineering,US"})
	code, out, errs := starter(t, "import", "--policy", "../examples/policy.yaml", "--dry-run", path)
	require.Equal(t, 2, code, errs)
	assert.Regexp(t, `would start\s+19\n`, out)
	assert.Contains(t, out, "line 6: 5 fields, header has 6")
}

func TestImportJSONL(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	useTemporal(t, env)
	lines := []string{
		`{"event_id":"j-1","type":"hire","effective_at":"2026-12-01T09:00:00+01:00","employee":{"employee_id":"J1","first_name":"Ada","last_name":"L","department":"R&D","country_code":"GB"}}`,
		`{"Employee ID":"J2","First Name":"Bo","Last Name":"K","department":"Ops","Work Country":"SE","start_date":"2026-12-02","time_zone":"Europe/Stockholm"}`,
		`{"Employee ID":"J3","type":"terminate","effective_at":"2026-12-05T17:00:00Z"}`,
		`{"employee_id": "J4", oops}`,
		``,
		`{"Employee ID":"J5","type":"promote","effective_at":"2026-12-05T17:00:00Z"}`,
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600))
	code, out, errs := starter(t, "import", "--policy", "../examples/policy.yaml", "--json", path)
	require.Equal(t, 2, code, errs)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, 3, sum.Started)
	require.Len(t, sum.Rejected, 2)
	assert.Equal(t, 4, sum.Rejected[0].Line)
	assert.Contains(t, sum.Rejected[0].Reason, "malformed JSON")
	assert.Equal(t, 6, sum.Rejected[1].Line)
	assert.Contains(t, sum.Rejected[1].Reason, `unknown event type "promote"`)

	// J2's date-only start date is midnight in Stockholm.
	d, err := env.Client.DescribeWorkflowExecution(context.Background(), "identity/J2", "")
	require.NoError(t, err)
	assert.Equal(t, "Identity", d.WorkflowExecutionInfo.Type.Name)
	ev := rowEvent(2, map[string]string{"employee_id": "J2", "start_date": "2026-12-02", "time_zone": "Europe/Stockholm"}, importOptions{loc: time.UTC, eventType: hr.Hire})
	assert.Equal(t, "2026-12-01T23:00:00Z", ev.event.EffectiveAt.UTC().Format(time.RFC3339))
}

// TestImportConflictIsRejected: a row whose event ID was delivered before
// with other content is rejected with the workflow's conflict, naming the
// run that holds the first version.
func TestImportConflictIsRejected(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	useTemporal(t, env)
	first := `{"event_id":"k-1","type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"K1","first_name":"Ada","last_name":"L","department":"R&D","country_code":"GB"}}`
	path := filepath.Join(t.TempDir(), "first.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(first), 0o600))
	code, out, errs := starter(t, "import", "--policy", "../examples/policy.yaml", path)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errs)

	resend := strings.Replace(first, `"last_name":"L"`, `"last_name":"Lovelace"`, 1)
	path = filepath.Join(t.TempDir(), "resend.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(resend), 0o600))
	code, out, errs = starter(t, "import", "--policy", "../examples/policy.yaml", "--json", path)
	require.Equal(t, 2, code, errs)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, 0, sum.Started)
	assert.Equal(t, 0, sum.Skipped)
	assert.Equal(t, 0, sum.Failed)
	require.Len(t, sum.Rejected, 1)
	assert.Equal(t, 1, sum.Rejected[0].Line)
	assert.Contains(t, sum.Rejected[0].Reason, "joiner/K1/k-1")
	assert.Contains(t, sum.Rejected[0].Reason, "k-1 was received before with different content")
}

// TestOperatorCLI drives runs stuck in NeedsAttention and Blocked through
// list, status, retry, skip, abort and release.
func TestOperatorCLI(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{Lifecycle: true})
	useTemporal(t, env)
	ctx := context.Background()
	send := func(emp string, attrs map[string]string) {
		employee := map[string]string{"employee_id": emp, "first_name": "A", "last_name": "B"}
		for k, v := range attrs {
			employee[k] = v
		}
		ev := hr.Event{EventID: "evt-" + emp, Type: hr.Hire, EffectiveAt: time.Now(), Employee: employee}
		_, err := intake.Submit(ctx, env.Client, ev)
		require.NoError(t, err)
	}
	failing := intaketest.Steps[1]
	send("R1", map[string]string{intaketest.AttrFailStep: failing})
	send("S1", map[string]string{intaketest.AttrFailStep: failing})
	send("A1", map[string]string{intaketest.AttrFailStep: failing})
	send("B1", map[string]string{intaketest.AttrBlockStep: intaketest.Steps[2]})

	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `JmlState = "NeedsAttention"`) == 3 && countWorkflows(t, env, `JmlState = "Blocked"`) == 1
	}, 20*time.Second, 100*time.Millisecond)

	code, out, errs := starter(t, "list", "--needs-attention")
	require.Equal(t, 0, code, errs)
	for _, id := range []string{"joiner/R1/evt-R1", "joiner/S1/evt-S1", "joiner/A1/evt-A1"} {
		assert.Contains(t, out, id)
	}
	assert.Contains(t, out, failing)
	assert.NotContains(t, out, "B1")

	code, out, errs = starter(t, "list", "--blocked", "--json")
	require.Equal(t, 0, code, errs)
	var runs []listedRun
	require.NoError(t, json.Unmarshal([]byte(out), &runs))
	require.Len(t, runs, 1)
	assert.Equal(t, "B1", runs[0].EmployeeID)

	code, out, errs = starter(t, "status", "R1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "run       joiner/R1/evt-R1 (joiner, event evt-R1)")
	assert.Contains(t, out, "state     NeedsAttention at "+failing)
	assert.Regexp(t, failing+`\s+manage_relationships\s+okta\s+failed\s+1\s+ScimConflict`, out)
	assert.Contains(t, out, "next: starter retry R1")

	// The workflow's validator refuses a step that is not the failed one.
	code, _, errs = starter(t, "retry", "R1", "--step", intaketest.Steps[0])
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "is not the failed step")
	code, _, errs = starter(t, "skip", "S1")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "--step is required")

	code, out, errs = starter(t, "retry", "R1", "--set", "last_name=Byron")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "retry "+failing+": accepted by joiner/R1/evt-R1")
	code, _, errs = starter(t, "skip", "S1", "--step", failing, "--reason", "group managed by hand")
	require.Equal(t, 0, code, errs)
	code, _, errs = starter(t, "abort", "A1", "--json")
	require.Equal(t, 0, code, errs)
	code, out, errs = starter(t, "release", "B1")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "release "+intaketest.Steps[2])

	require.Eventually(t, func() bool {
		return countWorkflows(t, env, `JmlState = "NeedsAttention"`) == 0 && countWorkflows(t, env, `JmlState = "Blocked"`) == 0 &&
			countWorkflows(t, env, `JmlState = "Completed"`) == 3 && countWorkflows(t, env, `JmlState = "Aborted"`) == 1
	}, 20*time.Second, 100*time.Millisecond)

	code, out, errs = starter(t, "status", "S1", "--json")
	require.Equal(t, 0, code, errs)
	var st runStatusResult
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, "Completed", st.State)
	assert.Equal(t, "skipped", st.Steps[1].State)
	assert.Equal(t, "done", st.Steps[2].State)

	code, _, errs = starter(t, "status", "NOBODY")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `no workflow for employee "NOBODY"`)
	code, _, errs = starter(t, "retry", "R1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "no running lifecycle workflow")
}

func TestImportProgressLineWithoutTerminal(t *testing.T) {
	var b strings.Builder
	p := &progress{w: &b, start: time.Now()}
	p.update(&importSummary{Rows: 10, Started: 8, Skipped: 1, Rejected: []Rejection{{Line: 3}}})
	p.draw(false)
	assert.Regexp(t, `^import: 10 rows: 8 started, 1 skipped, 1 rejected \(\d+ rows/s\)\n$`, b.String())
	p.draw(true)
	assert.Equal(t, 1, strings.Count(b.String(), "\n"), "the summary on stdout is the last word")
}

func TestImportWithoutPolicyWarns(t *testing.T) {
	t.Setenv("JML_POLICY", "")
	path, _ := writeCSV(t, 3, nil)
	code, out, errs := starter(t, "import", "--dry-run", path)
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `would start\s+3\n`, out)
	assert.Contains(t, errs, "no --policy (or JML_POLICY): rows are checked as HR events only")
}
