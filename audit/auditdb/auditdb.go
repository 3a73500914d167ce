// Package auditdb stores the audit trail: an embedded SQLite file for
// --dev, PostgreSQL (its own database) in production. One table, written
// only by Append: each append takes the store's write lock (SQLite's
// immediate transaction, a PostgreSQL advisory lock), reads the chain's
// last hash and inserts after it, skipping records whose idempotency key
// is already stored (the UNIQUE key is the backstop). Triggers refuse
// UPDATE and DELETE; only Purge (retention) deletes, the oldest records
// first, and moves the chain's anchor past them.
package auditdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"

	"github.com/jml-dev/jml/audit"
)

// Store is an audit store.
type Store struct {
	db *sql.DB
	pg bool
	// now stamps RecordedAt (tests pin it).
	now func() time.Time
}

// Open opens the store named by dsn and creates its schema when missing:
// "postgres://…" (or "postgresql://…") is PostgreSQL; anything else is a
// SQLite file path (or "sqlite:PATH").
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{now: time.Now}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.pg = true
		s.db, err = sql.Open("pgx", dsn)
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("audit store: empty path")
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("audit store: %w", err)
			}
		}
		// The trail names people: a new file is the owner's alone (SQLite
		// gives its -wal and -shm files the same mode).
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			_ = f.Close()
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("audit store: %w", err)
		}
		// Immediate transactions: the append that reads the chain's end
		// holds the write lock, also across processes; WAL lets readers
		// (starter audit) run beside the worker.
		s.db, err = sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	}
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// DB is the underlying database (tests that tamper with it).
func (s *Store) DB() *sql.DB { return s.db }

const table = "audit_records"

// columns in Record order; every one is part of the hash.
const columns = "seq, idem_key, at, recorded_at, employee_id, action, target, account_id, grp, attributes, detail, kind, event_id, effective_at, workflow_id, run_id, step, verified, actor, reason, prev_hash, hash"

func (s *Store) migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS audit_records (
			seq BIGINT PRIMARY KEY,
			idem_key TEXT NOT NULL UNIQUE,
			at TEXT NOT NULL,
			recorded_at TEXT NOT NULL,
			employee_id TEXT NOT NULL,
			action TEXT NOT NULL,
			target TEXT NOT NULL,
			account_id TEXT NOT NULL,
			grp TEXT NOT NULL,
			attributes TEXT NOT NULL,
			detail TEXT NOT NULL,
			kind TEXT NOT NULL,
			event_id TEXT NOT NULL,
			effective_at TEXT NOT NULL,
			workflow_id TEXT NOT NULL,
			run_id TEXT NOT NULL,
			step TEXT NOT NULL,
			verified BOOLEAN NOT NULL,
			actor TEXT NOT NULL,
			reason TEXT NOT NULL,
			prev_hash TEXT NOT NULL,
			hash TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS audit_records_employee ON audit_records (employee_id, seq)`,
		`CREATE INDEX IF NOT EXISTS audit_records_action ON audit_records (action, at)`,
		`CREATE INDEX IF NOT EXISTS audit_records_group ON audit_records (grp, target)`,
		// The chain's anchor: the last record a retention purge removed;
		// purging is set only inside Purge's transaction.
		`CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, purging BOOLEAN NOT NULL)`,
		`INSERT INTO audit_anchor (id, seq, hash, purging) VALUES (1, 0, '', FALSE) ON CONFLICT (id) DO NOTHING`,
	}
	if s.pg {
		stmts = append(stmts,
			`CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF TG_OP = 'DELETE' AND (SELECT purging FROM audit_anchor WHERE id = 1) THEN
					RETURN OLD;
				END IF;
				RAISE EXCEPTION 'audit records are append-only';
			END $$`,
			`CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_records
				FOR EACH ROW EXECUTE FUNCTION audit_append_only()`)
	} else {
		stmts = append(stmts,
			`CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_records
				BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END`,
			`CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_records
				WHEN NOT (SELECT purging FROM audit_anchor WHERE id = 1)
				BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END`)
	}
	if s.pg {
		// Two processes creating the schema at once: one at a time.
		stmts = append([]string{`SELECT pg_advisory_xact_lock(7243001)`}, stmts...)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit store: connect: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("audit store: schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit store: schema: %w", err)
	}
	return nil
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (s *Store) rebind(q string) string {
	if !s.pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

const timeFormat = "2006-01-02T15:04:05.000000Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(timeFormat, s)
}

// beginChain begins a transaction that writes the chain: on PostgreSQL it
// holds the chain's advisory lock until the end, so concurrent writers
// (several workers) append one after another (SQLite has one writer).
func (s *Store) beginChain(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit store: begin: %w", err)
	}
	if s.pg {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7243002)`); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("audit store: lock: %w", err)
		}
	}
	return tx, nil
}

// Append stores records in order after the chain's last one, exactly once
// per Key: a record whose key is stored already is skipped (a retried
// RecordAudit after a worker died between commit and completion).
// It returns how many were new.
func (s *Store) Append(ctx context.Context, recs []audit.Record) (int, error) {
	tx, err := s.beginChain(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var seq int64
	var prev string
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_anchor WHERE id = 1`).Scan(&seq, &prev)
	}
	if err != nil {
		return 0, fmt.Errorf("audit store: chain end: %w", err)
	}
	now := s.now()
	n := 0
	for _, r := range recs {
		if r.Key == "" {
			return 0, fmt.Errorf("audit store: record %s without an idempotency key", r.Action)
		}
		var one int
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT 1 FROM audit_records WHERE idem_key = ?`), r.Key).Scan(&one)
		if err == nil {
			continue // landed before
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("audit store: key lookup: %w", err)
		}
		seq++
		r.Seq, r.PrevHash, r.RecordedAt = seq, prev, now
		if r.Actor == "" {
			r.Actor = audit.ActorJML
		}
		r.Normalize()
		r.Hash = r.ComputeHash()
		attrs, err := json.Marshal(r.Attributes)
		if err != nil {
			return 0, fmt.Errorf("audit store: attributes: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO audit_records (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			r.Seq, r.Key, fmtTime(r.Time), fmtTime(r.RecordedAt), r.EmployeeID, r.Action, r.Target, r.AccountID, r.Group,
			string(attrs), r.Detail, r.Kind, r.EventID, fmtTime(r.EffectiveAt), r.WorkflowID, r.RunID, r.Step, r.Verified,
			r.Actor, r.Reason, r.PrevHash, r.Hash)
		if err != nil {
			return 0, fmt.Errorf("audit store: insert: %w", err)
		}
		prev = r.Hash
		n++
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("audit store: commit: %w", err)
	}
	return n, nil
}

// Filter selects records; zero fields select all.
type Filter struct {
	EmployeeID string
	// Since and Until bound Time (Until exclusive).
	Since, Until time.Time
	Group        string
	Target       string
	// Actions are exact action names or prefixes ending in "." (any of).
	Actions []string
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds = append(conds, c); args = append(args, a...) }
	if f.EmployeeID != "" {
		add("employee_id = ?", f.EmployeeID)
	}
	if !f.Since.IsZero() {
		add("at >= ?", fmtTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", fmtTime(f.Until))
	}
	if f.Group != "" {
		add("grp = ?", f.Group)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if len(f.Actions) > 0 {
		var ors []string
		for _, a := range f.Actions {
			if strings.HasSuffix(a, ".") {
				ors = append(ors, "action LIKE ?")
				args = append(args, a+"%")
			} else {
				ors = append(ors, "action = ?")
				args = append(args, a)
			}
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Each calls fn for every record f selects, in chain order.
func (s *Store) Each(ctx context.Context, f Filter, fn func(audit.Record) error) error {
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+columns+` FROM audit_records`+where+` ORDER BY seq`), args...)
	if err != nil {
		return fmt.Errorf("audit store: query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r audit.Record
		var at, rec, eff, attrs string
		if err := rows.Scan(&r.Seq, &r.Key, &at, &rec, &r.EmployeeID, &r.Action, &r.Target, &r.AccountID, &r.Group,
			&attrs, &r.Detail, &r.Kind, &r.EventID, &eff, &r.WorkflowID, &r.RunID, &r.Step, &r.Verified,
			&r.Actor, &r.Reason, &r.PrevHash, &r.Hash); err != nil {
			return fmt.Errorf("audit store: read: %w", err)
		}
		var perr error
		r.Time, perr = parseTime(at)
		if t, err := parseTime(rec); err == nil {
			r.RecordedAt = t
		} else {
			perr = errors.Join(perr, err)
		}
		if t, err := parseTime(eff); err == nil {
			r.EffectiveAt = t
		} else {
			perr = errors.Join(perr, err)
		}
		if err := json.Unmarshal([]byte(attrs), &r.Attributes); err != nil {
			perr = errors.Join(perr, err)
		}
		if perr != nil {
			// A row a reader cannot parse was edited: Verify names it.
			r.Detail += " [unreadable: " + perr.Error() + "]"
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit store: read: %w", err)
	}
	return nil
}

// Records returns the records f selects, in chain order.
func (s *Store) Records(ctx context.Context, f Filter) ([]audit.Record, error) {
	var out []audit.Record
	err := s.Each(ctx, f, func(r audit.Record) error { out = append(out, r); return nil })
	return out, err
}

// Verification is the outcome of Verify.
type Verification struct {
	Records int64        `json:"records"`
	First   int64        `json:"first_seq"`
	Last    int64        `json:"last_seq"`
	Break   *audit.Break `json:"break,omitempty"`
}

// Verify checks the whole chain from its anchor and names the first
// record that breaks it.
func (s *Store) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	var anchorSeq int64
	var anchor string
	if err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_anchor WHERE id = 1`).Scan(&anchorSeq, &anchor); err != nil {
		return v, fmt.Errorf("audit store: anchor: %w", err)
	}
	chain := audit.NewChain(anchor, anchorSeq)
	errStop := errors.New("stop")
	err := s.Each(ctx, Filter{}, func(r audit.Record) error {
		if v.Records == 0 {
			v.First = r.Seq
		}
		v.Records++
		v.Last = r.Seq
		if b := chain.Next(r); b != nil {
			v.Break = b
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return v, err
	}
	return v, nil
}

// Purge deletes the records older than before (retention), oldest first
// and only a prefix of the chain, moves the anchor to the last one deleted
// and appends an audit.purged record saying so. It returns how many went.
func (s *Store) Purge(ctx context.Context, before time.Time, key string) (int64, error) {
	tx, err := s.beginChain(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	// The prefix: up to the first record not older than before.
	var upTo sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT MIN(seq) FROM audit_records WHERE at >= ?`), fmtTime(before)).Scan(&upTo); err != nil {
		return 0, fmt.Errorf("audit store: purge: %w", err)
	}
	var last struct {
		seq  int64
		hash string
	}
	q := `SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1`
	args := []any{}
	if upTo.Valid {
		q, args = `SELECT seq, hash FROM audit_records WHERE seq < ? ORDER BY seq DESC LIMIT 1`, []any{upTo.Int64}
	}
	err = tx.QueryRowContext(ctx, s.rebind(q), args...).Scan(&last.seq, &last.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit store: purge: %w", err)
	}
	steps := []struct {
		q    string
		args []any
	}{
		{`UPDATE audit_anchor SET purging = TRUE WHERE id = 1`, nil},
		{`DELETE FROM audit_records WHERE seq <= ?`, []any{last.seq}},
		{`UPDATE audit_anchor SET purging = FALSE, seq = ?, hash = ? WHERE id = 1`, []any{last.seq, last.hash}},
	}
	var n int64
	for i, st := range steps {
		res, err := tx.ExecContext(ctx, s.rebind(st.q), st.args...)
		if err != nil {
			return 0, fmt.Errorf("audit store: purge: %w", err)
		}
		if i == 1 {
			n, _ = res.RowsAffected()
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("audit store: purge: %w", err)
	}
	_, err = s.Append(ctx, []audit.Record{{Key: key, Time: s.now(), Action: "audit.purged", Actor: audit.ActorJML,
		Detail: fmt.Sprintf("retention: %d record(s) before %s removed; the chain now starts after record %d (hash %s)", n, fmtTime(before), last.seq, last.hash)}})
	return n, err
}

// Redact is dsn without its password, for logs and messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
