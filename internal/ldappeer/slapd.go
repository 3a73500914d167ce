package ldappeer

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jml-dev/jml/internal/freeport"
)

// The naming context every slapd peer serves.
const SlapdBaseDN = "dc=jml,dc=test"

// Debian's OpenLDAP paths.
const (
	slapdModules = "/usr/lib/ldap"
	slapdSchemas = "/etc/ldap/schema"
)

// Slapd is a running OpenLDAP server for dc=jml,dc=test: mdb backend,
// schemas core, cosine, inetorgperson and nis, the ppolicy overlay with
// lockout (a default policy; pwdAccountLockedTime locks an account), the
// memberof overlay (memberOf on members of groupOfNames) and refint.
// Paged results (RFC 2696) work as mdb serves them; an unpaged search by
// anyone but the rootdn returns at most 500 entries, as Debian's default.
type Slapd struct {
	Directory
	// PolicyDN is the default password policy (ppolicy) entry.
	PolicyDN string
	service  Account
	// Dir holds the configuration (slapd.conf), the database and the TLS files.
	Dir  string
	proc *process
}

// StartSlapd writes a slapd.conf into a temporary directory, loads the base
// entries (dc=jml,dc=test, and unless Bare is given ou=Staff, ou=Disabled,
// ou=Groups; always ou=Policies with the default policy and ou=Services
// with the service account), and starts slapd
// on free ports of 127.0.0.1 for LDAP (StartTLS) and LDAPS, with a
// certificate for 127.0.0.1 signed by a fresh CA (CAFile). It returns once
// an administrator bind over LDAPS succeeds.
func StartSlapd(t testing.TB, opts ...Option) *Slapd {
	t.Helper()
	cfg := newConfig(opts)
	slapd := need(t, "slapd", "slapd")
	slapadd := need(t, "slapadd", "slapd")
	if _, err := os.Stat(filepath.Join(slapdModules, "ppolicy.so")); err != nil {
		unavailable(t, "OpenLDAP's overlays are missing from "+slapdModules+": install them with `apt-get install -y slapd`")
	}
	dir := tempDir(t, "jml-slapd-")
	pool, err := writeTLS(dir, "127.0.0.1")
	if err != nil {
		t.Fatalf("ldappeer: TLS certificate: %v", err)
	}
	ldapPort, ldapsPort := pickPort(t), pickPort(t)
	for ldapsPort == ldapPort {
		ldapsPort = pickPort(t)
	}
	s := &Slapd{
		Directory: Directory{
			URL:           "ldaps://127.0.0.1:" + strconv.Itoa(ldapsPort),
			PlainURL:      "ldap://127.0.0.1:" + strconv.Itoa(ldapPort),
			CAFile:        filepath.Join(dir, "ca.pem"),
			BaseDN:        SlapdBaseDN,
			AdminDN:       "cn=admin," + SlapdBaseDN,
			AdminPassword: "jml-test-admin",
			StaffDN:       "ou=Staff," + SlapdBaseDN,
			DisabledDN:    "ou=Disabled," + SlapdBaseDN,
			GroupsDN:      "ou=Groups," + SlapdBaseDN,
			host:          "127.0.0.1",
			caPool:        pool,
		},
		PolicyDN: "cn=default,ou=Policies," + SlapdBaseDN,
		service: Account{
			DN:       "cn=jml,ou=Services," + SlapdBaseDN,
			BindName: "cn=jml,ou=Services," + SlapdBaseDN,
			Password: "jml-test-service",
		},
		Dir: dir,
	}
	s.bindName = s.AdminDN
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	if err := os.WriteFile(seed, []byte(s.seed(cfg.bare)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(slapadd, "-q", "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("ldappeer: slapadd: %v\n%s", err, out)
	}
	// -d 0 keeps slapd in the foreground (a child of the test) and quiet.
	s.proc = startProcess(t, filepath.Join(dir, "slapd.out"), slapd,
		"-d", "0", "-f", conf, "-h", s.PlainURL+"/ "+s.URL+"/")
	s.proc.waitBind(t, &s.Directory, 30*time.Second)
	return s
}

// Log is what slapd printed (the tail), for failure messages.
func (s *Slapd) Log() string { return s.proc.output() }

func pickPort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatalf("ldappeer: %v", err)
	}
	return p
}

// config is slapd.conf. Users may bind (auth on userPassword) and change
// their own password; bound users read the tree; the service account
// writes under the Staff, Disabled and Groups OUs (serviceACL); the rootdn
// does anything.
func (s *Slapd) config() string {
	var b strings.Builder
	for _, schema := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include %s/%s.schema\n", slapdSchemas, schema)
	}
	fmt.Fprintf(&b, `modulepath %[1]s
moduleload back_mdb
moduleload ppolicy
moduleload memberof
moduleload refint
pidfile %[2]s/slapd.pid
argsfile %[2]s/slapd.args
TLSCACertificateFile %[2]s/ca.pem
TLSCertificateFile %[2]s/cert.pem
TLSCertificateKeyFile %[2]s/key.pem
sizelimit size.soft=500 size.hard=500 size.prtotal=unlimited

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
%[7]saccess to attrs=userPassword by self =w by anonymous auth by * none
access to * by users read by * none

database mdb
maxsize 268435456
dbnosync
suffix "%[3]s"
rootdn "%[4]s"
rootpw %[5]s
directory %[2]s/data
index objectClass eq
index cn,uid,mail,employeeNumber eq,sub
index member,memberOf eq
index entryUUID eq

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

overlay refint
refint_attributes member manager

overlay ppolicy
ppolicy_default "%[6]s"
ppolicy_use_lockout
ppolicy_hash_cleartext
`, slapdModules, s.Dir, s.BaseDN, s.AdminDN, s.AdminPassword, s.PolicyDN, s.serviceACL())
	return b.String()
}

// serviceACL is what docs/active-directory.md tells an OpenLDAP
// administrator to grant jml's service account: in each of its containers,
// write (never read) passwords, lock and unlock accounts (ppolicy's
// pwdAccountLockedTime, pwdReset), and write entries, which covers add,
// modify, delete and moves between the containers.
func (s *Slapd) serviceACL() string {
	var b strings.Builder
	svc := s.service.DN
	for _, dn := range []string{s.StaffDN, s.DisabledDN, s.GroupsDN} {
		fmt.Fprintf(&b, `access to dn.subtree="%[1]s" attrs=userPassword
	by dn.exact="%[2]s" =w
	by self =w
	by anonymous auth
	by * none
access to dn.subtree="%[1]s" attrs=pwdAccountLockedTime,pwdReset
	by dn.exact="%[2]s" write
	by users read
	by * none
access to dn.subtree="%[1]s"
	by dn.exact="%[2]s" write
	by users read
	by * none
`, dn, svc)
	}
	return b.String()
}

// ServiceAccount is cn=jml,ou=Services,dc=jml,dc=test, which the
// configuration lets write under the Staff, Disabled and Groups OUs and
// nowhere else (see serviceACL).
func (s *Slapd) ServiceAccount(testing.TB) Account { return s.service }

// ssha is userPassword's {SSHA} scheme: the salted SHA-1 slappasswd makes
// (slapadd does not hash what it loads).
func ssha(password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

// seed is the LDIF slapadd loads before the server starts. The default
// policy locks an account after 5 failed binds until an administrator
// clears pwdAccountLockedTime; jml's leaver sets that attribute itself.
func (s *Slapd) seed(bare bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `dn: %s
objectClass: top
objectClass: dcObject
objectClass: organization
dc: jml
o: jml

dn: ou=Policies,%[1]s
objectClass: organizationalUnit
ou: Policies

dn: %[2]s
objectClass: person
objectClass: pwdPolicy
cn: default
sn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 5
pwdLockoutDuration: 0
pwdAllowUserChange: TRUE
pwdMinLength: 8
pwdCheckQuality: 1

dn: ou=Services,%[1]s
objectClass: organizationalUnit
ou: Services

dn: %[3]s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: jml
userPassword: %[4]s

`, s.BaseDN, s.PolicyDN, s.service.DN, ssha(s.service.Password))
	if !bare {
		for _, dn := range []string{s.StaffDN, s.DisabledDN, s.GroupsDN} {
			ou, _, _ := strings.Cut(strings.TrimPrefix(dn, "ou="), ",")
			fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: %s\n\n", dn, ou)
		}
	}
	return b.String()
}
