package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

func TestParseCSVBadRows(t *testing.T) {
	rows, problems, err := parseCSV([]byte("id,first,dept\n1,Ada,eng\n2,\"Bo\"b,eng\n3,Cy\n4,Di,ops\n"))
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "line 2", rows[0].At)
	assert.Equal(t, map[string]string{"id": "4", "first": "Di", "dept": "ops"}, rows[1].Fields)
	require.Len(t, problems, 2)
	assert.Contains(t, problems[0], "line 3: malformed CSV row")
	assert.Contains(t, problems[1], "line 4: malformed CSV row: 2 fields, the header has 3")
}

func TestParseJSONShapes(t *testing.T) {
	for name, body := range map[string]string{
		"array":      `[{"id": 1, "name": "Ada", "active": true}]`,
		"workday":    `{"Report_Entry": [{"id": "1", "name": "Ada", "active": "true"}]}`,
		"bamboohr":   `{"fields": {"x": 1}, "employees": [{"id": "1", "name": "Ada", "active": true}]}`,
		"one object": `{"employees": [{"id": 1, "name": "Ada", "active": true, "extra": null}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			rows, problems, err := parseJSON([]byte(body), map[string]string{"bamboohr": "employees"}[name])
			require.NoError(t, err)
			assert.Empty(t, problems)
			require.Len(t, rows, 1)
			assert.Equal(t, map[string]string{"id": "1", "name": "Ada", "active": "true"}, rows[0].Fields)
		})
	}
	_, _, err := parseJSON([]byte("[{\"id\": 1},\n {\"id\": }]"), "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2")
	_, _, err = parseJSON([]byte(`{"a": [], "b": []}`), "")
	assert.ErrorContains(t, err, "several lists")
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := snapshot{}
	for i := range 1000 {
		s[fmt.Sprintf("E%04d", i)] = entry{Digest: digest(map[string]string{"i": fmt.Sprint(i)}), Active: i%7 != 0}
	}
	b := s.encode()
	got, err := decodeSnapshot(b)
	require.NoError(t, err)
	assert.Equal(t, s, got)
	assert.Less(t, len(b), 20*1000, "about a dozen bytes a person: %d", len(b))
	t.Logf("snapshot of 1,000 people: %d bytes", len(b))
}

// recorder is a stand-in for intake.Submit (a unit test of the diff).
type recorder struct {
	mu     sync.Mutex
	events []hr.Event
}

func (r *recorder) submit(_ context.Context, ev hr.Event) (workflows.EventAccepted, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return workflows.EventAccepted{}, nil
}

func (r *recorder) take() []hr.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func kinds(evs []hr.Event) map[string][]string {
	out := map[string][]string{}
	for _, e := range evs {
		out[e.Type] = append(out[e.Type], e.EmployeeID())
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

func eventIDs(evs []hr.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

// TestReportFileDiff polls a CSV file: the diff gives hires, changes and
// terminations, a retried poll sends the same event IDs, and too many
// leavers block until released.
func TestReportFileDiff(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "people.csv")
	write := func(rows ...string) {
		require.NoError(t, os.WriteFile(file, []byte("Employee ID,First Name,Department\n"+strings.Join(rows, "\n")+"\n"), 0o600))
	}
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{employee_id}",
		Attributes: map[string]string{"first_name": "{first_name}", "department": "{Department | LOWER}"}, MaxTerminatePercent: 40}}}
	rec := &recorder{}
	p := New(Config{Policy: pol, Submit: rec.submit})
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	in := workflows.SourcePollInput{Source: "hr", Epoch: "run1", Generation: 1, At: at}

	write("E1,Ada,Eng", "E2,Bob,Eng", "E3,Cy,Ops")
	res, err := p.Poll(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{hr.Hire: {"E1", "E2", "E3"}}, kinds(rec.take()))
	assert.Equal(t, 3, res.People)

	write("E1,Ada,Sales", "E2,Bob,Eng", "E4,Di,Ops")
	in.Generation, in.Snapshot = 2, res.Snapshot
	res2, err := p.Poll(ctx, in)
	require.NoError(t, err)
	evs := rec.take()
	assert.Equal(t, map[string][]string{hr.Hire: {"E4"}, hr.Change: {"E1"}, hr.Terminate: {"E3"}}, kinds(evs))
	assert.Equal(t, map[string]int{hr.Hire: 1, hr.Change: 1, hr.Terminate: 1}, res2.Emitted)
	for _, e := range evs {
		require.NoError(t, e.Validate(nil))
		assert.Equal(t, at, e.EffectiveAt)
		if e.Type == hr.Change {
			assert.Equal(t, "sales", e.Employee["department"])
		}
	}
	_, err = p.Poll(ctx, in) // the same poll again (a retry): the same IDs
	require.NoError(t, err)
	again := rec.take()
	assert.ElementsMatch(t, eventIDs(evs), eventIDs(again))

	// Two of three leave at once (67 % > 40 %): blocked, nothing sent.
	write("E4,Di,Ops")
	in.Generation, in.Snapshot = 3, res2.Snapshot
	res3, err := p.Poll(ctx, in)
	require.NoError(t, err)
	require.NotNil(t, res3.Blocked)
	assert.Equal(t, 2, res3.Blocked.Terminate)
	assert.Empty(t, rec.take())
	in.Discard = res3.Blocked.Digest
	res4, err := p.Poll(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, 2, res4.HeldBack, "the discarded terminations held back")
	assert.Empty(t, rec.take())
	in.Discard, in.Release = "", res3.Blocked.Digest
	res5, err := p.Poll(ctx, in)
	require.NoError(t, err)
	assert.Nil(t, res5.Blocked)
	assert.Equal(t, map[string][]string{hr.Terminate: {"E1", "E2"}}, kinds(rec.take()))
}

// TestReportBadRows: bad rows are named and skipped, good rows still
// processed, and nobody is terminated on a guess.
func TestReportBadRows(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "people.csv")
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}", MaxTerminatePercent: 100}}}
	rec := &recorder{}
	p := New(Config{Policy: pol, Submit: rec.submit})
	in := workflows.SourcePollInput{Source: "hr", Epoch: "e", Generation: 1, At: time.Now()}
	require.NoError(t, os.WriteFile(file, []byte("id,first_name\nE1,Ada\nE2,Bob\nE3,Cy\n"), 0o600))
	res, err := p.Poll(context.Background(), in)
	require.NoError(t, err)
	rec.take()

	require.NoError(t, os.WriteFile(file, []byte("id,first_name\nE1,Adele\n,Nobody\nE3,\"C\"y\nE4,Di\n"), 0o600))
	in.Generation, in.Snapshot = 2, res.Snapshot
	res, err = p.Poll(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{hr.Hire: {"E4"}, hr.Change: {"E1"}}, kinds(rec.take()), "good rows processed; E2 and E3 not terminated")
	joined := strings.Join(res.Problems, "\n")
	assert.Contains(t, joined, "line 3: no employee ID")
	assert.Contains(t, joined, "line 4: malformed CSV row")
	assert.Contains(t, joined, "2 people absent from the report not terminated")
}

// TestDeliveryFailure: a delivery cut short fails the poll (the state does
// not move); the retry sends the same event IDs. An event failing the
// policy's required attributes is reported, not sent, and tried again.
func TestDeliveryFailure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(file, []byte("id,first_name,email\nE1,Ada,ada@x\nE2,Bob,\nE3,Cy,cy@x\nE4,Di,di@x\n"), 0o600))
	pol := &policy.Policy{
		RequiredAttributes: policy.RequiredAttributes{List: []string{"email"}},
		Sources:            map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}"}},
	}
	rec := &recorder{}
	var mu sync.Mutex
	calls := 0
	p := New(Config{Policy: pol, Submit: func(ctx context.Context, ev hr.Event) (workflows.EventAccepted, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 {
			return workflows.EventAccepted{}, errors.New("temporal: unavailable")
		}
		return rec.submit(ctx, ev)
	}})
	in := workflows.SourcePollInput{Source: "hr", Epoch: "e", Generation: 1, At: time.Now()}
	_, err := p.Poll(context.Background(), in)
	require.ErrorContains(t, err, "temporal: unavailable")
	first := eventIDs(rec.take())
	res, err := p.Poll(context.Background(), in)
	require.NoError(t, err)
	second := eventIDs(rec.take())
	assert.Len(t, second, 3)
	assert.Subset(t, second, first, "the retry sends the same IDs")
	assert.Equal(t, 3, res.People, "E2 is not remembered: it is tried again")
	assert.Contains(t, strings.Join(res.Problems, "\n"), "hire E2: invalid event: employee.email: required attribute missing: not sent")
}

// TestReportInParts: a report with more changes than one poll delivers
// is delivered over several polls, terminations last.
func TestReportInParts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "people.csv")
	var b strings.Builder
	b.WriteString("id\nE-gone\n")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o600))
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}", MaxTerminatePercent: 100}}}
	rec := &recorder{}
	p := New(Config{Policy: pol, Submit: rec.submit})
	in := workflows.SourcePollInput{Source: "hr", Epoch: "e", Generation: 1, At: time.Now()}
	res, err := p.Poll(context.Background(), in)
	require.NoError(t, err)
	rec.take()
	b.Reset()
	b.WriteString("id\n")
	n := MaxEventsPerPoll + 10
	for i := range n {
		fmt.Fprintf(&b, "E%05d\n", i)
	}
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o600))
	in.Generation, in.Snapshot = 2, res.Snapshot
	res, err = p.Poll(context.Background(), in)
	require.NoError(t, err)
	assert.True(t, res.More)
	assert.Equal(t, map[string]int{hr.Hire: MaxEventsPerPoll}, res.Emitted, "terminations wait for the last part")
	rec.take()
	in.Generation, in.Snapshot = 3, res.Snapshot
	res, err = p.Poll(context.Background(), in)
	require.NoError(t, err)
	assert.False(t, res.More)
	assert.Equal(t, map[string]int{hr.Hire: 10, hr.Terminate: 1}, res.Emitted)
	assert.Equal(t, n, res.People)
}

// TestReportHeldBeyondCap: when every row is unreadable, the count of
// people held (not terminated) leads the problems, whatever the cap.
func TestReportHeldBeyondCap(t *testing.T) {
	file := filepath.Join(t.TempDir(), "people.csv")
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}", MaxTerminatePercent: 100}}}
	rec := &recorder{}
	p := New(Config{Policy: pol, Submit: rec.submit})
	in := workflows.SourcePollInput{Source: "hr", Epoch: "e", Generation: 1, At: time.Now()}
	var good, bad strings.Builder
	good.WriteString("id,first_name\n")
	bad.WriteString("id,first_name\n")
	for i := range 2 * maxProblems {
		fmt.Fprintf(&good, "E%03d,P%d\n", i, i)
		fmt.Fprintf(&bad, ",P%d\n", i) // no employee ID
	}
	require.NoError(t, os.WriteFile(file, []byte(good.String()), 0o600))
	res, err := p.Poll(context.Background(), in)
	require.NoError(t, err)
	rec.take()

	require.NoError(t, os.WriteFile(file, []byte(bad.String()), 0o600))
	in.Generation, in.Snapshot = 2, res.Snapshot
	res, err = p.Poll(context.Background(), in)
	require.NoError(t, err)
	assert.Empty(t, rec.take(), "nobody terminated on a guess")
	require.NotEmpty(t, res.Problems)
	assert.Equal(t, fmt.Sprintf("held: %d people absent from the report not terminated: %d rows could not be read, they may be among them",
		2*maxProblems, 2*maxProblems), res.Problems[0])
	assert.LessOrEqual(t, len(res.Problems), maxProblems+2, "the row problems are still capped")
}

// TestReportActiveColumn: an active: condition naming what no column of
// the report holds (a mapped attribute's name) is a failed read naming it.
func TestReportActiveColumn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "people.csv")
	require.NoError(t, os.WriteFile(file, []byte("id,Worker_Status\nE1,Active\nE2,Active\n"), 0o600))
	pol := &policy.Policy{Sources: map[string]policy.Source{"hr": {Type: "report", File: file, EmployeeID: "{id}",
		Active: `status eq "Active"`, Attributes: map[string]string{"status": "{Worker_Status}"}}}}
	rec := &recorder{}
	p := New(Config{Policy: pol, Submit: rec.submit})
	in := workflows.SourcePollInput{Source: "hr", Epoch: "e", Generation: 1, At: time.Now()}
	_, err := p.Poll(context.Background(), in)
	require.ErrorContains(t, err, "reads status, which no row of the report has")
	assert.Empty(t, rec.take())

	pol.Sources["hr"] = policy.Source{Type: "report", File: file, EmployeeID: "{id}", Active: `Worker_Status eq "Active"`}
	_, err = p.Poll(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{hr.Hire: {"E1", "E2"}}, kinds(rec.take()))
}
