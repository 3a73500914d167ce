package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// syncStack is a real Temporal server, a worker with the real activities
// and the real SCIM connector against a SCIMMY peer preloaded with users
// seed00001…, and a directory of identities whose attributes render to
// exactly those users.
type syncStack struct {
	c    client.Client
	peer *scimtest.Peer
	dir  activities.StaticDirectory
}

func seedIdentity(i int) activities.IdentityRecord {
	return activities.IdentityRecord{
		EmployeeID: fmt.Sprintf("E%05d", i),
		Status:     contract.StatusActive,
		Attributes: map[string]string{
			"username": fmt.Sprintf("seed%05d", i),
			"email":    fmt.Sprintf("seed%d@example.com", i),
			"display":  fmt.Sprintf("Seed %d", i), // not continuously synced
		},
	}
}

func syncPolicy(peer *scimtest.Peer) *policy.Policy {
	return &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim", BaseURL: peer.BaseURL}},
		Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{
			Target: "app", CreateAllowed: true,
			Attributes: map[string]string{
				"user_name":           "{username}",
				"email":               "{email | LOWER}",
				"title":               "{title}",  // empty for everyone: null == empty
				"phone_numbers.work":  "{mobile}", // multi-valued, by type
				"display_name":        "{display}",
				"external_id":         "{UUID}", // never the same twice: not synced
				"nick_name":           "{username | UPPER}",
				"urn_myvendor_unused": "{OktaUser.id}", // another step's output: not synced
			},
			NotContinuouslySynced: []string{"display_name", "nick_name"},
		}}}},
		AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"app"}, PageSize: 200},
	}
}

func newSyncStack(t testing.TB, users int) *syncStack {
	t.Helper()
	return newSyncStackWith(t, users, func(c *scim.Client) any { return c })
}

// newSyncStackWith lets a test wrap the SCIM connector.
func newSyncStackWith(t testing.TB, users int, wrap func(*scim.Client) any) *syncStack {
	t.Helper()
	s := &syncStack{peer: scimtest.Start(t, scimtest.WithUsers(users))}
	for i := 1; i <= users; i++ {
		s.dir = append(s.dir, seedIdentity(i))
	}
	ctx := context.Background()
	conn, err := scim.New(ctx, scim.Config{BaseURL: s.peer.BaseURL, Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	s.c = temporalServer(t).GetDefaultClient()
	acts := activities.New(activities.Config{
		Policy:    syncPolicy(s.peer),
		Targets:   map[string]any{"app": wrap(conn)},
		Directory: s.dir,
		Client:    s.c,
	})
	w := worker.New(s.c, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return s
}

// saveHistory records a history for TestReplay when JML_UPDATE_HISTORIES
// is set (JML_UPDATE_HISTORIES=1 go test ./workflows -run 'AttributeSyncAgainstSCIM|PasswordSyncGroup').
func saveHistory(t testing.TB, c client.Client, workflowID, name string) {
	t.Helper()
	if os.Getenv("JML_UPDATE_HISTORIES") == "" {
		return
	}
	var h historypb.History
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("testdata", name), b, 0o644))
}

// temporalServer starts a real server for a test or a benchmark.
func temporalServer(t testing.TB) *temporaltest.TestServer {
	if tt, ok := t.(*testing.T); ok {
		return temporaltest.NewServer(temporaltest.WithT(tt))
	}
	ts := temporaltest.NewServer()
	t.Cleanup(ts.Stop)
	return ts
}

func (s *syncStack) run(t testing.TB, id string, in workflows.AttributeSyncInput) workflows.AttributeSyncResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.peer.Reset()
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
		contract.AttributeSyncWorkflowName, in)
	require.NoError(t, err)
	var res workflows.AttributeSyncResult
	require.NoError(t, run.Get(ctx, &res))
	return res
}

func TestAttributeSyncAgainstSCIM(t *testing.T) {
	const n = 1000
	s := newSyncStack(t, n)
	// A leaver keeps an account the sync must not touch, even when HR's
	// attributes for them change.
	s.dir[n-1].Status = contract.StatusDeprovisioned
	s.dir[n-1].Attributes["email"] = "gone@example.com"

	// In sync: one read per page of 200, nothing written, across several
	// continued-as-new executions (one page per chunk, two chunks each).
	res := s.run(t, contract.AttributeSyncScheduleID+"-1", workflows.AttributeSyncInput{MaxPages: 1, ChunksPerRun: 2})
	assert.Empty(t, s.peer.Writes())
	assert.Equal(t, n/200, s.peer.Requests(), "ceil(N/page size) reads")
	assert.Equal(t, n-1, res.IdentitiesChecked)
	assert.Zero(t, res.AttributesWritten)
	assert.Zero(t, res.Failures)
	assert.Zero(t, res.Unmatched)
	assert.Equal(t, n/200, res.PagesRead)

	// Ten identities change their e-mail (and the user name's case, which
	// is no change): exactly ten PATCHes of one attribute each.
	for i := 0; i < 10; i++ {
		r := s.dir[i*50]
		r.Attributes["email"] = fmt.Sprintf("NEW.%d@Example.com", i)
		r.Attributes["username"] = fmt.Sprintf("SEED%05d", i*50+1)
	}
	res = s.run(t, contract.AttributeSyncScheduleID+"-2", workflows.AttributeSyncInput{})
	saveHistory(t, s.c, contract.AttributeSyncScheduleID+"-2", "attrsync.json")
	assert.Equal(t, map[string]int{"PATCH": 10}, s.peer.Writes())
	assert.Equal(t, 10, res.AccountsChanged)
	assert.Equal(t, 10, res.AttributesWritten)
	assert.Zero(t, res.Failures, "%+v", res.Problems)

	// What was written reads back equal: the next run writes nothing.
	res = s.run(t, contract.AttributeSyncScheduleID+"-3", workflows.AttributeSyncInput{})
	assert.Empty(t, s.peer.Writes())
	assert.Zero(t, res.AttributesWritten)
	assert.Empty(t, res.Guard, "every written value stuck")

	// A multi-valued attribute of a new type plus another change on the
	// same account: one write.
	s.dir[7].Attributes["mobile"] = "+1 555 0100"
	s.dir[7].Attributes["email"] = "seven@example.com"
	res = s.run(t, contract.AttributeSyncScheduleID+"-4", workflows.AttributeSyncInput{})
	assert.Equal(t, map[string]int{"PATCH": 1}, s.peer.Writes())
	assert.Equal(t, 1, res.AccountsChanged)
	assert.Equal(t, 2, res.AttributesWritten)
	res = s.run(t, contract.AttributeSyncScheduleID+"-5", workflows.AttributeSyncInput{})
	assert.Empty(t, s.peer.Writes(), "multi-valued item read back equal")

	// Manual sync of one identity: one lookup, one write, no paging.
	s.dir[3].Attributes["email"] = "manual@example.com"
	res = s.run(t, contract.ManualSyncWorkflowID("E00004", time.Now()), workflows.AttributeSyncInput{EmployeeIDs: []string{"E00004"}})
	assert.Equal(t, map[string]int{"PATCH": 1}, s.peer.Writes())
	assert.LessOrEqual(t, s.peer.Requests(), 3, "lookup + (multi-valued read) + write")
	assert.Equal(t, 1, res.IdentitiesChecked)
	assert.Equal(t, 1, res.AttributesWritten)

	// A manual sync of a leaver changes nothing.
	res = s.run(t, contract.ManualSyncWorkflowID("E01000", time.Now()), workflows.AttributeSyncInput{EmployeeIDs: []string{"E01000"}})
	assert.Empty(t, s.peer.Writes())
	assert.Equal(t, 1, res.Skipped)
}

// rateLimitedOnce is the real SCIM connector answering one 429 when the
// reconcile reaches a given page.
type rateLimitedOnce struct {
	*scim.Client
	at      string
	tripped bool
}

func (r *rateLimitedOnce) ListAccounts(ctx context.Context, cursor string, n int) ([]connectors.Account, string, error) {
	if cursor == r.at && !r.tripped {
		r.tripped = true
		return nil, "", &connectors.RateLimitedError{RetryAfter: 200 * time.Millisecond, Err: errors.New("429 Too Many Requests")}
	}
	return r.Client.ListAccounts(ctx, cursor, n)
}

func TestAttributeSyncResumesAfterRateLimit(t *testing.T) {
	var rl *rateLimitedOnce
	s := newSyncStackWith(t, 1000, func(c *scim.Client) any {
		rl = &rateLimitedOnce{Client: c, at: "601"} // the fourth page of 200
		return rl
	})
	res := s.run(t, contract.AttributeSyncScheduleID+"-429", workflows.AttributeSyncInput{})
	assert.True(t, rl.tripped)
	assert.Equal(t, 5, s.peer.Requests(), "the retry resumed at the page that was refused: no page read twice")
	assert.Equal(t, 5, res.PagesRead)
	assert.Equal(t, 1000, res.IdentitiesChecked)
	assert.Empty(t, s.peer.Writes())
}

// identityStub publishes a memo the way the Identity workflow does and
// waits; it stands in for a long-lived identity in the directory test.
func identityStub(ctx workflow.Context, in workflows.IdentityInput) error {
	if err := workflows.PublishIdentity(ctx, in); err != nil {
		return err
	}
	return workflow.Await(ctx, func() bool { return false })
}

func TestTemporalDirectoryReadsEncryptedMemos(t *testing.T) {
	pc, err := codec.New(map[string][]byte{"k1": make([]byte, 32)}, "k1")
	require.NoError(t, err)
	dc := codec.DataConverter(pc)
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.NewClientWithOptions(client.Options{DataConverter: dc})
	t.Cleanup(c.Close)
	w := worker.New(c, "directory-test", worker.Options{})
	w.RegisterWorkflowWithOptions(identityStub, workflow.RegisterOptions{Name: contract.IdentityWorkflowName})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, status := range []string{contract.StatusActive, contract.StatusActive, contract.StatusDeprovisioned} {
		id := fmt.Sprintf("E%d", i)
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.IdentityWorkflowID(id), TaskQueue: "directory-test"},
			contract.IdentityWorkflowName, workflows.IdentityInput{EmployeeID: id, Status: status,
				Attributes: map[string]string{"email": id + "@example.com"}, Accounts: map[string]string{"app": "acct-" + id}})
		require.NoError(t, err)
	}
	dir := activities.TemporalDirectory{Client: c, DataConverter: dc}
	var all []activities.IdentityRecord
	require.Eventually(t, func() bool {
		all = all[:0]
		var cursor []byte
		for {
			page, next, err := dir.ListIdentities(ctx, cursor, 2)
			require.NoError(t, err)
			all = append(all, page...)
			if len(next) == 0 {
				break
			}
			cursor = next
		}
		withAttrs := 0
		for _, r := range all {
			if len(r.Attributes) > 0 {
				withAttrs++
			}
		}
		return withAttrs == 3
	}, 20*time.Second, 200*time.Millisecond)

	one, err := dir.Identity(ctx, "E2")
	require.NoError(t, err)
	assert.Equal(t, activities.IdentityRecord{EmployeeID: "E2", Status: contract.StatusDeprovisioned,
		Attributes: map[string]string{"email": "E2@example.com"}, Accounts: map[string]string{"app": "acct-E2"}}, one)
	_, err = dir.Identity(ctx, "nobody")
	assert.ErrorContains(t, err, "not found")
}

// BenchmarkAttributeSync10k reconciles 10,000 in-sync identities against
// the SCIM peer: wall time per run, requests and writes.
func BenchmarkAttributeSync10k(b *testing.B) {
	const n = 10000
	s := newSyncStack(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := s.run(b, fmt.Sprintf("%s-bench-%d", contract.AttributeSyncScheduleID, i), workflows.AttributeSyncInput{})
		b.StopTimer()
		writes := 0
		for _, v := range s.peer.Writes() {
			writes += v
		}
		b.ReportMetric(float64(s.peer.Requests()), "requests/op")
		b.ReportMetric(float64(writes), "writes/op")
		if res.IdentitiesChecked != n || writes != 0 {
			b.Fatalf("checked %d, wrote %d: %+v", res.IdentitiesChecked, writes, res.Problems)
		}
		b.StartTimer()
	}
}

// TestAttributeSyncLoopGuardOnOkta runs scheduled syncs against the Okta
// stand-in, which silently drops "title" (a value that never sticks):
// written twice, then reported once and left alone across runs, while a
// real change still goes through.
func TestAttributeSyncLoopGuardOnOkta(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	peer := oktatest.Start(t)
	conn, err := okta.New(ctx, okta.Config{OrgURL: peer.OrgURL, Token: secret.New(peer.Token), AllowInsecure: true})
	require.NoError(t, err)
	var dir activities.StaticDirectory
	for i := 1; i <= 5; i++ {
		attrs := map[string]string{"login": fmt.Sprintf("u%d@acme.test", i), "first": "Ada", "last": fmt.Sprintf("L%d", i), "title": "Engineer"}
		_, err := conn.CreateAccount(ctx, connectors.Attributes{"login": attrs["login"], "email": attrs["login"],
			"first_name": "Ada", "last_name": attrs["last"]}, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		dir = append(dir, activities.IdentityRecord{EmployeeID: fmt.Sprint("E", i), Attributes: attrs})
	}
	metrics := &countingMetrics{counts: map[string]int64{}}
	c := temporalServer(t).NewClientWithOptions(client.Options{MetricsHandler: metrics})
	t.Cleanup(c.Close)
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"okta": {Type: "okta", OrgURL: peer.OrgURL}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "okta", Attributes: map[string]string{
				"login": "{login}", "email": "{login}", "first_name": "{first}", "last_name": "{last}", "title": "{title}"}}}}},
			AttributeSync: policy.AttributeSync{Every: "15m", Targets: []string{"okta"}, PageSize: 2},
		},
		Targets: map[string]any{"okta": conn}, Directory: dir, Client: c,
	})
	w := worker.New(c, contract.TaskQueue, worker.Options{})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	runs := 0
	run := func() (workflows.AttributeSyncResult, int) {
		t.Helper()
		peer.Reset()
		runs++
		id := fmt.Sprintf("%s-%d", contract.AttributeSyncScheduleID, runs)
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue}, contract.AttributeSyncWorkflowName, workflows.AttributeSyncInput{})
		require.NoError(t, err)
		var res workflows.AttributeSyncResult
		require.NoError(t, r.Get(ctx, &res))
		// The next run reads this one's guard through visibility.
		require.Eventually(t, func() bool {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'Completed'", id)})
			return err == nil && len(resp.GetExecutions()) == 1
		}, 10*time.Second, 50*time.Millisecond)
		writes := 0
		for _, l := range peer.Log() {
			if !strings.HasPrefix(l, "GET ") {
				writes++
			}
		}
		return res, writes
	}

	for i, want := range []struct{ writes, stuck int }{{5, 0}, {5, 0}, {0, 5}, {0, 0}} {
		res, writes := run()
		assert.Equal(t, want.writes, writes, "run %d", i+1)
		assert.Equal(t, want.stuck, res.Stuck, "run %d", i+1)
		assert.Equal(t, 5, res.IdentitiesChecked, "run %d", i+1)
	}
	dir[2].Attributes["last"] = "Lovelace"
	res, writes := run()
	assert.Equal(t, 1, writes, "the real change goes through; the stuck title stays alone")
	assert.Equal(t, 1, res.AttributesWritten)
	acct, err := conn.FindAccount(ctx, connectors.Key{Attribute: "login", Value: "u3@acme.test"})
	require.NoError(t, err)
	assert.Equal(t, "Lovelace", acct.Attributes["last_name"])
	_, writes = run()
	assert.Zero(t, writes)
	assert.Equal(t, int64(11), metrics.get("jml_attribute_sync_attributes_written", "okta"))
	assert.Equal(t, int64(5), metrics.get("jml_attribute_sync_stuck", "okta"))
	assert.Equal(t, int64(30), metrics.get("jml_attribute_sync_identities_checked", "okta"))
}

// countingMetrics sums counters by name and target tag.
type countingMetrics struct {
	mu     sync.Mutex
	tags   map[string]string
	counts map[string]int64
	parent *countingMetrics
}

func (m *countingMetrics) root() *countingMetrics {
	if m.parent != nil {
		return m.parent
	}
	return m
}

func (m *countingMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(m.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return &countingMetrics{tags: merged, parent: m.root()}
}

func (m *countingMetrics) Counter(name string) client.MetricsCounter {
	key := name + "|" + m.tags["target"]
	r := m.root()
	return counterFunc(func(d int64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.counts[key] += d
	})
}

func (m *countingMetrics) Gauge(string) client.MetricsGauge {
	return client.MetricsNopHandler.Gauge("")
}
func (m *countingMetrics) Timer(string) client.MetricsTimer {
	return client.MetricsNopHandler.Timer("")
}

func (m *countingMetrics) get(name, target string) int64 {
	r := m.root()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[name+"|"+target]
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }
