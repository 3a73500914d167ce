package ldap

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
)

// Capabilities an LDAP probe reports beyond the shared ones.
const (
	CapBind       = "bind"
	CapTLS        = "tls"
	CapContainers = "containers"
	CapSchema     = "schemas"
)

// pagedResultsOID is the simple paged results control (RFC 2696).
const pagedResultsOID = "1.2.840.113556.1.4.319"

// ProbePrefix starts the names of what a write probe creates.
const ProbePrefix = "jml-probe-"

// Probe binds, reports the TLS session and its certificate, checks that
// the base DN and the containers exist, that the schema has every mapped
// attribute and that the directory pages results; with write, it creates
// a disabled probe user and group (jml-probe-…), changes the user, adds it
// to the group and deletes both.
func (c *Connector) Probe(ctx context.Context, write bool) ([]connectors.Capability, error) {
	var out []connectors.Capability
	add := func(name, status, format string, args ...any) {
		out = append(out, connectors.Capability{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	conn, err := c.client(ctx)
	if err != nil {
		return nil, err // unreachable or refused: the report's error
	}
	add(CapBind, connectors.CapWorks, "bound as %s", c.cfg.BindDN)
	if st, ok := conn.TLSConnectionState(); ok && c.cfg.TLS != TLSNone {
		detail := fmt.Sprintf("%s (%s)", tls.VersionName(st.Version), c.cfg.TLS)
		if len(st.PeerCertificates) > 0 {
			cert := st.PeerCertificates[0]
			detail += fmt.Sprintf(", certificate of %s issued by %s, verified, valid until %s", cert.Subject.CommonName,
				cert.Issuer.CommonName, cert.NotAfter.Format("2006-01-02"))
		}
		add(CapTLS, connectors.CapWorks, "%s", detail)
	} else {
		add(CapTLS, connectors.CapUnsupported, "plain LDAP (--dev): passwords are never sent over it")
	}

	root, err := c.readDN(ctx, "read the root DSE", "", []string{"supportedControl", "subschemaSubentry"})
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range []struct{ name, dn string }{{"base_dn", c.cfg.BaseDN}, {"user_container", c.users.suffix()},
		{"groups_container", c.cfg.GroupsContainer}, {"disabled_container", c.cfg.DisabledContainer}} {
		if f.dn == "" {
			continue
		}
		if _, err := c.readDN(ctx, "read "+f.name, f.dn, []string{"objectClass"}); err != nil {
			missing = append(missing, fmt.Sprintf("%s %s: %v", f.name, f.dn, err))
		}
	}
	if len(missing) > 0 {
		add(CapContainers, connectors.CapUnsupported, "%s", strings.Join(missing, "; "))
	} else {
		add(CapContainers, connectors.CapWorks, "base DN and containers exist (user container template %s)", c.users.src)
	}

	if err := c.ValidateAttributes(ctx); err != nil {
		add(CapSchema, connectors.CapUnsupported, "%v", err)
	} else {
		add(CapSchema, connectors.CapWorks, "every mapped attribute is in the schema (%s, %s, …)", c.schema.employee, c.schema.login)
	}
	if slices.Contains(root.GetAttributeValues("supportedControl"), pagedResultsOID) {
		if _, _, err := c.ListAccounts(ctx, "", 1); err != nil {
			add(connectors.CapList, connectors.CapUnsupported, "paged search: %v", err)
		} else {
			add(connectors.CapList, connectors.CapWorks, "simple paged results (RFC 2696), %d a page", c.cfg.PageSize)
		}
	} else {
		add(connectors.CapList, connectors.CapUnsupported, "the directory does not advertise paged results (%s)", pagedResultsOID)
	}
	probe := ProbePrefix + randHex()
	if _, err := c.FindAccount(ctx, connectors.Key{Attribute: attrLogin, Value: probe}); errors.Is(err, connectors.ErrNotFound) {
		add(connectors.CapLookup, connectors.CapWorks, "find by %s and %s", c.schema.login, c.schema.employee)
	} else {
		add(connectors.CapLookup, connectors.CapUnsupported, "find by %s: %v", c.schema.login, err)
	}
	if _, err := c.FindGroup(ctx, probe); errors.Is(err, connectors.ErrNotFound) {
		add(connectors.CapGroups, connectors.CapWorks, "find groups by cn")
		add(connectors.CapMemberships, connectors.CapWorks, "groups whose member is the account")
	} else {
		add(connectors.CapGroups, connectors.CapUnsupported, "find group: %v", err)
	}
	if !write {
		for _, n := range []string{connectors.CapCreate, connectors.CapUpdate, connectors.CapDelete, connectors.CapMembership} {
			add(n, connectors.CapUntested, "a write: run with --write-probe")
		}
		return out, nil
	}
	return append(out, c.writeProbe(ctx, probe)...), nil
}

// writeProbe creates a disabled user (no password) in the user
// container's fixed part and a group in the groups container, changes the
// user, adds it to the group and deletes both.
func (c *Connector) writeProbe(ctx context.Context, probe string) (out []connectors.Capability) {
	res := func(name string, err error, ok string) {
		st, detail := connectors.CapWorks, ok
		if err != nil {
			st, detail = connectors.CapUnsupported, err.Error()
		}
		out = append(out, connectors.Capability{Name: name, Status: st, Detail: detail})
	}
	name := probe
	if c.cfg.Flavour == ActiveDirectory && len(name) > 20 {
		name = name[:20]
	}
	dn := rdn(c.schema.rdnAttr, name) + "," + c.users.suffix()
	a := connectors.Attributes{attrLogin: name, "last_name": "probe (safe to delete)", "description": "jml write probe"}
	err := c.add(ctx, dn, a, "", connectors.CreateOptions{})
	res(connectors.CapCreate, err, "created disabled user "+dn)
	if err != nil {
		return out
	}
	defer func() {
		err := c.do(ctx, "delete probe user", func(conn ldapv3.Client) error { return conn.Del(ldapv3.NewDelRequest(dn, nil)) })
		res(connectors.CapDelete, err, "deleted "+dn)
	}()
	mod := ldapv3.NewModifyRequest(dn, nil)
	mod.Replace("description", []string{"jml write probe (updated)"})
	res(connectors.CapUpdate, c.do(ctx, "change probe user", func(conn ldapv3.Client) error { return conn.Modify(mod) }), "changed description")
	gname := probe + "-group" // AD: sAMAccountName is unique across users and groups
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: gname, Description: "jml write probe"})
	if err != nil {
		res(connectors.CapMembership, err, "")
		return out
	}
	gdn := rdn("CN", gname) + "," + c.cfg.GroupsContainer
	madd := ldapv3.NewModifyRequest(gdn, nil)
	madd.Add("member", []string{dn})
	err = c.do(ctx, "add probe member", func(conn ldapv3.Client) error { return conn.Modify(madd) })
	if err == nil {
		err = c.removeMemberDN(ctx, gdn, dn)
	}
	res(connectors.CapMembership, err, "added to and removed from group "+g.Name)
	if derr := c.do(ctx, "delete probe group", func(conn ldapv3.Client) error { return conn.Del(ldapv3.NewDelRequest(gdn, nil)) }); derr != nil {
		res("cleanup", derr, "")
	}
	return out
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidateAttributes reports the mapped attributes (of names, or all when
// none are given) that the directory's schema lacks: an AD without the
// employeeID attribute, an OpenLDAP without inetOrgPerson.
func (c *Connector) ValidateAttributes(ctx context.Context, names ...string) error {
	root, err := c.readDN(ctx, "read the root DSE", "", []string{"subschemaSubentry"})
	if err != nil {
		return err
	}
	sub := root.GetAttributeValue("subschemaSubentry")
	if sub == "" {
		return connectors.Permanentf(TypeSchema, "ldap: the root DSE names no subschema entry")
	}
	res, err := c.search(ctx, "read the schema", ldapv3.NewSearchRequest(sub, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases,
		0, 0, false, "(objectClass=subschema)", []string{"attributeTypes"}, nil))
	if err != nil {
		return err
	}
	if len(res.Entries) == 0 {
		return connectors.Permanentf(TypeSchema, "ldap: subschema entry %s is empty", sub)
	}
	known := map[string]bool{}
	for _, def := range res.Entries[0].GetAttributeValues("attributeTypes") {
		for _, n := range schemaNames(def) {
			known[strings.ToLower(n)] = true
		}
	}
	var wires []string
	if len(names) == 0 {
		for _, a := range c.schema.attrs {
			wires = append(wires, a.wire)
		}
	}
	var unmapped []string
	for _, n := range names {
		if w := c.schema.wire(n); w != "" {
			wires = append(wires, w)
		} else {
			unmapped = append(unmapped, n)
		}
	}
	var lack []string
	for _, w := range wires {
		if !known[strings.ToLower(w)] {
			lack = append(lack, w)
		}
	}
	switch {
	case len(unmapped) > 0:
		return connectors.Permanentf(TypeSchema, "ldap: attributes %s are not mapped (mapped: %s)", strings.Join(unmapped, ", "), c.mappedNames())
	case len(lack) > 0:
		return connectors.Permanentf(TypeSchema, "ldap: the directory's schema lacks %s", strings.Join(lack, ", "))
	}
	return nil
}

func (c *Connector) mappedNames() string {
	var out []string
	for _, a := range c.schema.attrs {
		out = append(out, a.name)
	}
	return strings.Join(out, ", ")
}

// schemaNames are the NAMEs of an attributeTypes definition:
// ( 1.2.840… NAME 'cn' … ) or NAME ( 'cn' 'commonName' ).
func schemaNames(def string) []string {
	i := strings.Index(def, " NAME ")
	if i < 0 {
		return nil
	}
	rest := strings.TrimSpace(def[i+6:])
	if strings.HasPrefix(rest, "(") {
		rest = rest[1:strings.IndexByte(rest, ')')]
	} else if j := strings.IndexByte(rest[1:], '\''); j >= 0 {
		rest = rest[:j+2]
	}
	var out []string
	for _, f := range strings.Fields(rest) {
		out = append(out, strings.Trim(f, "'"))
	}
	return out
}
