package prodshape_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/audit/auditdb/auditdbtest"
)

// auditDB creates database name, owned by its own role jml_audit, on the
// cluster and returns its URL: the audit store's place on the server the
// production shape runs.
func (pg *pgCluster) auditDB(t *testing.T, name string) string {
	t.Helper()
	psql := func(sql string) {
		pg.run(t, "psql", "-h", pg.dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)
	}
	pg.auditOnce.Do(func() {
		psql(fmt.Sprintf("CREATE ROLE jml_audit LOGIN PASSWORD '%s'", pg.password))
	})
	psql(fmt.Sprintf("CREATE DATABASE %s OWNER jml_audit", name))
	return fmt.Sprintf("postgres://jml_audit:%s@127.0.0.1:%d/%s?sslmode=disable", pg.password, pg.port, name)
}

// TestAuditStorePostgres runs the audit store's tests on PostgreSQL:
// exactly once per key, one chain under concurrent writers, append-only
// rows, verify naming the tampered record, purge.
func TestAuditStorePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL cluster (skipped with -short)")
	}
	pg := startPostgres(t)
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
			dsn = pg.auditDB(t, db)
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
