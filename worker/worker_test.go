package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/internal/peertest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// workerBin builds the worker once per test binary: the tests drive the real
// executable so flags, exit codes and signals are what a user gets.
func workerBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jml-worker-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "worker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

type devProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	lines  chan string
	exited chan error
}

func (p *devProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startDev runs `worker --dev` on free ports and waits for "Ready.".
func startDev(t *testing.T, dataDir string, extra ...string) (*devProc, string, string) {
	t.Helper()
	return startDevEnv(t, dataDir, nil, extra...)
}

// startDevEnv is startDev with extra environment variables.
func startDevEnv(t *testing.T, dataDir string, env []string, extra ...string) (*devProc, string, string) {
	t.Helper()
	return startDevOnEnv(t, dataDir, peertest.FreePort(t), peertest.FreePort(t), env, append([]string{"--intake-addr", "127.0.0.1:0"}, extra...)...)
}

// startDevOn is startDev on given frontend and UI ports.
func startDevOn(t *testing.T, dataDir string, port, uiPort int, extra ...string) (*devProc, string, string) {
	t.Helper()
	return startDevOnEnv(t, dataDir, port, uiPort, nil, extra...)
}

func startDevOnEnv(t *testing.T, dataDir string, port, uiPort int, env []string, extra ...string) (*devProc, string, string) {
	t.Helper()
	args := append([]string{"--dev", "--data-dir", dataDir,
		"--port", fmt.Sprint(port), "--ui-port", fmt.Sprint(uiPort)}, extra...)
	cmd := exec.Command(workerBin(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(append(os.Environ(), "JML_POLICY="), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	p := &devProc{cmd: cmd, lines: make(chan string, 100), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, "Ready.") {
				return p, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", uiPort)
			}
		case err := <-p.exited:
			t.Fatalf("worker --dev exited early (%v):\n%s", err, p.output())
		case <-deadline:
			t.Fatalf("worker --dev not ready:\n%s", p.output())
		}
	}
}

// interrupt sends SIGINT and returns the exit code and how long it took.
func (p *devProc) interrupt(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not exit after SIGINT:\n%s", p.output())
		return -1, 0
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd)
}

func TestDevModeServesUIAndFrontendAndSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	p, frontend, ui := startDev(t, dataDir)
	assert.Contains(t, p.output(), ui, "the UI address is printed")
	assert.Contains(t, p.output(), "/v1/events", "the intake address is printed")

	resp, err := http.Get(ui + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, strings.ToLower(string(body)), "<html")

	c, err := client.Dial(client.Options{HostPort: frontend, Namespace: "default"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A workflow on a queue nobody polls: it only has to exist in the file.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "restart-probe", TaskQueue: "nobody"}, "Probe")
	require.NoError(t, err)
	c.Close()

	code, took := p.interrupt(t)
	assert.Equal(t, 0, code, p.output())
	t.Logf("Ctrl-C exited in %v", took) // the bound is TestSIGTERMWithRunsInFlight's grace, not a timing here
	assert.FileExists(t, filepath.Join(dataDir, "temporal.db"))

	_, frontend, _ = startDev(t, dataDir)
	c, err = client.Dial(client.Options{HostPort: frontend, Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, "restart-probe", "")
	require.NoError(t, err, "the restarted dev server still knows the earlier workflow")
	assert.Equal(t, run.GetRunID(), desc.WorkflowExecutionInfo.Execution.RunId)
}

func TestDevModeMemoryDB(t *testing.T) {
	dataDir := t.TempDir()
	p, frontend, _ := startDev(t, dataDir, "--dev-db", ":memory:")
	c, err := client.Dial(client.Options{HostPort: frontend, Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default"})
	require.NoError(t, err)
	code, _ := p.interrupt(t)
	assert.Equal(t, 0, code)
	assert.NoFileExists(t, filepath.Join(dataDir, "temporal.db"))
}

func TestBadInputOneLineExit2(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	readOnly := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.Mkdir(readOnly, 0o500))
	fileNotDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(fileNotDir, []byte("x"), 0o600))

	tests := []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"unknown flag", []string{"--nope"}, regexp.MustCompile(`flag provided but not defined: -nope`)},
		{"stray argument", []string{"--dev", "extra"}, regexp.MustCompile(`unexpected argument "extra"`)},
		{"port in use", []string{"--dev", "--dev-db", ":memory:", "--port", fmt.Sprint(busyPort)}, regexp.MustCompile(`port in use: 127\.0\.0\.1:\d+`)},
		{"data dir is a file", []string{"--dev", "--data-dir", filepath.Join(fileNotDir, "sub")}, regexp.MustCompile(`data dir .*not a directory`)},
		{"missing policy", []string{"--dev", "--dev-db", ":memory:", "--policy", "/nonexistent/policy.yaml"}, regexp.MustCompile(`policy /nonexistent/policy\.yaml`)},
	}
	if os.Geteuid() != 0 { // root can write anywhere
		tests = append(tests, struct {
			name string
			args []string
			want *regexp.Regexp
		}{"read-only data dir", []string{"--dev", "--data-dir", readOnly}, regexp.MustCompile(`not writable`)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(workerBin(t), tt.args...)
			cmd.Dir = repoRoot(t)
			cmd.Env = append(os.Environ(), "JML_POLICY=")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "output: %s", out)
			assert.Equal(t, 2, ee.ExitCode(), "output: %s", out)
			assert.Regexp(t, tt.want, string(out))
			assert.NotContains(t, string(out), "goroutine ", "no stack trace")
			assert.NotContains(t, string(out), "panic", "no panic")
		})
	}
}

// TestDevModeWiresCodecIntoUI: with payload keys set, the embedded Web UI is
// told to decode through the codec endpoint, which has its own listener (the
// intake's answers 404) and answers the UI's origin, and only that one.
func TestDevModeWiresCodecIntoUI(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	healthAddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	p, _, ui := startDevEnv(t, t.TempDir(), []string{"JML_CODEC_KEYS=k1:" + key, "JML_CODEC_ACTIVE_KEY=k1"}, "--dev-db", ":memory:",
		"--health-addr", healthAddr)
	// The start-up lines say where the health checks and metrics are.
	assert.Contains(t, p.output(), "Health, metrics:   http://"+healthAddr+"/healthz, /readyz, /metrics")
	m := regexp.MustCompile(`Codec endpoint:\s+(http://\S+/codec)`).FindStringSubmatch(p.output())
	require.NotNil(t, m, p.output())
	codecURL := m[1]
	intake := regexp.MustCompile(`HR event intake:\s+http://(\S+)/v1/events`).FindStringSubmatch(p.output())
	require.NotNil(t, intake, p.output())
	require.NotContains(t, codecURL, intake[1])

	resp, err := http.Get(ui + "/api/v1/settings")
	require.NoError(t, err)
	var settings struct {
		Codec struct{ Endpoint string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&settings))
	resp.Body.Close()
	assert.Equal(t, codecURL, settings.Codec.Endpoint)

	body := `{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"ImhpIg=="}]}`
	req, err := http.NewRequest(http.MethodPost, codecURL+"/encode", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", ui)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(out))
	assert.Equal(t, ui, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, string(out), base64.StdEncoding.EncodeToString([]byte("binary/encrypted")))

	for url, origin := range map[string]string{
		"http://" + intake[1] + "/codec/encode": ui,                     // the intake's listener has no codec
		codecURL + "/encode":                    "https://evil.example", // nor any origin but the UI's
	} {
		req, err = http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if origin == ui {
			assert.Equal(t, http.StatusNotFound, resp.StatusCode, url)
		}
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), url)
	}
	code, _ := p.interrupt(t)
	assert.Equal(t, 0, code)
}
