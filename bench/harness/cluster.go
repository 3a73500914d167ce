// Package harness drives jml under load for the benchmark (go run ./bench)
// and the fault suite (faults/): an embedded Temporal server (devstack, SQLite
// file or memory; or the pinned server on a private PostgreSQL cluster, as
// the production-shape test runs it), real worker processes built from ./worker, proxies in front
// of the target peers that count, rate-limit or break requests, and an HR
// portal that checks each password hand-off against the peer.
//
// Functions take a testing.TB so the peers' own helpers (scimtest,
// oktatest) work unchanged; the bench program passes a small adapter.
package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/devstack"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/internal/prodshape"
)

// Databases a Cluster's server can run on.
const (
	DBFile     = "file"     // SQLite file (devstack)
	DBMemory   = "memory"   // SQLite in memory (devstack)
	DBPostgres = "postgres" // a private PostgreSQL cluster (prodshape)
)

// Cluster is one embedded Temporal server, a client on it, and the worker
// processes started against it.
type Cluster struct {
	TB     testing.TB
	Stack  *devstack.Stack // nil on PostgreSQL
	Client client.Client
	Codec  converter.PayloadCodec
	Dir    string
	// Addr and Namespace are the frontend's address and the namespace.
	Addr, Namespace string
	// DBCPU is the processor time the database server has used so far
	// (PostgreSQL's processes; nil for SQLite, which runs in this process).
	DBCPU func() time.Duration

	opts devstack.Options
	env  []string // worker environment: Temporal address, codec keys, policy
	// httpClient is the in-process workers' REST client (nil: default).
	httpClient *http.Client
	mu         sync.Mutex
	live       []*Worker
}

// StartCluster boots a dev server (file-backed under a temp dir, or in
// memory) with a fresh payload-codec key, and dials it.
func StartCluster(tb testing.TB, file bool) *Cluster {
	tb.Helper()
	if file {
		return StartClusterDB(tb, DBFile)
	}
	return StartClusterDB(tb, DBMemory)
}

// StartClusterDB boots a server on db (DBFile, DBMemory: the dev server;
// DBPostgres: the pinned server on a fresh private PostgreSQL cluster with
// 4 history shards, as the production-shape test) with a fresh
// payload-codec key, and dials it.
func StartClusterDB(tb testing.TB, db string) *Cluster {
	tb.Helper()
	dir := tb.TempDir()
	var key [32]byte
	_, _ = rand.Read(key[:])
	keys := "bench:" + base64.StdEncoding.EncodeToString(key[:])
	pc, err := codec.New(map[string][]byte{"bench": key[:]}, "bench")
	if err != nil {
		tb.Fatalf("harness: codec: %v", err)
	}
	c := &Cluster{TB: tb, Codec: pc, Dir: dir}
	switch db {
	case DBFile, DBMemory:
		c.opts = devstack.Options{DataDir: dir, DBFile: devstack.Memory, UIPort: -1}
		if db == DBFile {
			c.opts.DBFile = "temporal.db"
		}
		c.startServer()
	case DBPostgres:
		pg := prodshape.StartPostgres(tb)
		logger := prodshape.ServerLogger(tb, dir)
		prodshape.SetupSchemas(tb, pg, logger)
		c.Addr, c.Namespace = prodshape.StartTemporal(tb, pg, logger, 4), "default"
		c.DBCPU = pg.CPU
		prodshape.SetupNamespace(tb, c.Addr, c.Namespace)
	default:
		tb.Fatalf("harness: database %q: want %s, %s or %s", db, DBFile, DBMemory, DBPostgres)
	}
	o := client.Options{Logger: sdklog.NewStructuredLogger(discardLogger())}
	codec.Apply(&o, pc)
	if c.Client, err = c.Dial(o); err != nil {
		tb.Fatalf("harness: dial: %v", err)
	}
	tb.Cleanup(c.Client.Close)
	c.env = []string{
		"TEMPORAL_ADDRESS=" + c.Addr,
		"TEMPORAL_NAMESPACE=" + c.Namespace,
		codec.EnvKeys + "=" + keys,
	}
	return c
}

// Dial connects a client with options o to the cluster's server.
func (c *Cluster) Dial(o client.Options) (client.Client, error) {
	o.HostPort, o.Namespace = c.Addr, c.Namespace
	return client.Dial(o)
}

func (c *Cluster) startServer() {
	st, err := devstack.Start(context.Background(), c.opts)
	if err != nil {
		c.TB.Fatalf("harness: start dev server: %v", err)
	}
	c.Stack = st
	c.Addr, c.Namespace = st.FrontendAddr, st.Namespace
	// The restarted server keeps the frontend port so clients and workers
	// reconnect without being told.
	_, port, _ := strings.Cut(st.FrontendAddr, ":")
	c.opts.FrontendPort, _ = strconv.Atoi(port)
	c.TB.Cleanup(st.Stop)
}

// RestartServer stops the dev server, waits down, and starts it again on
// the same database file and frontend port.
func (c *Cluster) RestartServer(down time.Duration) {
	c.TB.Helper()
	if c.Stack == nil {
		c.TB.Fatalf("harness: RestartServer: only the dev server restarts")
	}
	c.Stack.Stop()
	time.Sleep(down)
	c.startServer()
}

// Trust makes the cluster's workers trust the portal's certificate:
// worker processes get it as their only root (SSL_CERT_FILE), in-process
// workers the portal's client.
func (c *Cluster) Trust(p *Portal) {
	c.env = append(c.env, "SSL_CERT_FILE="+p.CertFile)
	c.httpClient = p.Client
}

// WorkerEnv adds variables to the environment of workers started from now
// on (later values win).
func (c *Cluster) WorkerEnv(kv ...string) { c.env = append(c.env, kv...) }

// SetPolicy writes the policy the next workers load; env adds variables
// (target tokens) to their environment.
func (c *Cluster) SetPolicy(yaml string, env ...string) {
	c.TB.Helper()
	path := filepath.Join(c.Dir, fmt.Sprintf("policy-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		c.TB.Fatalf("harness: write policy: %v", err)
	}
	c.env = append(c.env, "JML_POLICY="+path)
	c.env = append(c.env, env...)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// WorkerBin builds ./worker once per process: the harness runs the binary
// users run, so kill -9 and RSS are real. JML_BENCH_WORKER names a binary
// to run instead (comparing two builds on the same load).
func WorkerBin(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("JML_BENCH_WORKER"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jml-bench-worker")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "worker")
		cmd := exec.Command("go", "build", "-o", binPath, "./worker")
		cmd.Dir = peertest.RepoRoot(tb)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./worker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatalf("harness: %v", buildErr)
	}
	return binPath
}

// Worker is a running worker process.
type Worker struct {
	cmd  *exec.Cmd
	Log  string // stderr (zap JSON logs) of the process
	done chan struct{}
}

// StartWorker runs the worker binary against the cluster with the current
// policy and waits for its "Ready." line.
func (c *Cluster) StartWorker() *Worker {
	c.TB.Helper()
	cmd := exec.Command(WorkerBin(c.TB), "--health-addr", "")
	cmd.Dir = peertest.RepoRoot(c.TB)
	cmd.Env = append(os.Environ(), c.env...)
	logPath := filepath.Join(c.Dir, fmt.Sprintf("worker-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		c.TB.Fatalf("harness: worker log: %v", err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.TB.Fatalf("harness: %v", err)
	}
	if err := cmd.Start(); err != nil {
		c.TB.Fatalf("harness: start worker: %v", err)
	}
	w := &Worker{cmd: cmd, Log: logPath, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(w.done)
		defer logf.Close()
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Ready.") {
				once.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
	}()
	c.TB.Cleanup(w.Kill)
	select {
	case <-ready:
	case <-w.done:
		b, _ := os.ReadFile(logPath)
		c.TB.Fatalf("harness: worker exited before ready:\n%s", b)
	case <-time.After(60 * time.Second):
		c.TB.Fatalf("harness: worker not ready after 60s")
	}
	c.mu.Lock()
	c.live = append(c.live, w)
	c.mu.Unlock()
	return w
}

// Stop sends SIGTERM (the worker's bounded shutdown, which also finishes
// a --cpuprofile) and waits for the process to go, at most a minute.
func (w *Worker) Stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(time.Minute):
	}
}

// Pid is the worker's process ID.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Kill sends SIGKILL (kill -9) and waits for the process to go.
func (w *Worker) Kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
	}
}

// Exited reports whether the process has ended.
func (w *Worker) Exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// PeakRSS is the process's resident-set high-water mark in bytes (VmHWM),
// 0 when it cannot be read.
func (w *Worker) PeakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// CPU is the processor time (user and system) the worker process has
// used so far; 0 when it cannot be read.
func (w *Worker) CPU() time.Duration { return ProcessCPU(w.Pid()) }

// ProcessCPU is the processor time (user and system) process pid has used
// so far, from /proc; 0 when it cannot be read.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Logs returns everything the cluster's workers logged.
func (c *Cluster) Logs() string {
	var b strings.Builder
	matches, _ := filepath.Glob(filepath.Join(c.Dir, "worker-*.log"))
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		b.Write(data)
	}
	return b.String()
}
