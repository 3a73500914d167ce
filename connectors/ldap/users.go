package ldap

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// treeDelete is AD's tree delete control: a user with child objects
// (ActiveSync devices, printers) is deleted with them.
const treeDelete = "1.2.840.113556.1.4.805"

// userFilter is the filter of user entries with key (an equality term).
func (c *Connector) userFilter(key string) string {
	if c.cfg.Flavour == OpenLDAP {
		return "(&(objectClass=inetOrgPerson)" + key + ")"
	}
	return "(&(objectCategory=person)(objectClass=user)" + key + ")"
}

func (c *Connector) groupFilter(key string) string {
	if c.cfg.Flavour == OpenLDAP {
		return "(&(objectClass=groupOfNames)" + key + ")"
	}
	return "(&(objectClass=group)" + key + ")"
}

// search runs one search (one request: no paging).
func (c *Connector) search(ctx context.Context, what string, req *ldapv3.SearchRequest) (*ldapv3.SearchResult, error) {
	var res *ldapv3.SearchResult
	err := c.do(ctx, what, func(conn ldapv3.Client) error {
		var err error
		res, err = conn.Search(req)
		return err
	})
	if err == nil {
		for _, e := range res.Entries {
			c.cache.put(c.schema.idOf(e), e.DN, e.GetAttributeValue(c.schema.employee))
		}
	}
	return res, err
}

// findOne is the one entry under the base DN that filter finds:
// ErrNotFound when none, a permanent error when several.
func (c *Connector) findOne(ctx context.Context, what, filter string, attrs []string) (*ldapv3.Entry, error) {
	res, err := c.search(ctx, what, ldapv3.NewSearchRequest(c.cfg.BaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases,
		2, int(c.cfg.Timeout.Seconds()), false, filter, attrs, nil))
	if err != nil {
		return nil, err
	}
	switch len(res.Entries) {
	case 0:
		return nil, fmt.Errorf("ldap: %s: %w", what, connectors.ErrNotFound)
	case 1:
		return res.Entries[0], nil
	}
	return nil, connectors.Permanentf(TypeRefused, "ldap: %s: more than one entry matches", what)
}

// readDN reads the entry at dn.
func (c *Connector) readDN(ctx context.Context, what, dn string, attrs []string) (*ldapv3.Entry, error) {
	res, err := c.search(ctx, what, ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases,
		1, int(c.cfg.Timeout.Seconds()), false, "(objectClass=*)", attrs, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) == 0 {
		return nil, fmt.Errorf("ldap: %s: %w", what, connectors.ErrNotFound)
	}
	return res.Entries[0], nil
}

// userByID is the user entry whose objectGUID/entryUUID is id.
func (c *Connector) userByID(ctx context.Context, what, id string) (*ldapv3.Entry, error) {
	return c.findOne(ctx, what, c.userFilter(c.schema.idFilter(id)), c.schema.userAttributes())
}

// account is e as an Account; the manager's DN read back as the manager's
// employee ID, which is what the policy writes.
func (c *Connector) account(ctx context.Context, e *ldapv3.Entry) (*connectors.Account, error) {
	return c.accountCached(ctx, e, map[string]string{})
}

// accountCached is account with the managers' employee IDs read before,
// by DN (a page of a listing reads each manager once).
func (c *Connector) accountCached(ctx context.Context, e *ldapv3.Entry, managers map[string]string) (*connectors.Account, error) {
	a := &connectors.Account{ID: c.schema.idOf(e), Attributes: connectors.Attributes{attrDN: e.DN}}
	for _, m := range c.schema.attrs {
		if v := e.GetAttributeValue(m.wire); v != "" {
			a.Attributes[m.name] = v
		}
	}
	dn := a.Attributes[attrManager]
	if v := c.cache.employeeOf(dn); dn != "" && v != "" {
		managers[strings.ToLower(dn)] = v
	}
	if managers[strings.ToLower(dn)] != "" {
		a.Attributes[attrManager] = managers[strings.ToLower(dn)]
	} else if dn != "" {
		m, err := c.readDN(ctx, "read manager", dn, []string{c.schema.employee})
		switch {
		case errors.Is(err, connectors.ErrNotFound):
		case err != nil:
			return nil, err
		case m.GetAttributeValue(c.schema.employee) != "":
			a.Attributes[attrManager] = m.GetAttributeValue(c.schema.employee)
			managers[strings.ToLower(dn)] = a.Attributes[attrManager]
		}
	}
	a.Active, a.Status = c.active(e)
	// AD keeps memberOf on every user; OpenLDAP only with the memberof
	// overlay, so there none says nothing (nil: read them with
	// Memberships). The primary group (Domain Users) is not in it.
	if of := e.GetAttributeValues("memberOf"); len(of) > 0 || c.cfg.Flavour == ActiveDirectory {
		a.Groups = []connectors.Group{}
		for _, g := range of {
			a.Groups = append(a.Groups, connectors.Group{Name: firstRDNValue(g)})
		}
	}
	return a, nil
}

// active reads whether e can log on: AD's ACCOUNTDISABLE bit, or an
// OpenLDAP ppolicy lock.
func (c *Connector) active(e *ldapv3.Entry) (bool, string) {
	if c.cfg.Flavour == OpenLDAP {
		if e.GetAttributeValue("pwdAccountLockedTime") != "" {
			return false, "LOCKED"
		}
		return true, "ACTIVE"
	}
	uac, _ := strconv.Atoi(e.GetAttributeValue("userAccountControl"))
	if uac&uacAccountDisable != 0 {
		return false, "DISABLED"
	}
	return true, "ENABLED"
}

// normalize renames aliases to the mapped names.
func (c *Connector) normalize(a map[string]string) connectors.Attributes {
	return c.desc.Normalize(a)
}

// FindAccount finds the account whose mapped attribute by.Attribute is
// by.Value.
func (c *Connector) FindAccount(ctx context.Context, by connectors.Key) (*connectors.Account, error) {
	w := c.schema.wire(by.Attribute)
	if w == "" || w == "manager" {
		return nil, connectors.Permanentf(TypeValidation, "ldap: find account by %s: not a mapped attribute", by.Attribute)
	}
	e, err := c.findOne(ctx, "find account", c.userFilter(eq(w, by.Value)), c.schema.userAttributes())
	if err != nil {
		return nil, err
	}
	return c.account(ctx, e)
}

// Correlate finds the account by the person's employee ID (employeeID,
// employeeNumber): the first correlation, before the login.
func (c *Connector) Correlate(ctx context.Context, attrs connectors.Attributes) (*connectors.Account, error) {
	v := strings.TrimSpace(c.normalize(attrs)[attrEmployee])
	if v == "" {
		return nil, connectors.ErrNotFound
	}
	e, err := c.findOne(ctx, "correlate by "+c.schema.employee, c.userFilter(eq(c.schema.employee, v)), c.schema.userAttributes())
	if err != nil {
		return nil, err
	}
	return c.account(ctx, e)
}

// ReadAccount reads the account with ID id.
func (c *Connector) ReadAccount(ctx context.Context, id string) (*connectors.Account, error) {
	e, err := c.userByID(ctx, "read account", id)
	if err != nil {
		return nil, err
	}
	return c.account(ctx, e)
}

// managerDN is the DN of the manager's account: v itself when it is a DN,
// else the account whose employee ID is v.
func (c *Connector) managerDN(ctx context.Context, v string) (string, error) {
	if strings.Contains(v, "=") {
		if _, err := ldapv3.ParseDN(v); err == nil {
			return v, nil
		}
	}
	e, err := c.findOne(ctx, "find manager", c.userFilter(eq(c.schema.employee, v)), []string{c.schema.employee})
	if reads, _ := c.sends(); errors.Is(err, connectors.ErrNotFound) && !reads {
		// A preview without a directory: the manager is taken to exist.
		return rdn(c.schema.rdnAttr, "<manager with "+c.schema.employee+" "+v+">") + "," + c.cfg.BaseDN, nil
	}
	if errors.Is(err, connectors.ErrNotFound) {
		return "", connectors.Permanentf(TypeValidation, "ldap: manager: no account has %s %q (the manager has no linked account yet)", c.schema.employee, v)
	}
	if err != nil {
		return "", err
	}
	return e.DN, nil
}

// commonName is the CN of a new account: cn, else the display name,
// else first and last name, else the login.
func commonName(a connectors.Attributes) string {
	for _, v := range []string{a[attrCN], a["display_name"], strings.TrimSpace(a["first_name"] + " " + a["last_name"]), a[attrLogin]} {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CreateAccount adds the account in the container the template renders
// from its attributes. AD: one add carries the password (unicodePwd, TLS
// only), pwdLastSet=0 when the user must change it, and
// userAccountControl enabling the account, so a password the domain
// refuses leaves nothing behind. OpenLDAP: the add, then the password by
// the Password Modify extended operation (hashed by the server), the
// account deleted again if the password is refused. A login (or the
// employee ID) already present is the account returned, when it is this
// person's; another person's is a conflict. A CN taken in the container
// becomes "Name (login)".
func (c *Connector) CreateAccount(ctx context.Context, in connectors.Attributes, o connectors.CreateOptions) (*connectors.Account, error) {
	a := c.normalize(in)
	login := strings.TrimSpace(a[attrLogin])
	if login == "" {
		return nil, connectors.Permanentf(TypeValidation, "ldap: create account: %s (login) is required", c.schema.login)
	}
	container, err := c.users.renderFor(a)
	if err != nil {
		return nil, err
	}
	mgr := ""
	if v := a[attrManager]; v != "" {
		if mgr, err = c.managerDN(ctx, v); err != nil {
			return nil, err
		}
	}
	name := commonName(a)
	if c.cfg.Flavour == OpenLDAP {
		name = login
	}
	var dn string
	for try := 0; ; try++ {
		dn = rdn(c.schema.rdnAttr, name) + "," + container
		err = c.add(ctx, dn, a, mgr, o)
		if !errors.Is(err, connectors.ErrConflict) {
			break
		}
		if acct, ferr := c.existing(ctx, a); ferr != nil || acct != nil {
			if ferr != nil {
				return nil, ferr
			}
			return acct, nil
		}
		if try > 0 || c.cfg.Flavour == OpenLDAP {
			return nil, err
		}
		name = commonName(a) + " (" + login + ")" // a namesake in the container
	}
	if err != nil {
		return nil, err
	}
	if c.cfg.Flavour == OpenLDAP {
		if err := c.afterAdd(ctx, dn, o); err != nil {
			return nil, err
		}
	}
	e, err := c.readDN(ctx, "read back created account", dn, c.schema.userAttributes())
	if err != nil {
		return nil, err
	}
	return c.account(ctx, e)
}

// existing is the account a conflicting add ran into when it is this
// person's (same employee ID, or none and active); nil when the login is
// free (the conflict was the CN); ErrConflict when another person's.
func (c *Connector) existing(ctx context.Context, a connectors.Attributes) (*connectors.Account, error) {
	acct, err := c.FindAccount(ctx, connectors.Key{Attribute: attrLogin, Value: a[attrLogin]})
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	want, got := strings.TrimSpace(a[attrEmployee]), strings.TrimSpace(acct.Attributes[attrEmployee])
	if want != "" && got != "" && want != got || got == "" && !acct.Active {
		return nil, fmt.Errorf("ldap: create account: the %s is another account's: %w", c.schema.login, connectors.ErrConflict)
	}
	return acct, nil
}

// add sends the add of a new account.
func (c *Connector) add(ctx context.Context, dn string, a connectors.Attributes, mgr string, o connectors.CreateOptions) error {
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", c.schema.userClasses)
	for _, m := range c.schema.attrs {
		v := strings.TrimSpace(a[m.name])
		switch {
		case m.name == attrManager:
			v = mgr
		case m.name == attrCN:
			v = firstRDNValue(dn)
		}
		if v != "" {
			req.Attribute(m.wire, []string{v})
		}
	}
	if c.cfg.Flavour == OpenLDAP {
		if !hasAttr(req, "sn") {
			req.Attribute("sn", []string{a[attrLogin]}) // person MUSTs sn
		}
		if !o.Activate {
			req.Attribute("pwdAccountLockedTime", []string{lockedForever})
		}
		return c.do(ctx, "add account", func(conn ldapv3.Client) error { return conn.Add(req) })
	}
	uac := uacDisabled
	if o.Password != nil && !o.Password.Empty() {
		uac = uacDisabled
		if o.Activate {
			uac = uacEnabled
		}
		req.Attribute("unicodePwd", []string{unicodePwd(*o.Password)})
		if c.cfg.MustChangePassword {
			req.Attribute("pwdLastSet", []string{"0"})
		}
	}
	req.Attribute("userAccountControl", []string{strconv.Itoa(uac)})
	secured := true
	err := c.do(ctx, "add account", func(conn ldapv3.Client) error {
		if o.Password != nil && !secure(conn) {
			secured = false
			return connectors.Permanentf(TypeInsecure, "ldap: add account: refused to send a password over an unencrypted connection (use ldaps:// or StartTLS)")
		}
		return conn.Add(req)
	})
	if err != nil && o.Password != nil {
		return classifyPasswordError("add account", err, secured)
	}
	return err
}

// afterAdd sets an OpenLDAP account's password: the Password Modify
// extended operation, then pwdReset when the user must change it. A
// refused password deletes the account again: nothing half-made stays.
func (c *Connector) afterAdd(ctx context.Context, dn string, o connectors.CreateOptions) error {
	if o.Password == nil || o.Password.Empty() {
		return nil
	}
	err := c.setPassword(ctx, dn, *o.Password, c.cfg.MustChangePassword)
	if err == nil {
		return nil
	}
	if derr := c.do(ctx, "delete account whose password was refused", func(conn ldapv3.Client) error {
		return conn.Del(ldapv3.NewDelRequest(dn, nil))
	}); derr != nil {
		return fmt.Errorf("%w; and deleting the account again failed, it is left disabled without a password: %v", err, derr)
	}
	return err
}

// classifyPasswordError is classifyPassword for an error do already
// classified as permanent: the LDAP error under it decides.
func classifyPasswordError(what string, err error, secured bool) error {
	var le *ldapv3.Error
	if !errors.As(err, &le) {
		return err
	}
	if le.ResultCode != ldapv3.LDAPResultConstraintViolation && le.ResultCode != ldapv3.LDAPResultUnwillingToPerform {
		return err
	}
	msg := strings.ToLower(diagnostic(le))
	if le.ResultCode == ldapv3.LDAPResultConstraintViolation && !strings.Contains(msg, "password") && !strings.Contains(msg, "0000052d") {
		return err
	}
	return classifyPassword(what, le, secured)
}

func hasAttr(req *ldapv3.AddRequest, name string) bool {
	for _, a := range req.Attributes {
		if strings.EqualFold(a.Type, name) {
			return true
		}
	}
	return false
}

func firstRDNValue(dn string) string {
	d, err := ldapv3.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return ""
	}
	return d.RDNs[0].Attributes[0].Value
}

// UpdateAccount writes change: attributes replaced or, when empty,
// removed; the manager resolved to its DN; a new login on OpenLDAP or a
// new cn on AD (RDN attributes) renamed with ModifyDN; and the account
// moved when the container its attributes render changed (not out of the
// disabled container: Reactivate does that).
func (c *Connector) UpdateAccount(ctx context.Context, id string, change connectors.Diff) error {
	e, err := c.userByID(ctx, "read account to update", id)
	if err != nil {
		return err
	}
	cur, err := c.account(ctx, e)
	if err != nil {
		return err
	}
	diff := c.normalize(change)
	req := ldapv3.NewModifyRequest(e.DN, nil)
	newRDN := ""
	for k, v := range diff {
		w := c.schema.wire(k)
		if w == "" {
			return connectors.Permanentf(TypeValidation, "ldap: update account: %s is not a mapped attribute", k)
		}
		v = strings.TrimSpace(v)
		switch {
		case k == attrManager && v != "":
			if v, err = c.managerDN(ctx, v); err != nil {
				return err
			}
		case strings.EqualFold(w, c.schema.rdnAttr) && v != "":
			newRDN = rdn(c.schema.rdnAttr, v)
			continue
		case strings.EqualFold(w, "cn") && c.cfg.Flavour == ActiveDirectory:
			continue // the RDN: renamed below
		}
		if v == "" {
			if e.GetAttributeValue(w) != "" {
				req.Delete(w, nil)
			}
			continue
		}
		req.Replace(w, []string{v})
	}
	if c.cfg.Flavour == ActiveDirectory && strings.TrimSpace(diff[attrCN]) != "" {
		newRDN = rdn("CN", strings.TrimSpace(diff[attrCN]))
	}
	if len(req.Changes) > 0 {
		if err := c.do(ctx, "modify account", func(conn ldapv3.Client) error { return conn.Modify(req) }); err != nil {
			return err
		}
	}
	merged := connectors.Attributes{}
	for k, v := range cur.Attributes {
		merged[k] = v
	}
	for k, v := range diff {
		merged[k] = v
	}
	dn := e.DN
	if newRDN != "" && !strings.EqualFold(newRDN, firstRDN(dn)) {
		if dn, err = c.moveDN(ctx, dn, newRDN, ""); err != nil {
			return err
		}
	}
	parent := parentDN(dn)
	if c.cfg.DisabledContainer != "" && sameDN(parent, c.cfg.DisabledContainer) {
		return nil
	}
	if !c.touchesContainer(diff) {
		return nil
	}
	to, err := c.users.renderFor(merged)
	if err != nil {
		return err
	}
	if !sameDN(parent, to) {
		_, err = c.move(ctx, dn, to)
	}
	return err
}

// touchesContainer reports whether diff changes an attribute the
// container template reads.
func (c *Connector) touchesContainer(diff connectors.Attributes) bool {
	for _, n := range c.users.names() {
		if _, ok := diff[c.desc.Canonical(n)]; ok {
			return true
		}
	}
	return false
}

// move moves dn under container, keeping its RDN; a namesake there makes
// the AD CN "Name (login)". It returns the new DN.
func (c *Connector) move(ctx context.Context, dn, container string) (string, error) {
	r := firstRDN(dn)
	to, err := c.moveDN(ctx, dn, r, container)
	if !errors.Is(err, connectors.ErrConflict) || c.cfg.Flavour == OpenLDAP {
		return to, err
	}
	e, rerr := c.readDN(ctx, "read account to move", dn, []string{"sAMAccountName"})
	if rerr != nil {
		return "", rerr
	}
	return c.moveDN(ctx, dn, rdn("CN", firstRDNValue(dn)+" ("+e.GetAttributeValue("sAMAccountName")+")"), container)
}

// moveDN renames dn to newRDN under container ("": the same parent).
func (c *Connector) moveDN(ctx context.Context, dn, newRDN, container string) (string, error) {
	req := ldapv3.NewModifyDNRequest(dn, newRDN, true, container)
	if err := c.do(ctx, "move account", func(conn ldapv3.Client) error { return conn.ModifyDN(req) }); err != nil {
		// Samba answers a missing new parent with other (80, 00002095),
		// which classify retries; OpenLDAP with noSuchObject, which reads
		// as the account missing. The container is read to tell.
		if container != "" && !errors.Is(err, connectors.ErrConflict) && c.absent(ctx, container) {
			field := "user_container"
			if sameDN(container, c.cfg.DisabledContainer) {
				field = "disabled_container"
			}
			// Not retried: the directory will refuse it until someone
			// creates the container or corrects the configuration.
			return "", connectors.Permanentf(TypeConfig, "ldap: move account: %s %s does not exist: create it or correct the target's %s (%v)",
				field, container, field, err)
		}
		return "", err
	}
	c.cache.moved(dn)
	if container == "" {
		container = parentDN(dn)
	}
	return newRDN + "," + container, nil
}

// absent reports whether the directory says dn does not exist (an error
// reading it is not proof).
func (c *Connector) absent(ctx context.Context, dn string) bool {
	_, err := c.readDN(ctx, "read container", dn, []string{"1.1"})
	return errors.Is(err, connectors.ErrNotFound)
}

// Deprovision disables the account (AD: userAccountControl
// ACCOUNTDISABLE; OpenLDAP: the ppolicy lock pwdAccountLockedTime
// 000001010000Z, so binds fail), then removes it from every group, then
// moves it to the disabled container. A missing account is done.
// Sessions: LDAP has none to end (Kerberos tickets expire on their own).
func (c *Connector) Deprovision(ctx context.Context, id string, o connectors.DeprovisionOptions) error {
	e, err := c.userByID(ctx, "read account to deprovision", id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if active, _ := c.active(e); active {
		if err := c.setEnabled(ctx, e, false); err != nil {
			return err
		}
	}
	if o.RemoveGroups {
		// AD lists the groups on the user (memberOf); OpenLDAP is asked.
		groups := e.GetAttributeValues("memberOf")
		if c.cfg.Flavour == OpenLDAP {
			es, err := c.groupsOf(ctx, e.DN)
			if err != nil {
				return err
			}
			groups = groups[:0]
			for _, g := range es {
				groups = append(groups, g.DN)
			}
		}
		for _, g := range groups {
			if err := c.removeMemberDN(ctx, g, e.DN); err != nil {
				return err
			}
		}
	}
	if c.cfg.DisabledContainer != "" && !sameDN(parentDN(e.DN), c.cfg.DisabledContainer) {
		if _, err := c.move(ctx, e.DN, c.cfg.DisabledContainer); err != nil {
			return err
		}
	}
	return nil
}

// setEnabled flips ACCOUNTDISABLE (AD) or the ppolicy lock (OpenLDAP).
func (c *Connector) setEnabled(ctx context.Context, e *ldapv3.Entry, on bool) error {
	req := ldapv3.NewModifyRequest(e.DN, nil)
	what := "disable account"
	if on {
		what = "enable account"
	}
	if c.cfg.Flavour == OpenLDAP {
		if on {
			req.Delete("pwdAccountLockedTime", nil)
		} else {
			req.Replace("pwdAccountLockedTime", []string{lockedForever})
		}
	} else {
		uac, err := strconv.Atoi(e.GetAttributeValue("userAccountControl"))
		if err != nil {
			uac = uacNormalAccount
		}
		if on {
			uac &^= uacAccountDisable
		} else {
			uac |= uacAccountDisable
		}
		req.Replace("userAccountControl", []string{strconv.Itoa(uac)})
	}
	return c.do(ctx, what, func(conn ldapv3.Client) error { return conn.Modify(req) })
}

// Reactivate enables the account again (a rehire) and moves it from the
// disabled container back to the one its attributes render.
func (c *Connector) Reactivate(ctx context.Context, id string) error {
	e, err := c.userByID(ctx, "read account to reactivate", id)
	if err != nil {
		return err
	}
	if active, _ := c.active(e); !active {
		if err := c.setEnabled(ctx, e, true); err != nil {
			return err
		}
	}
	if c.cfg.DisabledContainer == "" || !sameDN(parentDN(e.DN), c.cfg.DisabledContainer) {
		return nil
	}
	acct, err := c.account(ctx, e)
	if err != nil {
		return err
	}
	to, err := c.users.renderFor(acct.Attributes)
	if err != nil {
		return err
	}
	_, err = c.move(ctx, e.DN, to)
	return err
}

// Delete deletes the account (AD: with its child objects, if it has
// any). A missing account is done.
func (c *Connector) Delete(ctx context.Context, id string) error {
	e, err := c.userByID(ctx, "read account to delete", id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.do(ctx, "delete account", func(conn ldapv3.Client) error {
		err := conn.Del(ldapv3.NewDelRequest(e.DN, nil))
		if c.cfg.Flavour == ActiveDirectory && ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultNotAllowedOnNonLeaf) {
			// Child objects (ActiveSync devices): a tree delete, which
			// needs the Delete Subtree right as well.
			err = conn.Del(ldapv3.NewDelRequest(e.DN, []ldapv3.Control{&ldapv3.ControlString{ControlType: treeDelete, Criticality: true}}))
		}
		return err
	})
	c.cache.moved(e.DN)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// SetPassword sets a known password the user keeps.
func (c *Connector) SetPassword(ctx context.Context, id string, pw secret.Secret) error {
	e, err := c.userByID(ctx, "read account to set its password", id)
	if err != nil {
		return err
	}
	return c.setPassword(ctx, e.DN, pw, false)
}

// ResetPassword sets a new random password the user must change at next
// logon and returns it.
func (c *Connector) ResetPassword(ctx context.Context, id string) (secret.Secret, error) {
	e, err := c.userByID(ctx, "read account to reset its password", id)
	if err != nil {
		return secret.Secret{}, err
	}
	pw := generatePassword()
	if err := c.setPassword(ctx, e.DN, pw, true); err != nil {
		return secret.Secret{}, err
	}
	return pw, nil
}

// setPassword sets dn's password over TLS only: AD replaces unicodePwd
// (an administrator's reset; pwdLastSet=0 in the same modify when the user
// must change it); OpenLDAP uses the Password Modify extended operation
// (RFC 3062), then pwdReset=TRUE.
func (c *Connector) setPassword(ctx context.Context, dn string, pw secret.Secret, mustChange bool) error {
	if pw.Empty() {
		return connectors.Permanentf(TypeValidation, "ldap: set password: empty password")
	}
	secured := true
	err := c.do(ctx, "set password", func(conn ldapv3.Client) error {
		if !secure(conn) {
			secured = false
			return connectors.Permanentf(TypeInsecure, "ldap: set password: refused to send a password over an unencrypted connection (use ldaps:// or StartTLS)")
		}
		if c.cfg.Flavour == OpenLDAP {
			_, err := conn.PasswordModify(ldapv3.NewPasswordModifyRequest(dn, "", pw.Reveal()))
			return err
		}
		req := ldapv3.NewModifyRequest(dn, nil)
		req.Replace("unicodePwd", []string{unicodePwd(pw)})
		if mustChange {
			req.Replace("pwdLastSet", []string{"0"})
		}
		return conn.Modify(req)
	})
	if err != nil {
		return classifyPasswordError("set password", err, secured)
	}
	if c.cfg.Flavour == OpenLDAP && mustChange {
		req := ldapv3.NewModifyRequest(dn, nil)
		req.Replace("pwdReset", []string{"TRUE"})
		return c.do(ctx, "require a password change", func(conn ldapv3.Client) error { return conn.Modify(req) })
	}
	return nil
}

// unicodePwd is AD's encoding of a password: in double quotes, UTF-16LE.
func unicodePwd(pw secret.Secret) string {
	u := utf16.Encode([]rune(`"` + pw.Reveal() + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		b[2*i], b[2*i+1] = byte(r), byte(r>>8)
	}
	return string(b)
}

// generatePassword is 24 characters with every class (AD complexity wants
// three of four; ppolicy quality checks vary).
func generatePassword() secret.Secret {
	const (
		lower  = "abcdefghijkmnopqrstuvwxyz"
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits = "23456789"
		symbol = "!#%+-.=?@^_~"
	)
	all := lower + upper + digits + symbol
	pick := func(set string) byte {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		return set[n.Int64()]
	}
	b := []byte{pick(lower), pick(upper), pick(digits), pick(symbol)}
	for len(b) < 24 {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		j := n.Int64()
		b[i], b[j] = b[j], b[i]
	}
	return secret.New(string(b))
}
