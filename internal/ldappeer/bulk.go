package ldappeer

import (
	"fmt"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// User is a person to load into a directory in bulk (e.g. the 1,000 users
// a reconciliation test reads back). Empty fields are left out.
type User struct {
	// Login is sAMAccountName (AD; at most 20 characters) or uid (OpenLDAP).
	Login string
	// CN names the AD object (CN=…); OpenLDAP entries are named by uid.
	CN         string
	GivenName  string
	Surname    string
	Mail       string
	Title      string
	Department string
	// EmployeeID is employeeID on AD, employeeNumber on OpenLDAP.
	EmployeeID string
	// Password, when set, is the user's password (unicodePwd on AD, so the
	// account can be enabled; userPassword on OpenLDAP). Without it an AD
	// account is created disabled, as AD requires.
	Password string
	// Disabled creates the AD account disabled (userAccountControl 514).
	Disabled bool
}

// GenerateUsers returns n distinct users: login bulk00000…, employee ID
// B00000…, no password.
func GenerateUsers(n int) []User {
	users := make([]User, n)
	for i := range users {
		users[i] = User{
			Login:      fmt.Sprintf("bulk%05d", i),
			CN:         fmt.Sprintf("Bulk User %05d", i),
			GivenName:  "Bulk",
			Surname:    fmt.Sprintf("User %05d", i),
			Mail:       fmt.Sprintf("bulk%05d@jml.test", i),
			Title:      "Engineer",
			Department: "Engineering",
			EmployeeID: fmt.Sprintf("B%05d", i),
		}
	}
	return users
}

// LoadUsers adds users to the AD container (e.g. s.StaffDN) as user
// objects and returns their DNs in order.
func (s *Samba) LoadUsers(t testing.TB, container string, users []User) []string {
	t.Helper()
	reqs := make([]*ldap.AddRequest, len(users))
	for i, u := range users {
		cn := u.CN
		if cn == "" {
			cn = u.Login
		}
		r := ldap.NewAddRequest("CN="+ldap.EscapeDN(cn)+","+container, nil)
		r.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
		r.Attribute("sAMAccountName", []string{u.Login})
		r.Attribute("userPrincipalName", []string{u.Login + "@jml.test"})
		addIf(r, "givenName", u.GivenName)
		addIf(r, "sn", u.Surname)
		addIf(r, "displayName", joinName(u.GivenName, u.Surname))
		addIf(r, "mail", u.Mail)
		addIf(r, "title", u.Title)
		addIf(r, "department", u.Department)
		addIf(r, "employeeID", u.EmployeeID)
		uac := "514" // ACCOUNTDISABLE|NORMAL_ACCOUNT
		if u.Password != "" {
			r.Attribute("unicodePwd", []string{UnicodePwd(u.Password)})
			if !u.Disabled {
				uac = "512"
			}
		}
		r.Attribute("userAccountControl", []string{uac})
		reqs[i] = r
	}
	return addAll(t, &s.Directory, reqs)
}

// LoadUsers adds users to the OpenLDAP container (e.g. s.StaffDN) as
// inetOrgPerson entries named by uid and returns their DNs in order.
func (s *Slapd) LoadUsers(t testing.TB, container string, users []User) []string {
	t.Helper()
	reqs := make([]*ldap.AddRequest, len(users))
	for i, u := range users {
		cn := u.CN
		if cn == "" {
			cn = joinName(u.GivenName, u.Surname)
		}
		sn := u.Surname
		if sn == "" {
			sn = u.Login
		}
		r := ldap.NewAddRequest("uid="+ldap.EscapeDN(u.Login)+","+container, nil)
		r.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "inetOrgPerson"})
		r.Attribute("uid", []string{u.Login})
		r.Attribute("cn", []string{cn})
		r.Attribute("sn", []string{sn})
		addIf(r, "givenName", u.GivenName)
		addIf(r, "displayName", joinName(u.GivenName, u.Surname))
		addIf(r, "mail", u.Mail)
		addIf(r, "title", u.Title)
		addIf(r, "departmentNumber", u.Department)
		addIf(r, "employeeNumber", u.EmployeeID)
		addIf(r, "userPassword", u.Password)
		reqs[i] = r
	}
	return addAll(t, &s.Directory, reqs)
}

// UnicodePwd encodes a password as AD's unicodePwd takes it: in double
// quotes, UTF-16LE.
func UnicodePwd(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 0, 2*len(u))
	for _, r := range u {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}

// SearchAll reads every entry under base matching filter as the
// administrator, in pages of 500 (RFC 2696), as a reconciliation would.
func (d *Directory) SearchAll(t testing.TB, base, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := d.Dial(t).SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree,
		ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil), 500)
	if err != nil {
		t.Fatalf("ldappeer: search %s under %s: %v", filter, base, err)
	}
	return res.Entries
}

// loadWorkers is how many adds are in flight at once: enough to keep a
// single-process server busy without taking the machine's cores.
const loadWorkers = 4

// addAll sends the adds over loadWorkers admin connections and returns
// their DNs in order; the first failure fails the test.
func addAll(t testing.TB, d *Directory, reqs []*ldap.AddRequest) []string {
	t.Helper()
	conns := make([]*ldap.Conn, loadWorkers)
	for i := range conns {
		conns[i] = d.Dial(t)
	}
	next := make(chan *ldap.AddRequest)
	errs := make(chan error, loadWorkers)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				if err := c.Add(r); err != nil {
					errs <- fmt.Errorf("add %s: %w", r.DN, err)
					return
				}
			}
		}()
	}
	dns := make([]string, len(reqs))
	var err error
send:
	for i, r := range reqs {
		dns[i] = r.DN
		select {
		case next <- r:
		case err = <-errs:
			break send
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		t.Fatalf("ldappeer: bulk load: %v", err)
	}
	return dns
}

func addIf(r *ldap.AddRequest, attr, value string) {
	if value != "" {
		r.Attribute(attr, []string{value})
	}
}

func joinName(given, sur string) string {
	switch {
	case given == "":
		return sur
	case sur == "":
		return given
	}
	return given + " " + sur
}
