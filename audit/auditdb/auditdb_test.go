package auditdb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/audit/auditdb/auditdbtest"
)

func TestSQLiteStore(t *testing.T) {
	dir := t.TempDir()
	auditdbtest.Run(t, func(t *testing.T, name string) *auditdb.Store {
		path := filepath.Join(dir, t.Name(), name+".db")
		s, err := auditdb.Open(context.Background(), path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
