package sources_test

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// report is an HR report endpoint over HTTPS (Workday RaaS / BambooHR
// custom report style): GET answers the current CSV to a bearer token.
type report struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	body  string
	gets  int
}

func newReport(t *testing.T, token string) *report {
	r := &report{token: token}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.gets++
		if req.Header.Get("Authorization") != "Bearer "+r.token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		switch req.URL.Path {
		case "/login": // a sign-in page after an expired session, answered 200
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><body>Please sign in</body></html>\n"))
			return
		case "/empty": // the header and nobody
			w.Header().Set("Content-Type", "text/csv")
			_, _ = w.Write([]byte("Employee ID,First Name\n"))
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write([]byte(r.body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *report) set(body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.body = body
}

type person struct{ id, first, dept string }

func csvOf(people []person) string {
	var b strings.Builder
	b.WriteString("Employee ID,First Name,Department\n")
	for _, p := range people {
		fmt.Fprintf(&b, "%s,%s,%s\n", p.id, p.first, p.dept)
	}
	return b.String()
}

func hookFlows(s *stack) (policy.Flow, policy.Flow, policy.Flow) {
	return policy.Flow{Steps: []policy.Step{s.hookStep("joiner")}},
		policy.Flow{Steps: []policy.Step{s.hookStep("mover")}},
		policy.Flow{Steps: []policy.Step{s.hookStep("leaver")}}
}

func byKind(runs []run) map[string][]string {
	out := map[string][]string{}
	for _, r := range runs {
		out[r.Kind] = append(out[r.Kind], r.ID)
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// TestReportOverHTTPS: 1,000 people, then a snapshot with 12 hires, 30
// changes and 8 terminations → exactly those runs; a snapshot missing 20 %
// of people → Blocked and no leaver, release → the leavers run; discard →
// nothing runs.
func TestReportOverHTTPS(t *testing.T) {
	s := newStack(t)
	rep := newReport(t, "hr-report-token")
	s.env["HR_REPORT_TOKEN"] = "hr-report-token"
	joiner, mover, leaver := hookFlows(s)
	s.pol = &policy.Policy{
		Targets: map[string]policy.Target{}, Joiner: joiner, Mover: mover, Leaver: leaver,
		Sources: map[string]policy.Source{"workday": {
			Type: "report", URL: rep.srv.URL + "/ccx/service/customreport2/acme/jml_workers", Every: "1h",
			Auth:       policy.Credential{Type: "bearer", TokenEnv: "HR_REPORT_TOKEN"},
			EmployeeID: "{employee_id}", Initial: policy.InitialBaseline,
			Attributes: map[string]string{"first_name": "{first_name}", "department": "{Department | LOWER}"},
		}},
	}
	var people []person
	for i := range 1000 {
		people = append(people, person{fmt.Sprintf("E%04d", i), fmt.Sprintf("First%d", i), "Eng"})
	}
	rep.set(csvOf(people))
	s.worker(t, nil)
	s.startPollers(t)
	st := s.status(t, "workday")
	require.Empty(t, st.LastError)
	assert.Equal(t, 1000, st.People, "the baseline is remembered")
	assert.Empty(t, st.Emitted, "a baseline emits nothing")

	// 8 leave, 30 move to Sales, 12 join.
	want := map[string][]string{}
	next := slices.Clone(people[8:])
	for i := range 8 {
		want["leaver"] = append(want["leaver"], people[i].id)
	}
	for i := 100; i < 130; i++ {
		next[i-8].dept = "Sales"
		want["mover"] = append(want["mover"], people[i].id)
	}
	for i := 1000; i < 1012; i++ {
		next = append(next, person{fmt.Sprintf("E%04d", i), fmt.Sprintf("First%d", i), "Ops"})
		want["joiner"] = append(want["joiner"], fmt.Sprintf("E%04d", i))
	}
	rep.set(csvOf(next))
	st = s.pollNow(t, "workday")
	require.Empty(t, st.LastError)
	assert.Equal(t, map[string]int{hr.Hire: 12, hr.Change: 30, hr.Terminate: 8}, st.Emitted)
	assert.Equal(t, 1004, st.People)
	got := byKind(s.waitRuns(t, 50))
	assert.Equal(t, want, got, "exactly those runs")
	s.waitCount(t, "WorkflowType = 'Leaver'", 8)
	s.waitCount(t, "WorkflowType = 'Mover'", 30)
	s.waitCount(t, "WorkflowType = 'Joiner'", 12)

	// 20 % missing: Blocked, no leaver starts.
	missing := len(next) / 5
	gone := next[:missing]
	rest := next[missing:]
	rep.set(csvOf(rest))
	st = s.pollNow(t, "workday")
	require.NotNil(t, st.Blocked)
	assert.Equal(t, contract.StateBlocked, st.State)
	assert.Equal(t, missing, st.Blocked.Terminate)
	assert.Equal(t, 1004, st.Blocked.Known)
	assert.Equal(t, 8, st.Emitted[hr.Terminate], "nothing delivered")
	assert.Equal(t, 8, s.count(t, "WorkflowType = 'Leaver'"), "0 leavers started")
	s.waitCount(t, "WorkflowType = 'SourcePoller' AND JmlState = 'Blocked' AND JmlEvent = 'source'", 1)
	assert.Contains(t, s.details(t, "workday"), "Blocked: this poll would terminate 200 of 1004 people")
	_, err := s.update(t, "workday", contract.UpdateSourcePoll, workflows.SourcePollRequest{})
	assert.ErrorContains(t, err, "release or discard it first")
	_, err = s.update(t, "workday", contract.UpdateSourceRelease, workflows.SourceDecision{Digest: "not-this-one"})
	assert.ErrorContains(t, err, "does not name the blocked poll")

	// Release: the leavers run.
	blockedRun := s.runID(t, "workday")
	st, err = s.update(t, "workday", contract.UpdateSourceRelease, workflows.SourceDecision{Digest: st.Blocked.Digest, Reason: "reorg approved"})
	require.NoError(t, err)
	assert.Nil(t, st.Blocked)
	assert.Equal(t, 8+missing, st.Emitted[hr.Terminate])
	runs := s.waitRuns(t, 50+missing)
	var leavers []string
	for _, r := range runs[50:] {
		assert.Equal(t, "leaver", r.Kind)
		leavers = append(leavers, r.ID)
	}
	var goneIDs []string
	for _, p := range gone {
		goneIDs = append(goneIDs, p.id)
	}
	sort.Strings(leavers)
	assert.Equal(t, goneIDs, leavers)
	s.waitCount(t, "WorkflowType = 'Leaver'", 8+missing)
	s.saveHistory(t, "workday", blockedRun, "source-poller-blocked.json")

	// Another 20 % missing, discarded: nothing runs, then or on the next
	// poll of the same report.
	rep.set(csvOf(rest[len(rest)/5:]))
	st = s.pollNow(t, "workday")
	require.NotNil(t, st.Blocked)
	st, err = s.update(t, "workday", contract.UpdateSourceDiscard, workflows.SourceDecision{Digest: st.Blocked.Digest})
	require.NoError(t, err)
	assert.Nil(t, st.Blocked)
	st = s.pollNow(t, "workday")
	assert.Nil(t, st.Blocked)
	assert.Equal(t, 8+missing, st.Emitted[hr.Terminate])
	assert.Len(t, s.runsSoFar(), 50+missing, "discard: nothing runs")
	assert.Equal(t, 8+missing, s.count(t, "WorkflowType = 'Leaver'"))
	assert.Contains(t, strings.Join(st.Problems, "\n"), "an operator discarded")

	// The discard holds back those terminations only: a new hire and a
	// department change in a later report still run, and the discarded
	// people still do not leave.
	kept := slices.Clone(rest[len(rest)/5:])
	kept[0].dept = "Audit"
	kept = append(kept, person{"N001", "Nova", "Ops"})
	rep.set(csvOf(kept))
	before := maps.Clone(st.Emitted) // (counts since the poller started)
	st = s.pollNow(t, "workday")
	assert.Nil(t, st.Blocked)
	assert.Equal(t, 1, st.Emitted[hr.Hire]-before[hr.Hire])
	assert.Equal(t, 1, st.Emitted[hr.Change]-before[hr.Change])
	assert.Equal(t, 0, st.Emitted[hr.Terminate]-before[hr.Terminate])
	assert.Contains(t, strings.Join(st.Problems, "\n"), "terminations held back")
	runs = s.waitRuns(t, 50+missing+2)
	assert.Equal(t, map[string][]string{"joiner": {"N001"}, "mover": {kept[0].id}}, byKind(runs[50+missing:]))
	st = s.pollNow(t, "workday")
	assert.Nil(t, st.Blocked, "the discard stands while HR drops the same people")
	assert.Equal(t, 8+missing, s.count(t, "WorkflowType = 'Leaver'"))
}

// TestReportBadInput: an unreachable source, a 401, a malformed CSV row
// and a row without an employee ID give clear errors in the poller's
// details; nothing is emitted for them and good rows are processed.
func TestReportBadInput(t *testing.T) {
	s := newStack(t)
	rep := newReport(t, "right-token")
	s.env["RIGHT"], s.env["WRONG"] = "right-token", "wrong-token"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "https://" + ln.Addr().String() + "/report.csv"
	require.NoError(t, ln.Close()) // nothing listens there now
	joiner, mover, leaver := hookFlows(s)
	src := func(url, env string) policy.Source {
		return policy.Source{Type: "report", URL: url, Every: "1h", EmployeeID: "{employee_id}",
			Auth: policy.Credential{Type: "bearer", TokenEnv: env}}
	}
	s.pol = &policy.Policy{
		Targets: map[string]policy.Target{}, Joiner: joiner, Mover: mover, Leaver: leaver,
		Sources: map[string]policy.Source{
			"down":   src(down, "RIGHT"),
			"denied": src(rep.srv.URL+"/report?token=in-the-query", "WRONG"),
			"rows":   src(rep.srv.URL+"/report", "RIGHT"),
			"login":  src(rep.srv.URL+"/login", "RIGHT"),
			"empty":  src(rep.srv.URL+"/empty", "RIGHT"),
		},
	}
	rep.set("Employee ID,First Name\nE1,Ada\nE2,\"Bo\"b\n,Nobody\nE3,Cy\n")
	s.worker(t, nil)
	s.startPollers(t)

	st := s.status(t, "down")
	assert.Equal(t, contract.StateRetrying, st.State)
	assert.Contains(t, st.LastError, "connection refused")
	assert.Contains(t, s.details(t, "down"), "connection refused")
	assert.Empty(t, st.Emitted)

	st = s.status(t, "denied")
	assert.Equal(t, contract.StateRetrying, st.State)
	assert.Contains(t, st.LastError, "401 Unauthorized")
	assert.NotContains(t, st.LastError, "in-the-query", "a URL's query may hold credentials")
	assert.Contains(t, s.details(t, "denied"), "401 Unauthorized")

	// A sign-in page or a report of nobody is a failed read: nothing is
	// emitted (read as nobody, they would terminate everyone).
	for name, want := range map[string]string{"login": "answered an HTML page", "empty": "no records"} {
		st = s.status(t, name)
		assert.Equal(t, contract.StateRetrying, st.State, name)
		assert.Contains(t, st.LastError, want, name)
		assert.Empty(t, st.Emitted, name)
	}

	st = s.status(t, "rows")
	assert.Empty(t, st.LastError)
	assert.Equal(t, map[string]int{hr.Hire: 2}, st.Emitted, "the good rows")
	details := s.details(t, "rows")
	assert.Contains(t, details, "line 3: malformed CSV row")
	assert.Contains(t, details, "line 4: no employee ID")
	assert.Equal(t, map[string][]string{"joiner": {"E1", "E3"}}, byKind(s.waitRuns(t, 2)))

	// The 401 heals once the credential is right, without a restart.
	failingRun := s.runID(t, "denied")
	s.mu.Lock()
	s.env["WRONG"] = "right-token"
	s.mu.Unlock()
	st = s.pollNow(t, "denied")
	assert.Empty(t, st.LastError)
	assert.Equal(t, 0, st.Failures)
	assert.Equal(t, map[string]int{hr.Hire: 2}, st.Emitted)
	s.saveHistory(t, "denied", failingRun, "source-poller-retrying.json")
}

// TestReportDuplicatesAndActive: rows sharing an employee ID are all held
// (none applied, the person neither changed nor terminated) and reported
// together; active: reads the report's columns, and a poll whose filter
// matches none of the rows is a failed read (Retrying, nothing emitted).
func TestReportDuplicatesAndActive(t *testing.T) {
	s := newStack(t)
	rep := newReport(t, "tok")
	s.env["TOK"] = "tok"
	joiner, mover, leaver := hookFlows(s)
	s.pol = &policy.Policy{
		Targets: map[string]policy.Target{}, Joiner: joiner, Mover: mover, Leaver: leaver,
		Sources: map[string]policy.Source{"workday": {
			Type: "report", URL: rep.srv.URL + "/report.csv", Every: "1h",
			Auth:       policy.Credential{Type: "bearer", TokenEnv: "TOK"},
			EmployeeID: "{employee_id}", MaxTerminatePercent: 100,
			// As docs/sources.md reads: the column "Worker Status", not a
			// mapped attribute.
			Active:     `worker_status eq "Active"`,
			Attributes: map[string]string{"first_name": "{first_name}", "department": "{Department}"},
		}},
	}
	rep.set("Employee ID,First Name,Department,Worker Status\n" +
		"E1,Ada,Eng,Active\nE2,Bob,Eng,Active\nE3,Cy,Ops,Active\nE9,Old,Ops,Terminated\n" +
		"E4,Di,Ops,Active\nE4,Dina,Sales,Active\n")
	s.worker(t, nil)
	s.startPollers(t)
	st := s.status(t, "workday")
	require.Empty(t, st.LastError)
	assert.Equal(t, map[string]int{hr.Hire: 3}, st.Emitted, "E1-E3 hired; E9 not active; E4 on two rows: neither applied")
	assert.Equal(t, 3, st.People)
	require.NotEmpty(t, st.Problems)
	assert.Contains(t, st.Problems[0], "1 employee IDs on several rows (2 rows) held")
	assert.Contains(t, strings.Join(st.Problems, "\n"), "employee ID E4 is on 2 rows (line 6, line 7): all held, none applied")
	assert.Equal(t, map[string][]string{"joiner": {"E1", "E2", "E3"}}, byKind(s.waitRuns(t, 3)))

	// E2 on two rows now (one of them a move): neither the move nor a
	// leaver; E1's change applies.
	rep.set("Employee ID,First Name,Department,Worker Status\n" +
		"E1,Ada,Sales,Active\nE2,Bob,Eng,Active\nE3,Cy,Ops,Active\nE2,Bob,Legal,Active\n")
	st = s.pollNow(t, "workday")
	require.Empty(t, st.LastError)
	assert.Equal(t, map[string]int{hr.Hire: 3, hr.Change: 1}, st.Emitted, "E2 held: no change, no leaver")
	assert.Equal(t, 3, st.People)
	assert.Contains(t, s.details(t, "workday"), "employee ID E2 is on 2 rows (line 3, line 5): all held, none applied")

	// The filter matches none of the rows: a failed read, not everyone
	// leaving.
	rep.set("Employee ID,First Name,Department,Worker Status\n" +
		"E1,Ada,Sales,On Leave\nE2,Bob,Eng,On Leave\nE3,Cy,Ops,On Leave\n")
	st = s.pollNow(t, "workday")
	assert.Equal(t, contract.StateRetrying, st.State)
	assert.Contains(t, st.LastError, "matched none of the 3 rows read")
	assert.Equal(t, map[string]int{hr.Hire: 3, hr.Change: 1}, st.Emitted, "nothing emitted")
	assert.Equal(t, 3, st.People)
	assert.Equal(t, 0, s.count(t, "WorkflowType = 'Leaver'"))
}
