package prodshape_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/prodshape"
)

const (
	namespace  = "default"
	uiOrigin   = "http://temporal-ui.internal:8233" // the Web UI's origin, as in docker-compose.yml
	codecToken = "prodshape-codec-token"
	hmacSecret = "prodshape-hmac-secret"
	bulkHires  = 100
	// Names that must never reach PostgreSQL in any form.
	firstName = "Quintessa"
	lastName  = "Marchbanks"
	bulkFirst = "Ysoldine"
	bulkLast  = "Vantreight"
)

// TestProductionShape runs jml the way docker-compose.yml does, as real
// processes on one machine: PostgreSQL (Debian's), the pinned Temporal
// server on it (postgres12 persistence and visibility; schemas created and
// updated by the server module's own SQL tool code), the namespace and
// search attributes registered like the compose setup job, three worker
// binaries without --dev and `starter serve` with codec keys and an HMAC
// secret, against a SCIM peer. It proves:
//   - signed hire, change and terminate events complete against the peer;
//   - the codec endpoint decodes a history payload for the UI's origin;
//   - 100 hires complete with 0 duplicate accounts while one of the three
//     workers is killed with SIGKILL mid-run;
//   - a pg_dump of both databases holds no plaintext name;
//   - the audit trail (PostgreSQL, its own database) holds every effect
//     exactly once across the SIGKILL and an outage of its database,
//     `starter audit verify` names a row edited in it, and `starter audit
//     person` shows the timeline after Temporal deleted the person's runs.
func TestProductionShape(t *testing.T) {
	if testing.Short() {
		t.Skip("production-shape test: PostgreSQL + Temporal + 4 processes (skipped with -short)")
	}
	start := time.Now()
	phase := func(name string, since time.Time) { t.Logf("timing: %-40s %6.1fs", name, time.Since(since).Seconds()) }
	defer func() { phase("total", start) }()

	work := t.TempDir()
	// The binaries build while PostgreSQL and Temporal start.
	bins := make(chan error, 1)
	go func() { bins <- buildBinaries(work) }()

	t0 := time.Now()
	pg := prodshape.StartPostgres(t)
	phase("postgresql initdb + start", t0)
	logger := prodshape.ServerLogger(t, work)
	t0 = time.Now()
	prodshape.SetupSchemas(t, pg, logger)
	phase("schemas create + update (sql tool)", t0)
	// The compose job runs on every `up`: a second run changes nothing.
	t0 = time.Now()
	prodshape.SetupSchemas(t, pg, logger)
	phase("schemas again (idempotent)", t0)
	t0 = time.Now()
	auditDSN := pg.AuditDB(t, "jml_audit")
	addr := prodshape.StartTemporal(t, pg, logger, 4)
	prodshape.SetupNamespace(t, addr, namespace)
	phase("temporal server + namespace setup", t0)

	t0 = time.Now()
	peer := scimtest.Start(t)
	phase("scim peer", t0)
	t0 = time.Now()
	if err := <-bins; err != nil {
		t.Fatalf("build worker and starter: %v", err)
	}
	phase("build worker + starter (waited)", t0)

	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	codecKeys := "prod1:" + base64.StdEncoding.EncodeToString(keyBytes)
	policyPath := filepath.Join(work, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(strings.ReplaceAll(policyYAML, "{{BASE_URL}}", peer.BaseURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{
		"TEMPORAL_ADDRESS=" + addr,
		"TEMPORAL_NAMESPACE=" + namespace,
		"JML_POLICY=" + policyPath,
		"JML_CODEC_KEYS=" + codecKeys,
		"JML_CODEC_ACTIVE_KEY=prod1",
	}

	t0 = time.Now()
	var workers []*proc
	var healthURLs []string
	for i := range 3 {
		health := freePort(t)
		healthURLs = append(healthURLs, "http://127.0.0.1:"+strconv.Itoa(health))
		w := startProc(t, work, fmt.Sprintf("worker%d", i+1), filepath.Join(work, "bin", "worker"), nil, append(common,
			"APP_SCIM_TOKEN="+peer.Token,
			"JML_HEALTH_ADDR=127.0.0.1:"+strconv.Itoa(health),
			// A killed worker's steps are retried elsewhere within seconds.
			"JML_STEP_TIMEOUT=10s",
			"JML_SESSION_HEARTBEAT=2s",
			"JML_AUDIT_DB="+auditDSN,
		))
		w.waitReady(t, "http://127.0.0.1:"+strconv.Itoa(health)+"/readyz")
		workers = append(workers, w)
	}
	intakePort := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(intakePort)
	codecBase := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	st := startProc(t, work, "starter", filepath.Join(work, "bin", "starter"), []string{"serve"}, append(common,
		"JML_INTAKE_ADDR=127.0.0.1:"+strconv.Itoa(intakePort),
		"JML_INTAKE_HMAC_SECRET="+hmacSecret,
		"JML_CODEC_ADDR="+strings.TrimPrefix(codecBase, "http://"),
		"JML_CODEC_TOKEN="+codecToken,
		"JML_CODEC_CORS_ORIGINS="+uiOrigin,
	))
	st.waitReady(t, base+"/readyz")
	phase("3 workers + starter serve ready", t0)

	// A client of our own, with the same keys, reads state as an operator would.
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// 1. Hire, change, terminate: signed events through the intake.
	t0 = time.Now()
	const emp = "P-0001"
	userName := strings.ToLower(firstName + "." + lastName + "@example.com")
	post(t, base, event("ps-hire", "hire", emp, firstName, lastName, "Engineering"))
	waitCompleted(t, c, contract.LifecycleWorkflowID("joiner", emp, "ps-hire"), 60*time.Second, workers, st)
	u := findUser(t, peer, userName)
	if u == nil || !u.Active {
		t.Fatalf("after the hire the peer has %+v for %s", u, userName)
	}
	post(t, base, event("ps-change", "change", emp, firstName, lastName, "Sales"))
	waitCompleted(t, c, contract.LifecycleWorkflowID("mover", emp, "ps-change"), 60*time.Second, workers, st)
	if u := findUser(t, peer, userName); u == nil || !strings.Contains(string(u.raw), "Sales") {
		t.Fatalf("after the change the peer has %s", u.raw)
	}
	post(t, base, event("ps-terminate", "terminate", emp, firstName, lastName, "Sales"))
	waitCompleted(t, c, contract.LifecycleWorkflowID("leaver", emp, "ps-terminate"), 60*time.Second, workers, st)
	if u := findUser(t, peer, userName); u == nil || u.Active {
		t.Fatalf("after the terminate the peer has %+v", u)
	}
	phase("hire + change + terminate", t0)
	checkAuditPerson(t, auditDSN, emp, u.ID)

	// 2. The Web UI decodes history through the starter's codec endpoint.
	checkCodecEndpoint(t, c, base, codecBase, contract.LifecycleWorkflowID("joiner", emp, "ps-hire"))

	// 3. 100 hires, three workers, one killed with SIGKILL mid-run.
	t0 = time.Now()
	// The audit database goes away as the burst starts and comes back
	// after the kill: the runs make their effects meanwhile and close
	// only once their records are in.
	pg.AuditOutage(t, "jml_audit", true)
	var posted atomic.Int32
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				post(t, base, event(fmt.Sprintf("bulk-%03d", i), "hire", fmt.Sprintf("B%03d", i), bulkName(i), bulkLast, "Engineering"))
				posted.Add(1)
			}
		})
	}
	go func() {
		for i := range bulkHires {
			jobs <- i
		}
		close(jobs)
	}()
	// Kill once the peer holds a fifth of the accounts: runs are in flight
	// on every worker.
	if !waitFor(90*time.Second, func() bool { return countUsers(t, peer, strings.ToLower(bulkFirst)) >= bulkHires/5 }) {
		t.Fatalf("no progress: %d accounts", countUsers(t, peer, strings.ToLower(bulkFirst)))
	}
	atKill := countUsers(t, peer, strings.ToLower(bulkFirst))
	t.Logf("throughput before the kill: %.1f accounts/s (8 concurrent posters)", float64(atKill)/time.Since(t0).Seconds())
	workers[0].kill9(t)
	t.Logf("killed worker1 (SIGKILL) with %d of %d accounts created, %d events posted", atKill, bulkHires, posted.Load())
	pg.AuditOutage(t, "jml_audit", false)
	wg.Wait()
	for i := range bulkHires {
		waitCompleted(t, c, contract.LifecycleWorkflowID("joiner", fmt.Sprintf("B%03d", i), fmt.Sprintf("bulk-%03d", i)), 3*time.Minute, workers[1:], st)
	}
	phase(fmt.Sprintf("%d hires, 3 workers, 1 killed", bulkHires), t0)
	t.Logf("throughput: %.1f hires/s (kill and recovery included)", float64(bulkHires)/time.Since(t0).Seconds())
	users := listUsers(t, peer, strings.ToLower(bulkFirst))
	seen := map[string]int{}
	for _, u := range users {
		seen[strings.ToLower(u.UserName)]++
	}
	for i := range bulkHires {
		name := strings.ToLower(bulkName(i) + "." + bulkLast + "@example.com")
		if seen[name] != 1 {
			t.Errorf("%s: %d accounts, want 1", name, seen[name])
		}
	}
	if len(users) != bulkHires {
		t.Errorf("the peer holds %d bulk accounts, want %d (no duplicates)", len(users), bulkHires)
	}
	if n := count(t, c, fmt.Sprintf("%s = %q", contract.SAState, contract.StateNeedsAttention)); n != 0 {
		t.Errorf("%d runs need attention", n)
	}
	// A surviving worker's /metrics: the SDK's series, and the open runs
	// counted in PostgreSQL's visibility (the series is left out when the
	// count fails).
	metrics := get(t, healthURLs[1]+"/metrics")
	for _, want := range []string{
		`jml_runs_open{kind="joiner",state="NeedsAttention"} 0`,
		`jml_runs_open{kind="joiner",state="Running"} 0`,
		"temporal_workflow_completed_total{",
		"jml_vault_entries ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("worker2 /metrics lacks %s", want)
		}
	}
	checkAuditBulk(t, auditDSN, users)
	checkAuditVerify(t, pg, work, auditDSN)

	// 4. No name reached PostgreSQL, in clear or as bytea hex.
	t0 = time.Now()
	for _, db := range []string{prodshape.TemporalDB, prodshape.VisibilityDB} {
		dump := pg.Dump(t, db)
		t.Logf("pg_dump %s: %d bytes", db, len(dump))
		lower := bytes.ToLower(dump)
		for _, name := range []string{firstName, lastName, bulkFirst, bulkLast} {
			for _, form := range []string{strings.ToLower(name), hex.EncodeToString([]byte(name)), hex.EncodeToString([]byte(strings.ToLower(name)))} {
				if bytes.Contains(lower, []byte(form)) {
					t.Errorf("pg_dump of %s contains %q (%s)", db, form, name)
				}
			}
		}
		if db == prodshape.TemporalDB {
			// The scan sees inside history blobs: step names are there, in hex.
			if !bytes.Contains(lower, []byte(hex.EncodeToString([]byte("app.sync_identity")))) {
				t.Errorf("pg_dump of %s: the step name is not found in hex either; is the scan blind?", db)
			}
		}
		if !bytes.Contains(dump, []byte(emp)) {
			t.Errorf("pg_dump of %s does not contain the employee ID %s; is the scan blind?", db, emp)
		}
	}
	phase("pg_dump scan", t0)

	// 5. Temporal forgets the person's runs; the audit trail does not.
	checkAuditAfterDelete(t, c, work, auditDSN, emp, u.ID)
}

// get returns the body of a GET that answers 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}

func bulkName(i int) string { return fmt.Sprintf("%s%c%c", bulkFirst, 'a'+i/26, 'a'+i%26) }

const policyYAML = `# The production-shape test's policy: one SCIM application.
targets:
  app:
    type: scim
    base_url: {{BASE_URL}}
    token_env: APP_SCIM_TOKEN
required_attributes: [first_name, last_name, department]
common_attributes:
  user_name: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@example.com'
  email: '{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@example.com'
  given_name: '{first_name}'
  family_name: '{last_name}'
  display_name: '{first_name} {last_name}'
  department: '{department}'
password:
  length: 20
  lower: true
  upper: true
  digits: true
  symbols: true
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate
        attributes:
          employee_number: '{employee_id}'
    - manage_relationships:
        target: app
        create_missing: true
        add: ['everyone', 'dept-{department | LOWER_SNAKE_CASE}']
mover:
  steps:
    - sync_identity:
        target: app
        attributes:
          employee_number: '{employee_id}'
    - manage_relationships:
        target: app
        create_missing: true
        add: ['everyone', 'dept-{department | LOWER_SNAKE_CASE}']
leaver:
  steps:
    - deprovision_identity:
        target: app
        remove_groups: true
safety:
  max_destructive_per_hour: 1000
`

func event(id, typ, emp, first, last, dept string) []byte {
	b, _ := json.Marshal(map[string]any{
		"event_id":     id,
		"type":         typ,
		"effective_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		"employee": map[string]string{
			"employee_id": emp, "first_name": first, "last_name": last, "department": dept, "country_code": "US",
		},
		"source": "prodshape",
	})
	return b
}

// post sends one HMAC-signed event to the intake; 202 is the answer
// expected. A 503 or a lost connection is retried, as an HR system would;
// the resend of an event that did get in is then a 200 duplicate.
func post(t *testing.T, base string, body []byte) {
	t.Helper()
	var last string
	for attempt := range 10 {
		ts, sig := intake.Sign([]byte(hmacSecret), time.Now(), body)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(intake.HeaderTimestamp, ts)
		req.Header.Set(intake.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return
			}
			if attempt > 0 && resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"duplicate":true`)) {
				t.Logf("POST /v1/events: resent after %s: 200 duplicate", last)
				return
			}
			last = resp.Status + ": " + string(b)
			if resp.StatusCode != http.StatusServiceUnavailable {
				break
			}
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	t.Errorf("POST /v1/events: %s", last)
}

// waitCompleted waits for a lifecycle run to complete with JmlState
// Completed; a run that needs an operator fails the test at once.
func waitCompleted(t *testing.T, c client.Client, id string, d time.Duration, procs []*proc, st *proc) {
	t.Helper()
	var last string
	done := false
	ok := waitFor(d, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		desc, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			last = err.Error()
			return false
		}
		state := ""
		if p := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[contract.SAState]; p != nil {
			_ = converter.GetDefaultDataConverter().FromPayload(p, &state)
		}
		status := desc.GetWorkflowExecutionInfo().GetStatus()
		last = fmt.Sprintf("status %s, %s %q", status, contract.SAState, state)
		if state == contract.StateNeedsAttention {
			return true
		}
		done = status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED && state == contract.StateCompleted
		return status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	})
	if !ok || !done {
		for _, p := range append(procs, st) {
			p.dumpLog(t)
		}
		t.Fatalf("%s did not complete: %s", id, last)
	}
}

func count(t *testing.T, c client.Client, query string) int64 {
	t.Helper()
	resp, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace, Query: query})
	if err != nil {
		t.Fatalf("count %s: %v", query, err)
	}
	return resp.Count
}

// checkCodecEndpoint: the joiner's input is encrypted in history, and the
// starter's /codec/decode on its codec listener turns it back into the
// employee for the Web UI's origin (CORS preflight included) with the token;
// the intake's listener has no codec.
func checkCodecEndpoint(t *testing.T, c client.Client, base, codecBase, workflowID string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	in := ev.GetWorkflowExecutionStartedEventAttributes().GetInput()
	if len(in.GetPayloads()) == 0 {
		t.Fatalf("%s started without input", workflowID)
	}
	if enc := string(in.Payloads[0].Metadata["encoding"]); enc != "binary/encrypted" {
		t.Fatalf("history payload encoding %q, want binary/encrypted", enc)
	}
	if bytes.Contains(in.Payloads[0].Data, []byte(firstName)) {
		t.Fatal("history holds the name in clear")
	}
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: in.Payloads})
	if err != nil {
		t.Fatal(err)
	}
	for url, auth := range map[string]string{base + "/codec/decode": "Bearer " + codecToken, codecBase + "/codec/decode": ""} {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: http.StatusNotFound, false: http.StatusUnauthorized}[auth != ""]; resp.StatusCode != want {
			t.Fatalf("POST %s (auth %t): %s, want %d", url, auth != "", resp.Status, want)
		}
	}
	pre, _ := http.NewRequest(http.MethodOptions, codecBase+"/codec/decode", nil)
	pre.Header.Set("Origin", uiOrigin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("codec preflight: %s, Access-Control-Allow-Origin %q", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req, _ := http.NewRequest(http.MethodPost, codecBase+"/codec/decode", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+codecToken)
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", namespace)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Fatalf("codec decode: %s, Access-Control-Allow-Origin %q: %s", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"), got)
	}
	var dec commonpb.Payloads
	if err := protojson.Unmarshal(got, &dec); err != nil {
		t.Fatal(err)
	}
	if len(dec.Payloads) == 0 || !bytes.Contains(dec.Payloads[0].Data, []byte(firstName)) {
		t.Fatalf("codec decode did not give back the employee: %s", got)
	}
}

// scimUser is the part of a SCIM User the test reads.
type scimUser struct {
	ID       string `json:"id"`
	UserName string `json:"userName"`
	Active   bool   `json:"active"`
	raw      json.RawMessage
}

func scimGet(t *testing.T, peer *scimtest.Peer, filter string, startIndex int) ([]scimUser, int) {
	t.Helper()
	q := url.Values{"filter": {filter}, "count": {"100"}, "startIndex": {strconv.Itoa(startIndex)}}
	req, _ := http.NewRequest(http.MethodGet, peer.BaseURL+"/Users?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+peer.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lr struct {
		TotalResults int               `json:"totalResults"`
		Resources    []json.RawMessage `json:"Resources"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
		t.Fatal(err)
	}
	var out []scimUser
	for _, r := range lr.Resources {
		var u scimUser
		_ = json.Unmarshal(r, &u)
		u.raw = r
		out = append(out, u)
	}
	return out, lr.TotalResults
}

func findUser(t *testing.T, peer *scimtest.Peer, userName string) *scimUser {
	t.Helper()
	users, _ := scimGet(t, peer, fmt.Sprintf("userName eq %q", userName), 1)
	if len(users) != 1 {
		return nil
	}
	return &users[0]
}

func countUsers(t *testing.T, peer *scimtest.Peer, prefix string) int {
	t.Helper()
	_, n := scimGet(t, peer, fmt.Sprintf("userName sw %q", prefix), 1)
	return n
}

func listUsers(t *testing.T, peer *scimtest.Peer, prefix string) []scimUser {
	t.Helper()
	var all []scimUser
	for {
		page, total := scimGet(t, peer, fmt.Sprintf("userName sw %q", prefix), len(all)+1)
		all = append(all, page...)
		if len(page) == 0 || len(all) >= total {
			return all
		}
	}
}

// buildBinaries builds ./worker and ./starter as CI and the Dockerfile do.
func buildBinaries(work string) error {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(work, "bin")+"/", "./worker", "./starter")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// proc is one jml process, its output in a log file.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

func startProc(t *testing.T, work, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(work, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "TMPDIR=" + os.TempDir()}, env...)
	p.cmd.Dir = work
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

func (p *proc) waitReady(t *testing.T, url string) {
	t.Helper()
	ok := waitFor(60*time.Second, func() bool {
		select {
		case <-p.done:
			return false
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		p.dumpLog(t)
		t.Fatalf("%s not ready at %s", p.name, url)
	}
}

func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func (p *proc) dumpLog(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	t.Logf("%s log (last 6 KiB):\n%s", p.name, tail(b, 6<<10))
}
