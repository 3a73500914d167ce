package prodshape_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/audit/auditdb/auditdbtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/prodshape"
)

// TestAuditStorePostgres runs the audit store's tests on PostgreSQL:
// exactly once per key, one chain under concurrent writers, append-only
// rows, verify naming the tampered record, purge.
func TestAuditStorePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL cluster (skipped with -short)")
	}
	pg := prodshape.StartPostgres(t)
	var mu sync.Mutex
	dbs := map[string]string{}
	clean := regexp.MustCompile(`[^a-z0-9]+`)
	auditdbtest.Run(t, func(t *testing.T, name string) *auditdb.Store {
		db := "a_" + strings.Trim(clean.ReplaceAllString(strings.ToLower(t.Name()+"_"+name), "_"), "_")
		if len(db) > 60 {
			db = db[len(db)-60:]
		}
		mu.Lock()
		dsn, ok := dbs[db]
		if !ok {
			dsn = pg.AuditDB(t, db)
			dbs[db] = dsn
		}
		mu.Unlock()
		s, err := auditdb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func openAudit(t *testing.T, dsn string) *auditdb.Store {
	t.Helper()
	st, err := auditdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// checkAuditPerson: the hire, change and terminate of emp are in the
// trail, on the account the peer holds.
func checkAuditPerson(t *testing.T, dsn, emp, accountID string) {
	t.Helper()
	recs, err := openAudit(t, dsn).Records(context.Background(), auditdb.Filter{EmployeeID: emp})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range recs {
		got[r.Action]++
		if r.AccountID != "" && r.AccountID != accountID {
			t.Errorf("%s %s names account %s, the peer's is %s", emp, r.Action, r.AccountID, accountID)
		}
	}
	for action, want := range map[string]int{audit.RunStarted: 3, audit.AccountCreated: 1, audit.PasswordSet: 1,
		audit.AccountUpdated: 1, audit.AccountDisabled: 1, audit.RunCompleted: 3} {
		if got[action] != want {
			t.Errorf("%s: %d %s records, want %d (all: %v)", emp, got[action], action, want, got)
		}
	}
}

// checkAuditBulk: every bulk hire's effects have exactly one record, on
// the account the peer holds: none missing, none twice, across the
// SIGKILL and the outage. An account the killed worker created and did
// not report is recorded once, as adopted by the retry (which sets a new
// password), with that reason.
func checkAuditBulk(t *testing.T, dsn string, users []scimUser) {
	t.Helper()
	st := openAudit(t, dsn)
	adopted := 0
	defer func() {
		t.Logf("audit: %d of %d bulk accounts recorded as adopted after the SIGKILL", adopted, bulkHires)
	}()
	for i := range bulkHires {
		emp := fmt.Sprintf("B%03d", i)
		name := strings.ToLower(bulkName(i) + "." + bulkLast + "@example.com")
		var id string
		for _, u := range users {
			if strings.EqualFold(u.UserName, name) {
				id = u.ID
			}
		}
		recs, err := st.Records(context.Background(), auditdb.Filter{EmployeeID: emp})
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, r := range recs {
			if r.Action == audit.AccountAdopted {
				// The killed worker created the account and died before it
				// reported: the retry finds it and says so.
				if !strings.Contains(r.Detail, "an earlier attempt of this step may have created the account") {
					t.Errorf("%s: adopted, not after a lost attempt: %s", emp, r.Detail)
				}
				adopted++
				r.Action = audit.AccountCreated
			}
			n[r.Action+" "+r.Group]++
			if r.AccountID != "" && r.AccountID != id {
				t.Errorf("%s: %s names account %s, the peer's is %s", emp, r.Action, r.AccountID, id)
			}
		}
		for _, k := range []string{audit.AccountCreated + " ", audit.PasswordSet + " ", audit.GroupAdded + " everyone",
			audit.GroupAdded + " dept-engineering", audit.RunStarted + " ", audit.RunCompleted + " "} {
			if n[k] != 1 {
				t.Errorf("%s: %d records of %q, want exactly 1 (all: %v)", emp, n[k], k, n)
			}
		}
	}
}

// checkAuditVerify: `starter audit verify` passes, then names the one row
// edited behind jml's back.
func checkAuditVerify(t *testing.T, pg *prodshape.Postgres, work, dsn string) {
	t.Helper()
	starter := func(args ...string) (int, string) {
		cmd := exec.Command(filepath.Join(work, "bin", "starter"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "JML_AUDIT_DB=" + dsn}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := starter("audit", "verify"); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify on the untouched trail: exit %d\n%s", code, out)
	}
	st := openAudit(t, dsn)
	recs, err := st.Records(context.Background(), auditdb.Filter{EmployeeID: "B042", Actions: []string{audit.AccountCreated}})
	if err != nil || len(recs) != 1 {
		t.Fatalf("B042's account.created: %v %v", recs, err)
	}
	// The owner can drop the append-only trigger; the chain still shows.
	auditdbtest.DropTriggers(t, st)
	if _, err := st.DB().Exec(`UPDATE audit_records SET account_id = 'someone-else' WHERE seq = $1`, recs[0].Seq); err != nil {
		t.Fatal(err)
	}
	code, out := starter("audit", "verify")
	want := fmt.Sprintf("audit chain broken at record %d (key %s)", recs[0].Seq, recs[0].Key)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("audit verify after an edit: exit %d, want 1 naming %q:\n%s", code, want, out)
	}
}

// checkAuditAfterDelete: every workflow execution of emp (its identity and
// its hire, change and terminate runs) is deleted from Temporal on
// PostgreSQL; `starter audit person` still shows the timeline from the
// audit database: each effect once, on the peer's account, in time order.
func checkAuditAfterDelete(t *testing.T, c client.Client, work, dsn, emp, accountID string) {
	t.Helper()
	ctx := context.Background()
	ids := []string{contract.IdentityWorkflowID(emp)}
	for kind, ev := range map[string]string{"joiner": "ps-hire", "mover": "ps-change", "leaver": "ps-terminate"} {
		ids = append(ids, contract.LifecycleWorkflowID(kind, emp, ev))
	}
	for _, id := range ids {
		if _, err := c.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
			Namespace: namespace, WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id}}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if !waitFor(2*time.Minute, func() bool {
		for _, id := range ids {
			if _, err := c.DescribeWorkflowExecution(ctx, id, ""); err == nil {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("Temporal still has runs of %s", emp)
	}
	cmd := exec.Command(filepath.Join(work, "bin", "starter"), "audit", "person", emp, "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "JML_AUDIT_DB=" + dsn}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter audit person %s after the delete: %v\n%s", emp, err, out)
	}
	var recs []audit.Record
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("starter audit person --json: %v\n%s", err, out)
	}
	n := map[string]int{}
	for i, r := range recs {
		n[r.Action]++
		if r.AccountID != "" && r.AccountID != accountID {
			t.Errorf("%s %s names account %s, the peer's is %s", emp, r.Action, r.AccountID, accountID)
		}
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			t.Errorf("timeline out of order at %d: %s before %s", i, r.Time, recs[i-1].Time)
		}
	}
	for action, want := range map[string]int{audit.RunStarted: 3, audit.AccountCreated: 1, audit.PasswordSet: 1,
		audit.AccountUpdated: 1, audit.AccountDisabled: 1, audit.RunCompleted: 3} {
		if n[action] != want {
			t.Errorf("%s after the delete: %d %s records, want %d (all: %v)", emp, n[action], action, want, n)
		}
	}
}
