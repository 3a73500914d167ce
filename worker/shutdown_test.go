package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/workflows"
)

// slowPortal holds every request until released, and tells which employees
// have a request in flight.
type slowPortal struct {
	mu       sync.Mutex
	inFlight map[string]bool
	arrivals int
	arrived  chan struct{}
	release  chan struct{}
}

func (s *slowPortal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	s.mu.Lock()
	s.inFlight[id] = true
	s.arrivals++
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
		w.WriteHeader(http.StatusCreated)
	case <-r.Context().Done():
	}
	s.mu.Lock()
	delete(s.inFlight, id)
	s.mu.Unlock()
}

// waitInFlight waits until n employees have a request in flight, or, with
// since > 0, until a request arrived after the since-th.
func (s *slowPortal) waitInFlight(t *testing.T, n, since int) int {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		s.mu.Lock()
		got, arrivals := len(s.inFlight), s.arrivals
		s.mu.Unlock()
		if (since == 0 && got >= n) || (since > 0 && arrivals > since && got > 0) {
			return arrivals
		}
		select {
		case <-s.arrived:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d runs reached the portal", got, n)
		}
	}
}

// waitExit waits for the process to exit after a signal. The deadline only
// keeps a hung worker from hanging the test; it is far above the grace.
func (p *devProc) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(3 * time.Minute):
		t.Fatalf("worker did not exit:\n%s", p.output())
		return -1
	}
}

// TestSIGTERMWithRunsInFlight: with 10 joiners each holding a request to a
// slow target, SIGTERM makes the worker exit and free its ports (a restart
// on the same ports succeeds); with a long grace a second SIGTERM exits at
// once; the runs complete on the next worker.
func TestSIGTERMWithRunsInFlight(t *testing.T) {
	portal := &slowPortal{inFlight: map[string]bool{}, arrived: make(chan struct{}, 1), release: make(chan struct{})}
	srv := httptest.NewServer(portal)
	defer srv.Close()
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(`
targets:
  portal: {type: rest, base_url: `+srv.URL+`, auth: {type: none}}
joiner:
  steps:
    - name: portal.create
      send_rest_request: {target: portal, method: POST, url: '/accounts?id={employee_id}', body: '{}'}
`), 0o600))

	dataDir := t.TempDir()
	port, uiPort, intakePort, healthPort := peertest.FreePort(t), peertest.FreePort(t), peertest.FreePort(t), peertest.FreePort(t)
	addrs := []string{}
	for _, p := range []int{port, uiPort, intakePort, healthPort} {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	start := func(grace string) *devProc {
		t.Helper()
		// A short step timeout: the steps the stopped worker abandoned are
		// retried soon on the next one.
		p, _, _ := startDevOn(t, dataDir, port, uiPort, "--intake-addr", addrs[2], "--health-addr", addrs[3],
			"--policy", policyPath, "--step-timeout", "20s", "--shutdown-grace", grace)
		return p
	}

	p := start("1s")
	c, err := client.Dial(client.Options{HostPort: addrs[0], Namespace: "default"})
	require.NoError(t, err)
	const runs = 10
	ids := make([]string, runs)
	for i := range ids {
		ev := hr.Event{EventID: fmt.Sprintf("evt-%d", i), Type: hr.Hire, EffectiveAt: time.Now().Add(-time.Hour),
			Employee: map[string]string{"employee_id": fmt.Sprintf("E%d", i), "first_name": "Ada", "last_name": "L"}}
		acc, err := intake.Submit(context.Background(), c, ev)
		require.NoError(t, err)
		ids[i] = acc.WorkflowID
	}
	c.Close()
	seen := portal.waitInFlight(t, runs, 0)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.waitExit(t)
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		require.NoError(t, err, "port %s is free after the worker exited", a)
		ln.Close()
	}

	// The next worker gets the retried steps; a long grace would wait for
	// them, a second SIGTERM does not.
	p = start("10m")
	portal.waitInFlight(t, 1, seen)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	// Two signals sent together arrive as one: wait for the first to land.
	require.Eventually(t, func() bool { return strings.Contains(p.output(), "Stopping:") }, time.Minute, 50*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 1, p.waitExit(t), p.output())
	assert.Contains(t, p.output(), "second signal")

	close(portal.release)
	p = start("10s")
	c, err = client.Dial(client.Options{HostPort: addrs[0], Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var res workflows.LifecycleResult
		require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &res), id)
		cancel()
		assert.Equal(t, contract.StateCompleted, res.State, id)
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.waitExit(t), "nothing in flight: a clean exit\n%s", p.output())
}
