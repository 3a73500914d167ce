package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/workflows"
)

// chromiumPath finds Debian's chromium. In CI (CI set) a missing browser
// fails the test; elsewhere the test skips with the install command.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium: apt-get install -y chromium (./test.sh installs it when it may)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where the browser test leaves its screenshots: the
// directory in JML_SCREENSHOTS, else a new temporary one. It outlives the
// test (artifacts), and the test prints it.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("JML_SCREENSHOTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "jml-ui-screenshots-")
		require.NoError(t, err)
	} else {
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	t.Logf("screenshots: %s", dir)
	return dir
}

// browser is one headless chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	// Chromium now and then crashes while starting on a loaded CI machine
	// (seen once in .ci/run, in crashpad, before any page): that is the
	// browser, not jml, so a start is tried up to three times.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelTab := chromedp.NewContext(actx)
		if err = chromedp.Do(ctx); err == nil {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			t.Cleanup(func() { cancel(); cancelTab(); cancelAlloc() })
			return &browser{t: t, ctx: ctx, dir: screenshotDir(t)}
		}
		cancelTab()
		cancelAlloc()
		t.Logf("chromium start %d failed: %v", attempt, err)
	}
	require.NoError(t, err, "chromium did not start")
	return nil
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

func (b *browser) js(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	require.NoError(b.t, err, expr)
	return v
}

// pageText is the visible text of the page and of its frames (the UI
// renders summaries and details as Markdown in same-origin iframes).
const pageText = `document.body.innerText + "\n" + [...document.querySelectorAll("iframe")].map(f => {
	try { return f.contentDocument.body.innerText } catch (e) { return "" } }).join("\n")`

// waitText waits until the page shows every one of want; on timeout it
// fails with what the page shows.
func (b *browser) waitText(want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		text := b.js(pageText)
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return text
		}
		if time.Now().After(deadline) {
			b.screenshot("failed.png")
			b.t.Fatalf("page never showed %q; it shows:\n%s", missing, text)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// click clicks the visible element matching css whose text is text.
func (b *browser) click(css, text string) {
	b.t.Helper()
	ok := b.js(fmt.Sprintf(`(() => { const e = [...document.querySelectorAll(%q)]
		.find(e => e.innerText.trim() === %q && e.getClientRects().length > 0);
		if (!e) return "none"; e.click(); return "ok" })()`, css, text))
	require.Equal(b.t, "ok", ok, "no visible %s with text %q", css, text)
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.dir, name), png, 0o644))
}

// TestOperatorUIInBrowser is the operator's path through the embedded Web
// UI in a real browser: a joiner whose HR-portal hand-off is refused
// waits in NeedsAttention; the saved query lists it; its page says which
// step failed, the error and the retry command; once the portal is fixed,
// RetryStep sent from the UI's "Send an Update" dialog completes the run.
// The screenshots are docs/img/operator-*.png (docs/operator.md).
func TestOperatorUIInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	var healthy atomic.Bool
	var mu sync.Mutex
	var notes []string
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/notifications":
			mu.Lock()
			notes = append(notes, string(body))
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		case r.URL.Path == "/api/accounts" && !healthy.Load():
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"department Engineering is unknown to the HR portal"}`))
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"hr-E1042"}`))
		}
	}))
	defer portal.Close()

	// The dev policy with its HR portal here, without the password and
	// the bearer token: jml refuses to send a secret over plain http.
	raw, err := os.ReadFile(filepath.Join("..", "examples", "dev-policy.yaml"))
	require.NoError(t, err)
	pol := strings.NewReplacer(
		"base_url: https://127.0.0.1:8443/api", "base_url: "+portal.URL+"/api",
		`,"initial_password":"{SandboxUser.password}"`, "",
		"    auth:\n      type: bearer\n      token_env: JML_SANDBOX_TOKEN\n", "    auth: {type: none}\n",
	).Replace(string(raw))
	require.Contains(t, pol, portal.URL)
	require.NotContains(t, pol, "initial_password")
	require.Contains(t, pol, "auth: {type: none}")
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, []byte(pol), 0o600))
	q := startQuickStart(t, t.TempDir(), policyPath, "browser-hmac-secret")

	code, r := q.post(t, "hire.json", true)
	require.Equal(t, http.StatusAccepted, code, "%+v", r)
	id := r.WorkflowID
	require.Eventually(t, func() bool {
		for _, s := range q.steps(t, id) {
			if s.Name == "hrportal.handoff" && s.State == workflows.StepFailed {
				return true
			}
		}
		return false
	}, 90*time.Second, 100*time.Millisecond, "the hand-off fails for good")
	d, err := q.temporal.DescribeWorkflow(context.Background(), id, "")
	require.NoError(t, err)
	runPage := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s", q.uiURL, url.PathEscape(id), d.WorkflowExecutionMetadata.WorkflowExecution.RunID)

	b := newBrowser(t, exe)
	// 1. The saved query lists the run.
	b.do(chromedp.Navigate(q.uiURL + "/namespaces/default/workflows?query=" + url.QueryEscape(`JmlState = "NeedsAttention"`)))
	b.waitText(id, `JmlState = "NeedsAttention"`, "identity/E1042") // the identity mirrors its run
	b.screenshot("operator-list.png")

	// 2. The run page says what failed and how to resolve it.
	b.do(chromedp.Navigate(runPage + "/user-metadata"))
	page := b.waitText("NeedsAttention", "hrportal.handoff — POST /accounts (hrportal)",
		"RestBadRequest", "department Engineering is unknown to the HR portal",
		"starter retry E1042 --step hrportal.handoff", `RetryStep {"step": "hrportal.handoff"`)
	assert.Contains(t, page, "joiner for E1042, event "+"evt-2026-11-22-0001", "the static summary")
	b.screenshot("operator-run.png")

	// 3. The portal is fixed; RetryStep from the Update dialog.
	healthy.Store(true)
	b.do(chromedp.Navigate(runPage + "/history"))
	b.waitText("More Actions", "Workflow Task Completed") // rendered and live
	b.click("button", "More Actions")
	b.waitText("Send an Update")
	b.click("[role=menuitem]", "Send an Update")
	b.waitText("Single JSON payload supported.")
	b.js(`document.querySelector('dialog[open] [data-testid="update-select-button"]').click(), ""`)
	b.waitText("Re-run the failed step") // the update's description
	require.Equal(t, "ok", b.js(`(() => { const o = [...document.querySelectorAll("dialog[open] li[role=option]")]
		.find(l => l.querySelector("span")?.innerText.trim() === "RetryStep"); if (!o) return "none"; o.click(); return "ok" })()`))
	payload := `{"step": "hrportal.handoff", "reason": "portal knows Engineering now", "operator": "browser-test"}`
	b.js(`document.querySelector('dialog[open] [role=textbox][aria-label=Data]').focus(), ""`)
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: payload})
		return err
	}))
	b.waitText("portal knows Engineering now")
	b.screenshot("operator-update.png")
	b.js(`document.querySelector('dialog[open] [data-testid="confirm-modal-button"]').click(), ""`)

	res := q.wait(t, id)
	assert.Equal(t, contract.StateCompleted, res.State)
	require.Len(t, res.Decisions, 1)
	assert.Equal(t, "browser-test", res.Decisions[0].Operator)
	assert.Equal(t, "portal knows Engineering now", res.Decisions[0].Reason)
	b.do(chromedp.Navigate(runPage + "/user-metadata"))
	b.waitText("Completed", "RetryStep by browser-test: portal knows Engineering now")
	b.screenshot("operator-completed.png")

	// The Workers page names the worker: host, pid, version, build ID.
	b.do(chromedp.Navigate(q.uiURL + "/namespaces/default/task-queues/" + contract.TaskQueue))
	host, _ := os.Hostname()
	b.waitText(fmt.Sprintf("jml-worker %s on %s pid %d", version(), host, os.Getpid()))
	b.screenshot("operator-workers.png")
	require.Equal(t, "ok", b.js(`(() => { const e = [...document.querySelectorAll("button,a,[role=tab]")]
		.find(e => e.innerText.trim().startsWith("Pollers") && e.getClientRects().length > 0); if (!e) return "none"; e.click(); return "ok" })()`))
	b.waitText(buildID(version(), q.policy))

	// The alert reached the portal with a link to the run in this UI.
	mu.Lock()
	defer mu.Unlock()
	var alert string
	for _, n := range notes {
		var m map[string]string
		if json.Unmarshal([]byte(n), &m) == nil && strings.Contains(m["text"], "needs attention") {
			alert = m["text"]
		}
	}
	assert.Contains(t, alert, q.uiURL+"/namespaces/default/workflows/"+url.PathEscape(id), "alerts: %q", notes)
}
