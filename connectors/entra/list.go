package entra

import (
	"context"
	"fmt"
	"strings"

	"github.com/jml-dev/jml/connectors"
)

var _ connectors.GroupLister = (*Connector)(nil)

// ListGroups reads one page of groups (members are read per group with
// ListMembers). The cursor is Graph's @odata.nextLink.
func (c *Connector) ListGroups(ctx context.Context, cursor string, pageSize int) ([]connectors.GroupMembers, string, error) {
	const op = "list groups"
	var page groupPage
	first := call{method: "GET", path: "/groups", query: query("$select", selectGroup, "$top", fmt.Sprint(pageTop(pageSize)))}
	if err := c.page(ctx, op, cursor, "/groups?", first, &page); err != nil {
		return nil, "", err
	}
	out := make([]connectors.GroupMembers, 0, len(page.Value))
	for _, g := range page.Value {
		out = append(out, connectors.GroupMembers{Group: g.public()})
	}
	return out, page.NextLink, nil
}

// ListMembers reads one page of a group's direct members that are users.
func (c *Connector) ListMembers(ctx context.Context, groupID, cursor string, pageSize int) ([]string, string, error) {
	const op = "list group members"
	if err := requireID(op, groupID); err != nil {
		return nil, "", err
	}
	var page struct {
		Value []struct {
			Type string `json:"@odata.type"`
			ID   string `json:"id"`
		} `json:"value"`
		NextLink string `json:"@odata.nextLink"`
	}
	first := call{method: "GET", path: groupPath(groupID) + "/members", query: query("$select", "id", "$top", fmt.Sprint(pageTop(pageSize)))}
	if err := c.page(ctx, op, cursor, groupPath(groupID)+"/members?", first, &page); err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(page.Value))
	for _, m := range page.Value {
		if m.Type == "" || m.Type == "#microsoft.graph.user" {
			ids = append(ids, m.ID)
		}
	}
	return ids, page.NextLink, nil
}

// pageTop is the $top of a page of pageSize: Graph's most (999) when the
// caller names none or more.
func pageTop(pageSize int) int {
	if pageSize <= 0 {
		return maxPage
	}
	return min(pageSize, maxPage)
}

// page reads the first page with first, or the page at cursor, which must
// be a link into this tenant's Graph under prefix (cursors come back
// through workflow history: the token goes nowhere else).
func (c *Connector) page(ctx context.Context, op, cursor, prefix string, first call, out any) error {
	if cursor == "" {
		return c.do(ctx, op, first, out)
	}
	if !strings.HasPrefix(cursor, c.graph+prefix) {
		return connectors.Permanentf(TypeValidation, "entra: %s: cursor is not a Graph %s link", op, strings.TrimSuffix(prefix, "?"))
	}
	return c.doURL(ctx, op, cursor, call{method: "GET"}, out)
}
