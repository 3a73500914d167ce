package ldap

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
)

// adGlobalSecurity is groupType for a global security group.
const adGlobalSecurity = "-2147483646"

func (c *Connector) groupAttributes() []string {
	return []string{c.schema.id, "cn", "description"}
}

func (c *Connector) group(e *ldapv3.Entry) connectors.Group {
	return connectors.Group{ID: c.schema.idOf(e), Name: e.GetAttributeValue("cn"), Description: e.GetAttributeValue("description")}
}

// FindGroup finds the group whose cn is name, anywhere under the base DN.
func (c *Connector) FindGroup(ctx context.Context, name string) (*connectors.Group, error) {
	e, err := c.findOne(ctx, "find group", c.groupFilter(eq("cn", name)), c.groupAttributes())
	if err != nil {
		return nil, err
	}
	g := c.group(e)
	return &g, nil
}

// EnsureGroup finds the group by name or creates it in the groups
// container: AD a global security group whose sAMAccountName is its name;
// OpenLDAP a groupOfNames, whose schema wants a member: the service
// account's DN holds the place (and is never listed as a member).
func (c *Connector) EnsureGroup(ctx context.Context, g connectors.Group) (*connectors.Group, error) {
	found, err := c.FindGroup(ctx, g.Name)
	if !errors.Is(err, connectors.ErrNotFound) {
		return found, err
	}
	dn := rdn("CN", g.Name) + "," + c.cfg.GroupsContainer
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", c.schema.groupClasses)
	req.Attribute("cn", []string{g.Name})
	if g.Description != "" {
		req.Attribute("description", []string{g.Description})
	}
	if c.cfg.Flavour == OpenLDAP {
		req.Attribute("member", []string{c.cfg.BindDN})
	} else {
		req.Attribute("groupType", []string{adGlobalSecurity})
		if len(g.Name) <= 64 && !strings.ContainsAny(g.Name, `"/\[]:;|=,+*?<>@`) {
			req.Attribute("sAMAccountName", []string{g.Name})
		}
	}
	err = c.do(ctx, "create group", func(conn ldapv3.Client) error { return conn.Add(req) })
	if errors.Is(err, connectors.ErrConflict) {
		// Created meanwhile, or (AD) its name is another object's
		// sAMAccountName: the group found by name, or the conflict.
		if found, ferr := c.FindGroup(ctx, g.Name); ferr == nil {
			return found, nil
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	e, err := c.readDN(ctx, "read back group", dn, c.groupAttributes())
	if err != nil {
		return nil, err
	}
	out := c.group(e)
	return &out, nil
}

// groupsOf are the groups whose member is dn, anywhere under the base DN
// (one search; AD's primary group, Domain Users, is not among them).
func (c *Connector) groupsOf(ctx context.Context, dn string) ([]*ldapv3.Entry, error) {
	res, err := c.search(ctx, "read memberships", ldapv3.NewSearchRequest(c.cfg.BaseDN, ldapv3.ScopeWholeSubtree,
		ldapv3.NeverDerefAliases, 0, int(c.cfg.Timeout.Seconds()), false, c.groupFilter(eq("member", dn)), c.groupAttributes(), nil))
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// Memberships are the account's groups.
func (c *Connector) Memberships(ctx context.Context, accountID string) ([]connectors.Group, error) {
	dn, err := c.dnOf(ctx, accountID, false)
	if err != nil {
		return nil, err
	}
	es, err := c.groupsOf(ctx, dn)
	if errors.Is(err, connectors.ErrNotFound) || err == nil && len(es) == 0 && c.cache.get(accountID) != "" {
		// A remembered DN the account may have left: ask by ID.
		c.cache.forget(accountID)
		if dn, err = c.dnOf(ctx, accountID, false); err != nil {
			return nil, err
		}
		es, err = c.groupsOf(ctx, dn)
	}
	if err != nil {
		return nil, err
	}
	out := []connectors.Group{}
	for _, g := range es {
		out = append(out, c.group(g))
	}
	return out, nil
}

// AddMember adds the account to the group; a member already there is
// done.
func (c *Connector) AddMember(ctx context.Context, groupID, accountID string) error {
	return c.withDNs(ctx, groupID, accountID, func(g, u string) error {
		req := ldapv3.NewModifyRequest(g, nil)
		req.Add("member", []string{u})
		return c.do(ctx, "add member", func(conn ldapv3.Client) error {
			err := conn.Modify(req)
			// AD answers entryAlreadyExists, OpenLDAP attributeOrValueExists.
			if ldapv3.IsErrorAnyOf(err, ldapv3.LDAPResultAttributeOrValueExists, ldapv3.LDAPResultEntryAlreadyExists) {
				return nil
			}
			return err
		})
	})
}

// RemoveMember removes the account from the group; an absent member, or
// account, or group, is done.
func (c *Connector) RemoveMember(ctx context.Context, groupID, accountID string) error {
	err := c.withDNs(ctx, groupID, accountID, func(g, u string) error { return c.removeMemberDN(ctx, g, u) })
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// removeMemberDN removes member u from group g. OpenLDAP's groupOfNames
// must keep a member: the last one is replaced by the service account.
func (c *Connector) removeMemberDN(ctx context.Context, g, u string) error {
	req := ldapv3.NewModifyRequest(g, nil)
	req.Delete("member", []string{u})
	return c.do(ctx, "remove member", func(conn ldapv3.Client) error {
		err := conn.Modify(req)
		if c.cfg.Flavour == OpenLDAP && ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultObjectClassViolation) {
			last := ldapv3.NewModifyRequest(g, nil)
			last.Add("member", []string{c.cfg.BindDN})
			last.Delete("member", []string{u})
			err = conn.Modify(last)
		}
		// Absent: noSuchAttribute (both); AD may say unwillingToPerform
		// (ERROR_MEMBER_NOT_IN_GROUP, 0x527).
		if ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultNoSuchAttribute) ||
			ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultUnwillingToPerform) && strings.Contains(fmt.Sprint(err), "00000527") {
			return nil
		}
		return err
	})
}
