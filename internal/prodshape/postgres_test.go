package prodshape_test

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
	"sync"
	"syscall"
	"testing"
	"time"
)

// postgresBin finds Debian's PostgreSQL binaries. Without them the test
// cannot run: in CI (CI set) that is a failure, since .ci/run installs
// them; on a developer machine it is a skip that says what to install.
func postgresBin(t *testing.T) string {
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

// pgCluster is a private PostgreSQL cluster: its own data directory in a
// temp dir, a free port on 127.0.0.1, its socket in the same temp dir.
type pgCluster struct {
	bin, dir string
	port     int
	cred     *syscall.Credential // run as postgres when we are root
	password string              // of role temporal
	// auditOnce creates the audit store's role (auditDB).
	auditOnce sync.Once
}

func startPostgres(t *testing.T) *pgCluster {
	t.Helper()
	pg := &pgCluster{bin: postgresBin(t), password: fmt.Sprintf("pw-%d", rand.Int64())}
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
	pg.port = freePort(t)
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

func (pg *pgCluster) cmd(name string, args ...string) *exec.Cmd {
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
func (pg *pgCluster) run(t *testing.T, name string, args ...string) []byte {
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

// dump is pg_dump of one database, plain SQL (bytea in hex).
func (pg *pgCluster) dump(t *testing.T, db string) []byte {
	t.Helper()
	return pg.run(t, "pg_dump", "-h", pg.dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", db)
}

// freePort is a free TCP port on 127.0.0.1 at most 32767: Temporal's
// PostgreSQL schema keeps cluster membership ports in a SMALLINT.
func freePort(t *testing.T) int {
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
	portsTaken = map[int]bool{} // handed out by this test binary
)

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}
