package prodshape

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// postgresBin finds Debian's PostgreSQL binaries. Without them the test
// cannot run: in CI (CI set) that is a failure, since .ci/run installs
// them; on a developer machine it is a skip that says what to install.
func postgresBin(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(matches)
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	const msg = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install it with `apt-get install -y postgresql` (./test.sh and .ci/run do)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Postgres is a private PostgreSQL cluster: its own data directory in a
// temp dir, a free port on 127.0.0.1, its socket in the same temp dir, and
// a role temporal (password Password) that may create databases.
type Postgres struct {
	bin, dir string
	port     int
	cred     *syscall.Credential // run as postgres when we are root
	password string              // of role temporal
	// auditOnce creates the audit store's role (AuditDB).
	auditOnce sync.Once
}

// StartPostgres initdbs and starts a cluster (fsync off), stopped and
// removed at tb's cleanup. Without Debian's PostgreSQL it skips (fails
// when CI is set).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg := &Postgres{bin: postgresBin(t), password: fmt.Sprintf("pw-%d", rand.Int64())}
	dir, err := os.MkdirTemp("", "jml-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pg.port = FreePort(t)
	data := filepath.Join(dir, "data")
	pg.run(t, "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256")
	// fsync off: a CI machine's durability is not under test, its 2 cores are.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", pg.port, dir)
	pg.run(t, "pg_ctl", "-D", data, "-w", "-t", "60", "-l", filepath.Join(dir, "postgres.log"), "-o", opts, "start")
	t.Cleanup(func() {
		cmd := pg.cmd("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
		_ = cmd.Run()
	})
	pg.run(t, "psql", "-h", dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
		"-c", fmt.Sprintf("CREATE ROLE temporal LOGIN CREATEDB PASSWORD '%s'", pg.password))
	return pg
}

func (pg *Postgres) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.dir
	cmd.Env = []string{"PATH=" + pg.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + pg.dir}
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

// run runs a PostgreSQL tool and returns its stdout; it fails the test
// with the tool's output when it fails.
func (pg *Postgres) run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := pg.cmd(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "postgres.log"))
		t.Fatalf("%s %v: %v\n%s%s\npostgres.log:\n%s", name, args, err, out.Bytes(), errb.Bytes(), log)
	}
	return out.Bytes()
}

// Dump is pg_dump of one database, plain SQL (bytea in hex).
func (pg *Postgres) Dump(t testing.TB, db string) []byte {
	t.Helper()
	return pg.run(t, "pg_dump", "-h", pg.dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", db)
}

// FreePort is a free TCP port on 127.0.0.1 at most 32767: Temporal's
// PostgreSQL schema keeps cluster membership ports in a SMALLINT.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if portsTaken[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsTaken[p] = true
		return p
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{} // handed out by this process
)

// CPU is the processor time the cluster has used so far: the postmaster,
// its live backends and the children it has reaped (user and system, from
// /proc); 0 when it cannot be read.
func (pg *Postgres) CPU() time.Duration {
	b, err := os.ReadFile(filepath.Join(pg.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	ticks := func(pid int) (own, reaped, ppid int64, ok bool) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, 0, 0, false
		}
		_, rest, found := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !found || len(f) < 15 {
			return 0, 0, 0, false
		}
		n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
		// After the name: state, ppid, …, utime (12th), stime, cutime, cstime.
		return n(11) + n(12), n(13) + n(14), n(1), true
	}
	own, reaped, _, ok := ticks(pid)
	if !ok {
		return 0
	}
	total := own + reaped
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if o, _, ppid, ok := ticks(child); ok && ppid == int64(pid) {
			total += o
		}
	}
	return time.Duration(total) * 10 * time.Millisecond // 100 ticks a second on Linux
}

// psql runs one SQL statement as the superuser.
func (pg *Postgres) psql(t testing.TB, sql string) {
	t.Helper()
	pg.run(t, "psql", "-h", pg.dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)
}

// AuditDB creates database name, owned by its own role jml_audit, and
// returns its URL: the audit store's place on the server the production
// shape runs.
func (pg *Postgres) AuditDB(t testing.TB, name string) string {
	t.Helper()
	pg.auditOnce.Do(func() {
		pg.psql(t, fmt.Sprintf("CREATE ROLE jml_audit LOGIN PASSWORD '%s'", pg.password))
	})
	pg.psql(t, fmt.Sprintf("CREATE DATABASE %s OWNER jml_audit", name))
	return fmt.Sprintf("postgres://jml_audit:%s@127.0.0.1:%d/%s?sslmode=disable", pg.password, pg.port, name)
}

// AuditOutage takes database db away (no connections; the open ones cut)
// or gives it back.
func (pg *Postgres) AuditOutage(t testing.TB, db string, down bool) {
	t.Helper()
	pg.psql(t, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", db, !down))
	if down {
		pg.psql(t, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", db))
	}
}
