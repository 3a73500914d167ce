package ldap

import (
	"context"
	"encoding/base64"
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
	if pageSize <= 0 {
		pageSize = c.cfg.PageSize
	}
	paging := ldapv3.NewControlPaging(uint32(pageSize))
	if cursor != "" {
		cookie, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil {
			return nil, "", connectors.Permanentf(TypeValidation, "ldap: list accounts: cursor %q is not a paging cookie", cursor)
		}
		paging.SetCookie(cookie)
	}
	req := ldapv3.NewSearchRequest(c.cfg.BaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0,
		int(c.cfg.Timeout.Seconds()), false, c.userFilter(""), c.schema.userAttributes(), []ldapv3.Control{paging})
	res, err := c.search(ctx, "list accounts", req)
	if err != nil {
		return nil, "", err
	}
	managers := map[string]string{}
	for _, e := range res.Entries {
		if v := e.GetAttributeValue(c.schema.employee); v != "" {
			managers[strings.ToLower(e.DN)] = v
		}
	}
	out := make([]connectors.Account, 0, len(res.Entries))
	for _, e := range res.Entries {
		a, err := c.accountCached(ctx, e, managers)
		if err != nil {
			return nil, "", err
		}
		out = append(out, *a)
	}
	next := ""
	if p, ok := ldapv3.FindControl(res.Controls, ldapv3.ControlTypePaging).(*ldapv3.ControlPaging); ok && len(p.Cookie) > 0 {
		next = base64.RawURLEncoding.EncodeToString(p.Cookie)
	}
	return out, next, nil
}
