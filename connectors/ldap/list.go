package ldap

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
)

// ListAccounts reads one page of the users under the base DN with the
// simple paged results control (RFC 2696): one search per page. The
// cursor is the directory's paging cookie, valid on the connection that
// got it (a broken connection makes the next page fail; reconciliation
// starts again).
func (c *Connector) ListAccounts(ctx context.Context, cursor string, pageSize int) ([]connectors.Account, string, error) {
	es, next, err := c.page(ctx, "list accounts", c.cfg.BaseDN, c.userFilter(""), c.schema.userAttributes(), cursor, pageSize)
	if err != nil {
		return nil, "", err
	}
	managers := map[string]string{}
	for _, e := range es {
		if v := e.GetAttributeValue(c.schema.employee); v != "" {
			managers[strings.ToLower(e.DN)] = v
		}
	}
	out := make([]connectors.Account, 0, len(es))
	for _, e := range es {
		a, err := c.accountCached(ctx, e, managers)
		if err != nil {
			return nil, "", err
		}
		out = append(out, *a)
	}
	return out, next, nil
}

// ListGroups reads one page of the groups under the groups container;
// members are read with ListMembers.
func (c *Connector) ListGroups(ctx context.Context, cursor string, pageSize int) ([]connectors.GroupMembers, string, error) {
	es, next, err := c.page(ctx, "list groups", c.cfg.GroupsContainer, c.groupFilter(""), c.groupAttributes(), cursor, pageSize)
	if err != nil {
		return nil, "", err
	}
	out := make([]connectors.GroupMembers, 0, len(es))
	for _, e := range es {
		out = append(out, connectors.GroupMembers{Group: c.group(e)})
	}
	return out, next, nil
}

// ListMembers reads one page of a group's member accounts by memberOf
// (AD; OpenLDAP with the memberof overlay): one search for the group and
// one per page.
func (c *Connector) ListMembers(ctx context.Context, groupID, cursor string, pageSize int) ([]string, string, error) {
	g, err := c.findOne(ctx, "read group", c.groupFilter(c.schema.idFilter(groupID)), []string{"cn"})
	if err != nil {
		return nil, "", err
	}
	es, next, err := c.page(ctx, "list group members", c.cfg.BaseDN, c.userFilter(eq("memberOf", g.DN)), []string{c.schema.id}, cursor, pageSize)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(es))
	for _, e := range es {
		ids = append(ids, c.schema.idOf(e))
	}
	return ids, next, nil
}

// page is one page of a paged search (RFC 2696). The cursor is the
// page's number and the directory's cookie: Samba answers every page of a
// search with the same cookie, and a cursor must name one page (a caller
// keeps pages by cursor).
func (c *Connector) page(ctx context.Context, what, base, filter string, attrs []string, cursor string, pageSize int) ([]*ldapv3.Entry, string, error) {
	if pageSize <= 0 {
		pageSize = c.cfg.PageSize
	}
	paging := ldapv3.NewControlPaging(uint32(pageSize))
	n := 0
	if cursor != "" {
		num, enc, _ := strings.Cut(cursor, ".")
		cookie, err := base64.RawURLEncoding.DecodeString(enc)
		if n, err = strconv.Atoi(num); err != nil || len(cookie) == 0 {
			return nil, "", connectors.Permanentf(TypeValidation, "ldap: %s: cursor %q is not a page of a paged search", what, cursor)
		}
		paging.SetCookie(cookie)
	}
	req := ldapv3.NewSearchRequest(base, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0,
		int(c.cfg.Timeout.Seconds()), false, filter, attrs, []ldapv3.Control{paging})
	res, err := c.search(ctx, what, req)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if p, ok := ldapv3.FindControl(res.Controls, ldapv3.ControlTypePaging).(*ldapv3.ControlPaging); ok && len(p.Cookie) > 0 {
		next = strconv.Itoa(n+1) + "." + base64.RawURLEncoding.EncodeToString(p.Cookie)
	}
	return res.Entries, next, nil
}
