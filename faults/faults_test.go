// Package faults is jml's fault suite: real worker processes killed with
// SIGKILL, the file-backed dev server stopped and restarted, a worker that
// holds passwords killed, a proxy that breaks a fifth of the target
// requests, and duplicated, reordered HR events. Every scenario ends with
// the same checks: every joiner completed, one account per person at the
// SCIM peer, no duplicate group members, every password hand-off accepted
// by the portal, and (where passwords flow) none in any history or log.
//
//	go test ./faults/ -v                      CI sizes (about 4 minutes on 2 cores)
//	go test ./faults/ -v -faults.joiners=200  the full size
package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/bench/harness"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/hr"
)

var (
	joiners = flag.Int("faults.joiners", 60, "joiners per scenario (the issue's full size: 200)")
	kills   = flag.Int("faults.kills", 3, "kill -9 rounds in TestWorkerKill9")
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
func (e *env) verify(t *testing.T, evs []hr.Event, timeout time.Duration) outcome {
	t.Helper()
	ctx := context.Background()
	var o outcome
	o.completed = e.c.WaitCount(ctx, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'", len(evs), timeout)
	assert.Equal(t, len(evs), o.completed, "every joiner completed (0 lost events)")
	if o.completed < len(evs) {
		t.Logf("needs attention: %d", e.c.Count(ctx, "JmlState = 'NeedsAttention'"))
	}
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

// TestWorkerKill9 kills the worker process with SIGKILL at random points
// while joiners run, restarting it each time.
func TestWorkerKill9(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := setup(t, true)
	w := e.c.StartWorker()
	evs := hires("K", *joiners)
	done := make(chan struct{})
	go func() { defer close(done); e.c.SubmitAll(context.Background(), evs, 16) }()
	ctx := context.Background()
	killed := 0
	for killed < *kills {
		time.Sleep(time.Duration(500+int(time.Now().UnixNano()%2500)) * time.Millisecond)
		if e.c.Count(ctx, "WorkflowType = 'Joiner' AND ExecutionStatus = 'Completed'") >= len(evs) {
			break
		}
		w.Kill()
		killed++
		w = e.c.StartWorker()
	}
	<-done
	o := e.verify(t, evs, 4*time.Minute)
	_, found, err := e.c.Scan(ctx, o.passwords)
	require.NoError(t, err)
	assert.Zero(t, found, "passwords in histories or logs")
	st := e.proxy.Stats()
	report(t, "workflows=%d completed=%d faults=%d (kill -9) duplicates=%d dup_members=%d passwords_in_history=%d target_requests=%d time=%s",
		len(evs), o.completed, killed, o.duplicates, o.dupMembers, found, st.Total, time.Since(start).Round(time.Second))
}
