package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/audit/auditdb/auditdbtest"
)

// auditFixture is a SQLite audit store with a hire and a termination of
// E1 (disabled 2h after the effective time) and a hire of E2.
func auditFixture(t *testing.T) (string, *auditdb.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := auditdb.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	eff := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	rec := func(key, emp, action string, at time.Time) audit.Record {
		return audit.Record{Key: key, Time: at, EmployeeID: emp, Action: action, Target: "okta", WorkflowID: "wf-" + key, EventID: "ev-" + key}
	}
	hire := rec("1", "E1", audit.AccountCreated, eff.Add(-48*time.Hour))
	hire.AccountID, hire.Detail = "00u1", "account created; identifier ann@acme.test"
	grant := rec("2", "E1", audit.GroupAdded, eff.Add(-48*time.Hour))
	grant.AccountID, grant.Group = "00u1", "admins"
	start := rec("3", "E1", audit.RunStarted, eff)
	start.Kind, start.EffectiveAt, start.Target = "leaver", eff, ""
	off := rec("4", "E1", audit.AccountDisabled, eff.Add(2*time.Hour))
	off.AccountID, off.Verified, off.WorkflowID = "00u1", true, start.WorkflowID
	hire2 := rec("5", "E2", audit.AccountCreated, eff)
	hire2.AccountID = "00u2"
	_, err = st.Append(context.Background(), []audit.Record{hire, grant, start, off, hire2})
	require.NoError(t, err)
	return path, st
}

func TestAuditPersonAndLeavers(t *testing.T) {
	path, st := auditFixture(t)
	// E3's account was gone when its leaver ran (deleted out of band), a
	// day after E1's.
	eff := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	rec := func(key, action string, at time.Time) audit.Record {
		return audit.Record{Key: key, Time: at, EmployeeID: "E3", Action: action, Target: "okta", AccountID: "00u3", WorkflowID: "wf-" + key, EventID: "ev-" + key}
	}
	hire3 := rec("6", audit.AccountCreated, eff.Add(-48*time.Hour))
	hire3.Detail = "account created; identifier cid@acme.test"
	start3 := rec("7", audit.RunStarted, eff)
	start3.Kind, start3.EffectiveAt, start3.Target, start3.AccountID = "leaver", eff, "", ""
	absent3 := rec("8", audit.AccountAbsent, eff.Add(time.Minute))
	absent3.Verified, absent3.WorkflowID = true, start3.WorkflowID
	_, err := st.Append(context.Background(), []audit.Record{hire3, start3, absent3})
	require.NoError(t, err)
	db := []string{"--audit-db", path}

	code, out, errs := runCmd(t, append([]string{"audit", "person", "E1"}, db...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "account.created")
	assert.Contains(t, out, "account.disabled")
	assert.NotContains(t, out, "00u2")

	code, out, errs = runCmd(t, append([]string{"audit", "person", "E1", "--json"}, db...)...)
	require.Equal(t, 0, code, errs)
	var recs []audit.Record
	require.NoError(t, json.Unmarshal([]byte(out), &recs))
	require.Len(t, recs, 4)
	assert.Equal(t, audit.AccountDisabled, recs[3].Action)

	code, out, errs = runCmd(t, append([]string{"audit", "person", "E1", "--csv"}, db...)...)
	require.Equal(t, 0, code, errs)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 5)
	assert.Equal(t, recordHeader, rows[0])

	code, out, errs = runCmd(t, append([]string{"audit", "leavers", "--since", "2026-11-01", "--sla", "1h"}, db...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "p50 2h0m0s, p95 2h0m0s, max 2h0m0s (SLA 1h0m0s)")
	assert.Contains(t, out, "Breaches: 1")
	assert.Contains(t, out, "ann@acme.test")
	// Every account counted is listed somewhere: E3's absent one too.
	assert.Contains(t, out, "accounts 2, verified disabled or deleted 1")
	assert.Contains(t, out, "Absent at the leaver or rehired (no disable to verify): 1")
	assert.Contains(t, out, "cid@acme.test")

	// Only E3 (absent) since its termination's day: no latency to report.
	code, out, errs = runCmd(t, append([]string{"audit", "leavers", "--since", "2026-12-02", "--sla", "1h"}, db...)...)
	require.Equal(t, 0, code, errs)
	assert.NotContains(t, out, "p50")
	assert.NotContains(t, out, " 0s")
	assert.Contains(t, out, "no account verified disabled yet")

	code, out, errs = runCmd(t, append([]string{"audit", "leavers", "--since", "2026-11-01", "--sla", "4h", "--csv"}, db...)...)
	require.Equal(t, 0, code, errs)
	rows, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, []string{"absent", ""}, []string{rows[2][6], rows[2][8]}, "no latency for an account never disabled")
	assert.Equal(t, []string{"E1", "ev-3", "2026-12-01T17:00:00.000Z", "okta", "00u1", "ann@acme.test", "disabled", "2026-12-01T19:00:00.000Z", "7200.000", "false"}, rows[1])

	code, out, errs = runCmd(t, append([]string{"audit", "access", "--group", "admins", "--target", "okta", "--json"}, db...)...)
	require.Equal(t, 0, code, errs)
	var gs []audit.Grant
	require.NoError(t, json.Unmarshal([]byte(out), &gs))
	require.Len(t, gs, 1)
	assert.Equal(t, "E1", gs[0].EmployeeID)
	assert.Equal(t, "ev-2", gs[0].EventID)
}

func TestAuditBadInput(t *testing.T) {
	path, _ := auditFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "leavers"}, "--since is required"},
		{[]string{"audit", "leavers", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"audit", "person"}, "want one EMPLOYEE_ID"},
		{[]string{"audit", "access", "--group", "g"}, "--group and --target are required"},
		{[]string{"audit", "person", "E1", "--json", "--csv"}, "exclude each other"},
		{[]string{"audit", "export", "--to", "http://siem.example/in"}, "must be an https:// URL"},
	} {
		code, _, errs := runCmd(t, append(tc.args, "--audit-db", path)...)
		assert.Equal(t, 2, code, tc.args)
		assert.Contains(t, errs, tc.want, tc.args)
	}
}

// TestAuditVerifyNamesEditedRow: verify passes on the untouched store;
// after one row is edited (by someone who dropped the append-only
// trigger), it exits 1 naming that row.
func TestAuditVerifyNamesEditedRow(t *testing.T) {
	path, st := auditFixture(t)
	code, out, errs := runCmd(t, "audit", "verify", "--audit-db", path)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "ok: 5 records, chain intact from 1 to 5\n", out)

	auditdbtest.DropTriggers(t, st)
	_, err := st.DB().Exec(`UPDATE audit_records SET verified = TRUE WHERE seq = 5`)
	require.NoError(t, err)
	code, _, errs = runCmd(t, "audit", "verify", "--audit-db", path)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "audit chain broken at record 5 (key 5): its content does not match its hash")
}

// TestAuditExportHTTPS streams the records as JSON lines to a real HTTPS
// collector, bearer token and CA from the environment.
func TestAuditExportHTTPS(t *testing.T) {
	path, _ := auditFixture(t)
	var mu sync.Mutex
	var got []audit.Record
	var auth, ctype string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth, ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			var rec audit.Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got = append(got, rec)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pemOf(t, srv), 0o600))
	t.Setenv("JML_AUDIT_EXPORT_TOKEN", "siem-token")
	t.Setenv("JML_AUDIT_EXPORT_CA", ca)

	code, out, errs := runCmd(t, "audit", "export", "--since", "2026-12-01", "--to", srv.URL+"/ingest", "--audit-db", path)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "exported 3 record(s) to "+srv.URL+"/ingest\n", out)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "Bearer siem-token", auth)
	assert.Equal(t, "application/x-ndjson", ctype)
	require.Len(t, got, 3)
	assert.Equal(t, audit.RunStarted, got[0].Action)
	assert.Equal(t, got[0].Hash, got[1].PrevHash, "the chain travels with the records")

	// Without the CA the collector is not trusted: nothing is sent.
	t.Setenv("JML_AUDIT_EXPORT_CA", "")
	code, _, errs = runCmd(t, "audit", "export", "--to", srv.URL+"/ingest", "--audit-db", path)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "certificate")

	// To stdout: JSON lines.
	code, out, errs = runCmd(t, "audit", "export", "--audit-db", path)
	require.Equal(t, 0, code, errs)
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 5)
}

func pemOf(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
