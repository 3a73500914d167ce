package auditdb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit"
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

// A new SQLite store is its owner's alone: the file and its WAL 0600, a
// directory it creates 0700 (the trail names people).
func TestSQLiteStoreIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jml-data")
	path := filepath.Join(dir, "audit.db")
	s, err := auditdb.Open(context.Background(), path)
	require.NoError(t, err)
	_, err = s.Append(context.Background(), []audit.Record{{Key: "w/r/1", Action: audit.RunStarted, Actor: audit.ActorJML}})
	require.NoError(t, err)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode().Perm(), p)
	}
	require.NoError(t, s.Close())
}
