// Package faults is jml's fault suite: real worker processes killed with
// SIGKILL, the file-backed dev server stopped and restarted, a worker that
// holds passwords killed, a proxy that breaks a fifth of the target
// requests, and duplicated, reordered HR events. Every scenario ends with
// the same checks: every joiner completed, one account per person at the
// SCIM peer, no duplicate group members, every password hand-off accepted
// by the portal, and (where passwords flow) none in any history or log.
//
//	go test ./faults/ -v    CI sizes: 30 joiners per scenario (about 2 minutes on 2 cores)
//	go test ./faults/ -v -timeout 60m -faults.joiners=200 -faults.wait=15m    the full size
//
// The password portal serves HTTPS with a self-signed certificate that the
// worker processes trust through SSL_CERT_FILE, as production workers trust
// a corporate CA. Workers run with short step timeouts and session
// heartbeats, and any run that ends up waiting for an operator fails the
// scenario at once with its failed step and error.
package faults

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/bench/harness"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
)

var (
	joiners = flag.Int("faults.joiners", 30, "joiners per scenario (the issue's full size: 200)")
	kills   = flag.Int("faults.kills", 3, "kill -9 rounds in TestWorkerKill9")
	wait    = flag.Duration("faults.wait", 8*time.Minute, "longest wait for a scenario's runs: a liveness bound, not a timing goal (a run in NeedsAttention fails at once; 20 joiners with 20% faults take about 3 min alone on 2 cores, more beside the rest of the suite)")
)

// Worker timeouts for the suite (JML_STEP_TIMEOUT, JML_SESSION_HEARTBEAT):
// a step caught on a killed worker or a hung request is retried after
// stepTimeout rather than the default minute, and a lost session with its
// passwords is noticed after sessionHeartbeat rather than 20 s.
const (
	stepTimeout      = 10 * time.Second
	sessionHeartbeat = 5 * time.Second
)

// summary collects one line per scenario for the end of the run.
var summary struct {
	sync.Mutex
	lines []string
}

func report(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf("%-28s ", t.Name()) + fmt.Sprintf(format, args...)
	t.Log(line)
	summary.Lock()
	summary.lines = append(summary.lines, line)
	summary.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	summary.Lock()
	if len(summary.lines) > 0 {
		fmt.Println("fault suite summary:")
		for _, l := range summary.lines {
			fmt.Println("  " + l)
		}
	}
	summary.Unlock()
	os.Exit(code)
}

// env is one scenario's world: dev server, SCIM peer, proxy, portal.
type env struct {
	c      *harness.Cluster
	peer   *scimtest.Peer
	proxy  *harness.Proxy
	portal *harness.Portal
}

func setup(t *testing.T, file bool) *env {
	t.Helper()
	e := &env{peer: scimtest.Start(t)}
	e.proxy = harness.StartProxy(t, strings.TrimSuffix(e.peer.BaseURL, "/scim/v2"))
	e.portal = harness.StartPortal(t, e.peer.PasswordSHA256)
	e.c = harness.StartCluster(t, file)
	e.c.Trust(e.portal)
	e.c.WorkerEnv("JML_STEP_TIMEOUT="+stepTimeout.String(), "JML_SESSION_HEARTBEAT="+sessionHeartbeat.String())
	e.c.SetPolicy(harness.SCIMPolicy(e.proxy.URL+"/scim/v2", e.portal.URL), harness.SCIMTokenEnv+"="+e.peer.Token)
	return e
}

func hires(prefix string, n int) []hr.Event {
	evs := make([]hr.Event, n)
	for i := range evs {
		evs[i] = harness.Hire(prefix, i)
	}
	return evs
}

// outcome is what verify found.
type outcome struct {
	completed, duplicates, missing, dupMembers, rejected int
	passwords                                            []string
}

// verify waits for every joiner and checks the peer and the portal.
func (e *env) verify(t *testing.T, evs []hr.Event) outcome {
	t.Helper()
	ctx := context.Background()
	var o outcome
	var err error
	o.completed, err = e.c.WaitCount(ctx, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'", len(evs), *wait)
	require.NoError(t, err, "every joiner completes (0 lost events)")
	users, dupMembers, err := harness.SCIMState(ctx, e.peer.BaseURL, e.peer.Token)
	require.NoError(t, err)
	var want []string
	for _, ev := range evs {
		want = append(want, ev.Employee["email"])
	}
	o.duplicates, o.missing = harness.Duplicates(users, want)
	o.dupMembers = dupMembers
	assert.Zero(t, o.duplicates, "duplicate accounts at the peer")
	assert.Zero(t, o.missing, "people without an account")
	assert.Len(t, users, len(evs), "exactly one account per person")
	assert.Zero(t, dupMembers, "duplicate group members")
	lost := 0
	for _, u := range users {
		lost += 2 - len(u.Groups)
	}
	assert.Zero(t, lost, "group memberships missing at the peer (everyone + department per person)")
	var accounts int
	accounts, o.rejected, o.passwords = e.portal.Result()
	assert.Equal(t, len(evs), accounts, "every account's password handed off")
	assert.Zero(t, o.rejected, "hand-offs with a password the target does not hold")
	return o
}

// submit delivers evs in the background (16 at a time, each retried until
// the scenario's wait passes, none after a permanent refusal); the returned
// function waits for the deliveries and fails the test if any was not made.
func (e *env) submit(t *testing.T, evs []hr.Event) (delivered func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), *wait)
		defer cancel()
		_, err := e.c.SubmitAll(ctx, evs, 16)
		errc <- err
	}()
	return func() {
		t.Helper()
		require.NoError(t, <-errc, "every HR event delivered")
	}
}

const completedJoiners = "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'"

// TestWorkerKill9 kills the worker process with SIGKILL while joiners run,
// restarting it each time: kill i of k comes once i/(k+1) of the joiners
// have completed, so every kill lands while runs are in flight however
// fast the machine is, and the test asserts that all k happened.
func TestWorkerKill9(t *testing.T) {
	t.Parallel()
	start := time.Now()
	require.Greater(t, *joiners, *kills, "more joiners than kills, so each kill lands mid-run")
	e := setup(t, true)
	w := e.c.StartWorker()
	evs := hires("K", *joiners)
	delivered := e.submit(t, evs)
	ctx := context.Background()
	killed := 0
	var at []int // joiners completed when each kill came
	for i := 1; i <= *kills; i++ {
		threshold := i * len(evs) / (*kills + 1)
		got, err := e.c.WaitCount(ctx, completedJoiners, threshold, *wait)
		require.NoError(t, err, "waiting for %d completed joiners before kill %d", threshold, i)
		require.Less(t, got, len(evs), "kill %d: joiners still running", i)
		w.Kill()
		require.True(t, w.Exited(), "kill %d: the worker process ended", i)
		killed++
		at = append(at, got)
		w = e.c.StartWorker()
	}
	delivered()
	require.Equal(t, *kills, killed, "every kill happened")
	o := e.verify(t, evs)
	_, found, err := e.c.Scan(ctx, o.passwords)
	require.NoError(t, err)
	assert.Zero(t, found, "passwords in histories or logs")
	st := e.proxy.Stats()
	report(t, "workflows=%d completed=%d faults=%d (kill -9 at %v completed) duplicates=%d dup_members=%d passwords_in_history=%d target_requests=%d time=%s",
		len(evs), o.completed, killed, at, o.duplicates, o.dupMembers, found, st.Total, time.Since(start).Round(time.Second))
}

// TestServerRestart stops the file-backed dev server while joiners run and
// starts it again on the same file and port; the worker process rides it out.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := setup(t, true)
	e.c.StartWorker()
	evs := hires("R", *joiners)
	ctx := context.Background()
	delivered := e.submit(t, evs)
	got, err := e.c.WaitCount(ctx, completedJoiners, len(evs)/4, *wait)
	require.NoError(t, err)
	require.Less(t, got, len(evs), "joiners still running at the restart")
	e.c.RestartServer(2 * time.Second) // the server stays down 2 s: the fault, not a wait
	delivered()
	o := e.verify(t, evs)
	report(t, "workflows=%d completed=%d faults=1 (server stop/start) duplicates=%d dup_members=%d time=%s",
		len(evs), o.completed, o.duplicates, o.dupMembers, time.Since(start).Round(time.Second))
}

// TestKillPasswordHolder runs three workers, holds the first password
// hand-offs at the portal, kills exactly the worker that sent one, and
// releases the rest: its runs set new passwords on other workers.
func TestKillPasswordHolder(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := setup(t, true)
	ws := []*harness.Worker{e.c.StartWorker(), e.c.StartWorker(), e.c.StartWorker()}
	e.portal.Hold()
	evs := hires("P", *joiners)
	ctx := context.Background()
	delivered := e.submit(t, evs)
	var victim *harness.Worker
	giveUp := time.After(*wait)
	for victim == nil {
		select {
		case addr := <-e.portal.Arrived():
			victim, _ = harness.OwnerOf(ws, addr)
		case <-time.After(time.Second):
			require.NoError(t, e.c.NeedsAttention(ctx), "waiting for a password hand-off")
		case <-giveUp:
			t.Fatal("no password hand-off arrived")
		}
	}
	// Let more hand-offs queue up: wait until the portal holds at least
	// two per worker (or every joiner's), one of them still the victim's.
	wantHeld := min(len(evs), 2*len(ws))
	deadline := time.Now().Add(*wait)
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := e.portal.WaitHeld(wctx, func(held []string) bool {
			if len(held) < wantHeld {
				return false
			}
			for _, addr := range held {
				if w, _ := harness.OwnerOf(ws, addr); w == victim {
					return true
				}
			}
			return false
		})
		cancel()
		if err == nil {
			break
		}
		require.NoError(t, e.c.NeedsAttention(ctx), "waiting for %d held hand-offs", wantHeld)
		require.True(t, time.Now().Before(deadline), "%d held hand-offs, one the victim's, within %s: %v", wantHeld, *wait, err)
	}
	held := len(e.portal.Held())
	victim.Kill()
	require.True(t, victim.Exited(), "the password holder's process ended")
	e.portal.Release()
	delivered()
	o := e.verify(t, evs)
	reissued := 0
	for _, ev := range evs {
		steps, err := e.c.Steps(ctx, harness.JoinerID(ev))
		require.NoError(t, err)
		for _, s := range steps {
			// A re-issue by the hand-off step, or by a sync step whose
			// earlier attempt died with the worker; not an adoption's
			// "password kept".
			if strings.Contains(s.Note, activities.NotePasswordReissued) || strings.Contains(s.Note, activities.NotePasswordSet) {
				reissued++
			}
		}
	}
	assert.Positive(t, reissued, "runs of the killed worker set new passwords")
	seen, found, err := e.c.Scan(ctx, o.passwords)
	require.NoError(t, err)
	assert.Zero(t, found, "passwords in histories or logs")
	report(t, "workflows=%d completed=%d faults=1 (kill -9 of the password holder, %d hand-offs held) passwords_reissued=%d duplicates=%d passwords_in_history=%d (%d workflows scanned) time=%s",
		len(evs), o.completed, held, reissued, o.duplicates, found, seen, time.Since(start).Round(time.Second))
}

// TestFaultyTarget breaks 10% of the requests to the SCIM peer: 500, 503,
// 429, or a hang past the step timeout after the request took effect. The
// rate is per request: a group step now resolves each group by name before
// it writes (no name→ID cache to trust), so an attempt makes about six
// requests and 10% fails about half the attempts, as 20% did when it made
// three. At 20% three attempts in four failed, and the slowest joiner's
// backoff (up to 5 min between attempts) outlasted any fixed wait.
func TestFaultyTarget(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := setup(t, false)
	e.c.StartWorker()
	e.proxy.Inject(0.1, stepTimeout+5*time.Second)
	evs := hires("F", max(*joiners*2/3, 1))
	e.submit(t, evs)()
	o := e.verify(t, evs)
	st := e.proxy.Stats()
	injected := 0
	for _, n := range st.Faults {
		injected += n
	}
	assert.Positive(t, injected)
	report(t, "workflows=%d completed=%d faults=%d %v of %d requests duplicates=%d dup_members=%d time=%s",
		len(evs), o.completed, injected, st.Faults, st.Total, o.duplicates, o.dupMembers, time.Since(start).Round(time.Second))
}

// TestDuplicateAndReorderedDeliveries gives one group of people each HR
// event exactly once, in order, and a second group every event three times,
// people interleaved at random and redeliveries of older events arriving
// after newer ones (a hire again after the change). Both groups must end in
// the same state at the peer.
func TestDuplicateAndReorderedDeliveries(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := setup(t, false)
	e.c.StartWorker()
	n := max(*joiners/2, 3)
	ctx := context.Background()
	story := func(prefix string, i int) []hr.Event {
		p := harness.Person(prefix, i)
		id := p["employee_id"]
		moved := map[string]string{"employee_id": id, "department": harness.Departments[(i+1)%len(harness.Departments)]}
		evs := []hr.Event{
			{EventID: id + "-hire", Type: hr.Hire, Employee: p},
			{EventID: id + "-chg", Type: hr.Change, Employee: moved},
		}
		if i%3 == 0 {
			evs = append(evs, hr.Event{EventID: id + "-term", Type: hr.Terminate, Employee: map[string]string{"employee_id": id}})
		}
		return evs
	}
	// Each delivery is retried until the scenario's wait passes and not
	// after a permanent refusal (harness.Deliver); a failed one fails the
	// test.
	dctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	deliver := func(ev hr.Event) bool {
		acc, err := harness.Deliver(dctx, e.c.Client, ev)
		assert.NoError(t, err, "delivery of %s", ev.EventID)
		return err == nil && acc.Duplicate
	}
	var wg sync.WaitGroup
	var dupMu sync.Mutex
	deliveries, dups, expected := 0, 0, 0
	for i := range n {
		wg.Go(func() { // control: once each, in order
			for _, ev := range story("A", i) {
				deliver(ev)
			}
		})
		wg.Go(func() { // duplicates and late redeliveries, people interleaved
			evs := story("B", i)
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			// HR sends in order, so the first copy of each event keeps its
			// place; two more copies of each land anywhere after it.
			order := slices.Clone(evs)
			for _, ev := range evs {
				for range 2 {
					first := slices.IndexFunc(order, func(o hr.Event) bool { return o.EventID == ev.EventID })
					order = slices.Insert(order, first+1+rnd.IntN(len(order)-first), ev)
				}
			}
			for _, ev := range order {
				time.Sleep(time.Duration(rnd.IntN(50)) * time.Millisecond)
				d := deliver(ev)
				dupMu.Lock()
				deliveries++
				if d {
					dups++
				}
				dupMu.Unlock()
			}
			dupMu.Lock()
			expected += len(order) - len(evs)
			dupMu.Unlock()
		})
	}
	wg.Wait()
	leavers := 2 * ((n + 2) / 3)
	for typ, want := range map[string]int{"Joiner": 2 * n, "Mover": 2 * n, "Leaver": leavers} {
		got, err := e.c.WaitCount(ctx, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", typ), want, *wait)
		require.NoError(t, err, "%s runs complete", typ)
		assert.Equal(t, want, got, "%s runs completed (each event exactly once)", typ)
		assert.Equal(t, want, e.c.Count(ctx, fmt.Sprintf("WorkflowType = '%s'", typ)), "%s runs started", typ)
	}
	users, dupMembers, err := harness.SCIMState(ctx, e.peer.BaseURL, e.peer.Token)
	require.NoError(t, err)
	byName := map[string]harness.SCIMUser{}
	for _, u := range users {
		byName[strings.ToLower(u.UserName)] = u
	}
	differ := 0
	for i := range n {
		a, b := byName[harness.Person("A", i)["email"]], byName[harness.Person("B", i)["email"]]
		if !assert.NotEmpty(t, b.ID, "B%d has an account", i) {
			differ++
			continue
		}
		same := a.Active == b.Active && a.Department == b.Department && slices.Equal(a.Groups, b.Groups)
		if !same {
			differ++
		}
		if !assert.True(t, same, "person %d: in-order single delivery %+v, duplicated/reordered %+v", i, a, b) {
			for _, ev := range append(story("A", i), story("B", i)...) {
				kind := map[string]string{hr.Hire: "joiner", hr.Change: "mover", hr.Terminate: "leaver"}[ev.Type]
				id := contract.LifecycleWorkflowID(kind, ev.EmployeeID(), ev.EventID)
				steps, err := e.c.Steps(ctx, id)
				t.Logf("%s: %+v %v", id, steps, err)
			}
		}
	}
	d, missing := harness.Duplicates(users, nil)
	assert.Zero(t, d, "duplicate accounts")
	assert.Zero(t, missing)
	assert.Len(t, users, 2*n)
	assert.Zero(t, dupMembers, "duplicate group members")
	assert.Equal(t, expected, dups, "every redelivery was recognized as a duplicate")
	report(t, "people=%d+%d events=%d deliveries=%d duplicates_recognized=%d/%d states_differing=%d duplicate_accounts=%d time=%s",
		n, n, 2*(2*n+(n+2)/3), deliveries, dups, expected, differ, d, time.Since(start).Round(time.Second))
}
