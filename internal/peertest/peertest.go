// Package peertest starts real third-party peers (npm packages pinned under
// testdata/peers/<name>) for tests: it installs them on first use, runs them
// on 127.0.0.1 on a free port, and stops them when the test ends.
package peertest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jml-dev/jml/internal/freeport"
)

// RepoRoot is the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// PeerDir is testdata/peers/<name> under the module root.
func PeerDir(t testing.TB, name string) string {
	return filepath.Join(RepoRoot(t), "testdata", "peers", name)
}

var installMu sync.Mutex

// EnsureNPM runs `npm ci` in dir when its node_modules is missing. Across
// processes, a lock file keeps parallel test binaries from racing.
func EnsureNPM(t testing.TB, dir string) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("peertest: lock %s: %v", dir, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("peertest: flock: %v", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peertest: npm ci in %s: %v\n%s", dir, err, out)
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	return p
}

// Process is a running peer.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder
}

// Output is everything the peer printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Start runs name with args in dir and waits until a line of its output
// matches ready (or the timeout passes). The process is killed at cleanup.
func Start(t testing.TB, dir string, ready *regexp.Regexp, timeout time.Duration, name string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("peertest: start %s: %v", name, err)
	}
	pw.Close()
	p := &Process{cmd: cmd, done: make(chan struct{})}
	readyc := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if ready.MatchString(line) {
				once.Do(func() { close(readyc) })
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { p.Stop() })
	select {
	case <-readyc:
		return p
	case <-p.done:
		t.Fatalf("peertest: %s exited before ready:\n%s", name, p.Output())
	case <-time.After(timeout):
		t.Fatalf("peertest: %s not ready after %s:\n%s", name, timeout, p.Output())
	}
	return p
}

// Stop kills the peer's process group and waits for it.
func (p *Process) Stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// WaitTCP polls addr until it accepts a connection or ctx ends.
func WaitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peertest: %s never accepted a connection: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
