// Package auditdbtest holds the tests every audit store passes: the
// SQLite one (auditdb's own tests) and PostgreSQL (internal/prodshape,
// on the production shape's cluster).
package auditdbtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/audit/auditdb"
)

// Run runs the store tests; open returns a fresh, empty store each call
// (twice for the same name: the same database, as a second process).
func Run(t *testing.T, open func(t *testing.T, name string) *auditdb.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)
	rec := func(key, emp, action string) audit.Record {
		return audit.Record{Key: key, Time: t0, EmployeeID: emp, Action: action, Target: "okta", AccountID: "00u1",
			Attributes: map[string]string{"department": "Sales", "title": ""}, WorkflowID: "joiner/" + emp + "/ev1", RunID: "r1"}
	}

	t.Run("append is exactly once per key and chained", func(t *testing.T) {
		s := open(t, "once")
		n, err := s.Append(ctx, []audit.Record{rec("k1", "E1", audit.AccountCreated), rec("k2", "E1", audit.GroupAdded)})
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		// A retry of the same activity (the worker died before it
		// reported): nothing new.
		n, err = s.Append(ctx, []audit.Record{rec("k1", "E1", audit.AccountCreated), rec("k2", "E1", audit.GroupAdded), rec("k3", "E1", audit.PasswordSet)})
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		got, err := s.Records(ctx, auditdb.Filter{EmployeeID: "E1"})
		require.NoError(t, err)
		require.Len(t, got, 3)
		assert.Equal(t, []int64{1, 2, 3}, []int64{got[0].Seq, got[1].Seq, got[2].Seq})
		assert.Empty(t, got[0].PrevHash)
		assert.Equal(t, got[0].Hash, got[1].PrevHash)
		assert.Equal(t, got[1].Hash, got[2].PrevHash)
		assert.Equal(t, t0.Truncate(audit.Precision), got[0].Time)
		assert.Equal(t, "Sales", got[0].Attributes["department"])
		assert.Equal(t, audit.ActorJML, got[0].Actor)
		v, err := s.Verify(ctx)
		require.NoError(t, err)
		assert.Nil(t, v.Break)
		assert.EqualValues(t, 3, v.Records)
	})

	t.Run("concurrent appends from two stores keep one chain", func(t *testing.T) {
		a, b := open(t, "conc"), open(t, "conc")
		var wg sync.WaitGroup
		for i := range 40 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				// The same key from both sides lands once.
				_, err := s.Append(ctx, []audit.Record{rec(fmt.Sprintf("k%d", i/2), "E2", audit.GroupAdded)})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		got, err := a.Records(ctx, auditdb.Filter{})
		require.NoError(t, err)
		assert.Len(t, got, 20)
		v, err := b.Verify(ctx)
		require.NoError(t, err)
		assert.Nil(t, v.Break)
	})

	t.Run("rows are append-only", func(t *testing.T) {
		s := open(t, "ro")
		_, err := s.Append(ctx, []audit.Record{rec("k1", "E3", audit.AccountDisabled)})
		require.NoError(t, err)
		_, err = s.DB().ExecContext(ctx, `UPDATE audit_records SET employee_id = 'E4'`)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "append-only")
		_, err = s.DB().ExecContext(ctx, `DELETE FROM audit_records`)
		require.Error(t, err)
	})

	t.Run("verify names the first edited, removed or inserted record", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			tamper []string
			seq    int64
			reason string
		}{
			{"edited field", []string{`UPDATE audit_records SET account_id = 'someone-else' WHERE seq = 3`}, 3, "content"},
			{"edited time", []string{`UPDATE audit_records SET at = '2026-12-01T08:00:00.000000Z' WHERE seq = 2`}, 2, "content"},
			{"edited verified flag", []string{`UPDATE audit_records SET verified = TRUE WHERE seq = 4`}, 4, "content"},
			{"removed", []string{`DELETE FROM audit_records WHERE seq = 2`}, 3, "missing"},
			{"rehashed edit", []string{`UPDATE audit_records SET hash = 'x', detail = 'y' WHERE seq = 2`}, 2, "content"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t, "tamper")
				var recs []audit.Record
				for i := 1; i <= 5; i++ {
					recs = append(recs, rec(fmt.Sprintf("k%d", i), "E5", audit.AccountDisabled))
				}
				_, err := s.Append(ctx, recs)
				require.NoError(t, err)
				DropTriggers(t, s)
				for _, q := range tc.tamper {
					_, err := s.DB().ExecContext(ctx, q)
					require.NoError(t, err)
				}
				v, err := s.Verify(ctx)
				require.NoError(t, err)
				require.NotNil(t, v.Break, "verify must find the tampering")
				assert.Equal(t, tc.seq, v.Break.Seq)
				assert.Contains(t, v.Break.Reason, tc.reason)
			})
		}
	})

	t.Run("purge removes a prefix and the chain still verifies", func(t *testing.T) {
		s := open(t, "purge")
		var recs []audit.Record
		for i := range 6 {
			r := rec(fmt.Sprintf("k%d", i), "E6", audit.AccountUpdated)
			r.Time = t0.Add(time.Duration(i) * 24 * time.Hour)
			recs = append(recs, r)
		}
		_, err := s.Append(ctx, recs)
		require.NoError(t, err)
		n, err := s.Purge(ctx, t0.Add(3*24*time.Hour), "purge-1")
		require.NoError(t, err)
		assert.EqualValues(t, 3, n)
		got, err := s.Records(ctx, auditdb.Filter{})
		require.NoError(t, err)
		require.Len(t, got, 4)
		assert.EqualValues(t, 4, got[0].Seq)
		assert.Equal(t, "audit.purged", got[3].Action)
		v, err := s.Verify(ctx)
		require.NoError(t, err)
		assert.Nil(t, v.Break)
	})
}

// DropTriggers removes the append-only triggers, as someone with the
// database's owner rights could, so a test can tamper.
func DropTriggers(t *testing.T, s *auditdb.Store) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`,
	} {
		if _, err := s.DB().ExecContext(ctx, q); err == nil {
			continue
		}
		// PostgreSQL: triggers are dropped per table.
		_, err := s.DB().ExecContext(ctx, `DROP TRIGGER IF EXISTS audit_append_only ON audit_records`)
		require.NoError(t, err)
		return
	}
	_, _ = s.DB().ExecContext(ctx, `DROP TRIGGER IF EXISTS audit_append_only ON audit_records`)
}
