package ldappeer

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The domain every Samba peer serves.
const (
	SambaRealm  = "JML.TEST"
	SambaDomain = "JML"
	SambaBaseDN = "DC=jml,DC=test"
	// sambaAdminPassword is baked into the provisioned template; the peers
	// are loopback-only and live as long as a test.
	sambaAdminPassword = "Jml-Test-Admin-1"
)

// Samba is a running Samba AD domain controller for the JML.TEST domain,
// serving LDAP (389, with StartTLS), LDAPS (636) and Kerberos on its own
// loopback address.
type Samba struct {
	Directory
	// IP is the loopback address the DC alone listens on (127.0.0.N).
	IP string
	// AdminUPN (Administrator@jml.test) binds as AdminDN does.
	AdminUPN string
	// UsersDN is AD's default user container, CN=Users,DC=jml,DC=test.
	UsersDN string
	// Dir holds the DC's state; Dir/etc/smb.conf is its configuration.
	Dir  string
	proc *process
}

// StartSamba provisions a Samba AD DC (realm JML.TEST, no DNS) into a
// temporary directory, starts `samba` on a loopback address of its own with
// a certificate for that address signed by a fresh CA (CAFile), waits until
// an administrator bind over LDAPS succeeds and, unless Bare is given,
// creates OU=Staff, OU=Disabled and OU=Groups. It needs root: Samba binds
// the directory's fixed ports, on an address it adds to lo when missing.
func StartSamba(t testing.TB, opts ...Option) *Samba {
	t.Helper()
	cfg := newConfig(opts)
	samba := need(t, "samba", "samba-ad-dc")
	tool := need(t, "samba-tool", "samba-ad-dc")
	ipBin := need(t, "ip", "iproute2")
	if os.Geteuid() != 0 {
		unavailable(t, "Samba AD DC needs root (it binds ports 389 and 636 on a loopback address it adds)")
	}
	template := sambaTemplate(t, samba, tool)
	dir := tempDir(t, "jml-samba-")
	if err := copyTree(template, dir); err != nil {
		t.Fatalf("ldappeer: copy the provisioned domain: %v", err)
	}
	ip := claimLoopback(t, ipBin)
	if err := writeSambaConf(dir, template, ip, cfg.allowPlainBind); err != nil {
		t.Fatalf("ldappeer: %v", err)
	}
	// Samba uses private/tls/{key,cert,ca}.pem as they are and generates
	// them only when missing; its own certificate names no IP address.
	tlsDir := filepath.Join(dir, "private", "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pool, err := writeTLS(tlsDir, ip)
	if err != nil {
		t.Fatalf("ldappeer: TLS certificate: %v", err)
	}
	s := &Samba{
		Directory: Directory{
			URL:           "ldaps://" + ip + ":636",
			PlainURL:      "ldap://" + ip + ":389",
			CAFile:        filepath.Join(tlsDir, "ca.pem"),
			BaseDN:        SambaBaseDN,
			AdminDN:       "CN=Administrator,CN=Users," + SambaBaseDN,
			AdminPassword: sambaAdminPassword,
			StaffDN:       "OU=Staff," + SambaBaseDN,
			DisabledDN:    "OU=Disabled," + SambaBaseDN,
			GroupsDN:      "OU=Groups," + SambaBaseDN,
			bindName:      "Administrator@jml.test",
			host:          ip,
			caPool:        pool,
		},
		IP:       ip,
		AdminUPN: "Administrator@jml.test",
		UsersDN:  "CN=Users," + SambaBaseDN,
		Dir:      dir,
	}
	s.proc = startProcess(t, filepath.Join(dir, "samba.out"), samba,
		"-i", "-M", "single", "-s", filepath.Join(dir, "etc", "smb.conf"))
	s.proc.waitBind(t, &s.Directory, 90*time.Second)
	if !cfg.bare {
		s.createContainers(t)
	}
	return s
}

// Log is what Samba logged (the tail), for failure messages.
func (s *Samba) Log() string { return s.proc.output() }

// PasswordPolicy is the domain's password policy as
// `samba-tool domain passwordsettings set` takes it.
type PasswordPolicy struct {
	Complexity    bool
	MinLength     int
	HistoryLength int
	// MinAgeDays 0 lets a user change a password right after a reset.
	MinAgeDays int
	// MaxAgeDays 0 means passwords never expire.
	MaxAgeDays int
}

// SetPasswordPolicy sets the domain password policy with samba-tool and
// reads it back over LDAP.
func (s *Samba) SetPasswordPolicy(t testing.TB, p PasswordPolicy) {
	t.Helper()
	onOff := map[bool]string{true: "on", false: "off"}
	run(t, "samba-tool", "domain", "passwordsettings", "set",
		"-s", filepath.Join(s.Dir, "etc", "smb.conf"),
		"-H", filepath.Join(s.Dir, "private", "sam.ldb"),
		"--complexity="+onOff[p.Complexity],
		"--min-pwd-length="+strconv.Itoa(p.MinLength),
		"--history-length="+strconv.Itoa(p.HistoryLength),
		"--min-pwd-age="+strconv.Itoa(p.MinAgeDays),
		"--max-pwd-age="+strconv.Itoa(p.MaxAgeDays))
	res, err := s.Dial(t).Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"minPwdLength", "pwdProperties"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("ldappeer: read back the password policy: %v", err)
	}
	e := res.Entries[0]
	props, _ := strconv.Atoi(e.GetAttributeValue("pwdProperties"))
	if e.GetAttributeValue("minPwdLength") != strconv.Itoa(p.MinLength) || (props&1 == 1) != p.Complexity {
		t.Fatalf("ldappeer: password policy reads back minPwdLength=%s pwdProperties=%d, want %+v",
			e.GetAttributeValue("minPwdLength"), props, p)
	}
}

// sambaTemplate provisions the domain once per machine and Samba version
// into the user's cache directory (provisioning costs about 9 s of CPU) and
// returns its path; each peer starts from a copy. A lock file keeps parallel
// test binaries from provisioning twice.
func sambaTemplate(t testing.TB, samba, tool string) string {
	t.Helper()
	version, err := exec.Command(samba, "-V").Output()
	if err != nil {
		t.Fatalf("ldappeer: samba -V: %v", err)
	}
	host, _ := os.Hostname()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "jml-ldappeer")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	name := "samba-" + regexp.MustCompile(`[^A-Za-z0-9.]+`).ReplaceAllString(strings.TrimSpace(string(version))+"-"+host, "_")
	template := filepath.Join(root, name)
	lock, err := os.OpenFile(filepath.Join(root, "samba.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(template, "etc", "smb.conf")); err == nil {
		return template
	}
	work, err := os.MkdirTemp(root, "provision-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	out, err := exec.Command(tool, "domain", "provision",
		"--realm="+SambaRealm, "--domain="+SambaDomain, "--server-role=dc",
		"--dns-backend=NONE", "--use-rfc2307", "--adminpass="+sambaAdminPassword,
		"--targetdir="+work, "--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes").CombinedOutput()
	if err != nil {
		t.Fatalf("ldappeer: samba-tool domain provision: %v\n%s", err, out)
	}
	// The template's smb.conf keeps the path it was provisioned at;
	// writeSambaConf swaps it for the copy's.
	conf := filepath.Join(work, "etc", "smb.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.ReplaceAll(string(b), work, template))
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(work, template); err != nil {
		t.Fatalf("ldappeer: %v", err)
	}
	return template
}

// writeSambaConf rewrites the copied smb.conf for dir and ip: only the
// directory services (smbd is not needed and dies without a real
// interface), logs, pid file and sockets kept in dir.
func writeSambaConf(dir, template, ip string, allowPlainBind bool) error {
	conf := filepath.Join(dir, "etc", "smb.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	set := map[string]string{
		"interfaces":           ip,
		"bind interfaces only": "yes",
		"server services":      "ldap, cldap, kdc",
		"log file":             filepath.Join(dir, "log.%m"),
		"log level":            "1",
		// No fsync per transaction (Samba's selftest does the same): a
		// test's directory need not survive a power cut, and syncing makes
		// each add cost tens of milliseconds.
		"ldb:nosync": "true",
		// Out of /run/samba, where a second DC would find the first's
		// pid file and sockets.
		"pid directory": filepath.Join(dir, "run"),
		"ncalrpc dir":   filepath.Join(dir, "run", "ncalrpc"),
	}
	if allowPlainBind {
		set["ldap server require strong auth"] = "no"
	}
	var lines []string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), template, dir), "\n") {
		key, _, ok := strings.Cut(strings.TrimSpace(line), "=")
		if _, replaced := set[strings.TrimSpace(key)]; ok && replaced {
			continue
		}
		lines = append(lines, line)
		if strings.TrimSpace(line) == "[global]" {
			for k, v := range set {
				lines = append(lines, "\t"+k+" = "+v)
			}
		}
	}
	return os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644)
}

// claimLoopback picks 127.0.0.N that no other peer (of any test binary)
// uses, holding a lock file until cleanup, and adds it to lo when lo lacks
// it (Samba listens only on addresses an interface has).
func claimLoopback(t testing.TB, ipBin string) string {
	t.Helper()
	for n := 10; n < 250; n++ {
		ip := fmt.Sprintf("127.0.0.%d", n)
		lock, err := tryLock(filepath.Join(os.TempDir(), "jml-ldappeer-"+ip+".lock"))
		if err != nil {
			t.Fatalf("ldappeer: %v", err)
		}
		if lock == nil {
			continue
		}
		if !portsFree(ip, 389, 636, 88, 464, 3268, 3269) {
			lock.Close()
			continue
		}
		t.Cleanup(func() { lock.Close() })
		if !loHas(ip) {
			run(t, ipBin, "addr", "add", ip+"/32", "dev", "lo")
			t.Cleanup(func() {
				if out, err := exec.Command(ipBin, "addr", "del", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
					t.Errorf("ldappeer: remove %s from lo: %v\n%s", ip, err, out)
				}
			})
		}
		return ip
	}
	t.Fatal("ldappeer: no free loopback address 127.0.0.10-249")
	return ""
}

func portsFree(ip string, ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

func loHas(ip string) bool {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return false
	}
	addrs, _ := lo.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

// copyTree copies the regular files, directories and symlinks under src
// into dst (which exists), keeping modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		}
		return nil // sockets and the like belong to a running server
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Account is a non-administrator account tests (and jml) bind as.
type Account struct {
	DN string
	// BindName is what a simple bind takes: the UPN on AD, the DN elsewhere.
	BindName string
	Password string
}

// AD schema GUIDs the service account's rights name.
const (
	guidUserClass     = "bf967aba-0de6-11d0-a285-00aa003049e2"
	guidGroupClass    = "bf967a9c-0de6-11d0-a285-00aa003049e2"
	guidResetPassword = "00299570-246d-11d0-a768-00aa006e0529" // User-Force-Change-Password
)

// ServiceAccount creates CN=svc-jml,CN=Users (password never expires) and
// delegates to it exactly what jml needs, as docs/active-directory.md tells
// an administrator to: on the Staff and Disabled OUs (and OUs under them)
// create and delete user objects, read and write their properties and reset
// their passwords (a move is a delete from one OU and a create in the other);
// on the Groups OU create, delete and write groups (members). Nothing else:
// it is a plain Domain User.
func (s *Samba) ServiceAccount(t testing.TB) Account {
	t.Helper()
	a := Account{
		DN:       "CN=svc-jml,CN=Users," + s.BaseDN,
		BindName: "svc-jml@jml.test",
		Password: "Svc-Jml-Test-Pass-1",
	}
	c := s.Dial(t)
	add := ldap.NewAddRequest(a.DN, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{"svc-jml"})
	add.Attribute("userPrincipalName", []string{a.BindName})
	add.Attribute("unicodePwd", []string{UnicodePwd(a.Password)})
	add.Attribute("userAccountControl", []string{"66048"}) // NORMAL_ACCOUNT|DONT_EXPIRE_PASSWORD
	if err := c.Add(add); err != nil {
		t.Fatalf("ldappeer: add %s: %v", a.DN, err)
	}
	res, err := c.Search(ldap.NewSearchRequest(a.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("ldappeer: read the objectSid of %s: %v", a.DN, err)
	}
	sid, err := SIDString(res.Entries[0].GetRawAttributeValue("objectSid"))
	if err != nil {
		t.Fatalf("ldappeer: %v", err)
	}
	users := fmt.Sprintf("(A;CI;CCDC;%[1]s;;%[2]s)(A;CIIO;RPWP;;%[1]s;%[2]s)(A;CIIO;CR;%[3]s;%[1]s;%[2]s)",
		guidUserClass, sid, guidResetPassword)
	groups := fmt.Sprintf("(A;CI;CCDC;%[1]s;;%[2]s)(A;CIIO;RPWP;;%[1]s;%[2]s)", guidGroupClass, sid)
	for _, ace := range []struct{ dn, sddl string }{
		{s.StaffDN, users}, {s.DisabledDN, users}, {s.GroupsDN, groups},
	} {
		run(t, "samba-tool", "dsacl", "set", "-s", filepath.Join(s.Dir, "etc", "smb.conf"),
			"-H", filepath.Join(s.Dir, "private", "sam.ldb"), "--objectdn="+ace.dn, "--sddl="+ace.sddl)
	}
	return a
}

// SIDString renders a binary objectSid as S-1-5-21-….
func SIDString(b []byte) (string, error) {
	if len(b) < 8 || len(b) != 8+4*int(b[1]) {
		return "", fmt.Errorf("objectSid of %d bytes is malformed", len(b))
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	sid := fmt.Sprintf("S-%d-%d", b[0], auth)
	for i := 8; i < len(b); i += 4 {
		sid += fmt.Sprintf("-%d", uint32(b[i])|uint32(b[i+1])<<8|uint32(b[i+2])<<16|uint32(b[i+3])<<24)
	}
	return sid, nil
}
