package scim

import (
	"context"
	"net/url"
	"strconv"

	"github.com/jml-dev/jml/connectors"
)

var _ connectors.GroupLister = (*Client)(nil)

// ListGroups reads one page of /Groups with their members. The cursor is
// the SCIM startIndex; pages advance by what the provider returned (many
// cap count whatever is asked).
func (c *Client) ListGroups(ctx context.Context, cursor string, pageSize int) ([]connectors.GroupMembers, string, error) {
	start := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return nil, "", connectors.Permanentf("ScimValidation", "scim: list groups: bad cursor %q", cursor)
		}
		start = n
	}
	var list listResponse
	q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.listCount(pageSize))}}
	if err := c.do(ctx, request{op: "list groups", method: "GET", path: "/Groups", query: q}, &list); err != nil {
		return nil, "", err
	}
	out := make([]connectors.GroupMembers, 0, len(list.Resources))
	for _, r := range list.Resources {
		out = append(out, connectors.GroupMembers{Group: toGroup(r), Members: memberIDs(r)})
	}
	next := start + len(list.Resources)
	if len(list.Resources) == 0 || next > list.TotalResults {
		return out, "", nil
	}
	return out, strconv.Itoa(next), nil
}

// ListMembers reads the group (SCIM has no paging of members): every
// member in one page.
func (c *Client) ListMembers(ctx context.Context, groupID, _ string, _ int) ([]string, string, error) {
	var r resource
	if err := c.do(ctx, request{op: "read group", method: "GET", path: groupPath(groupID)}, &r); err != nil {
		return nil, "", err
	}
	return memberIDs(r), "", nil
}

// memberIDs are the values of a group's members; an absent list is none.
func memberIDs(r resource) []string {
	list, _ := r["members"].([]any)
	ids := make([]string, 0, len(list))
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if v, _ := mm["value"].(string); v != "" {
				ids = append(ids, v)
			}
		}
	}
	return ids
}

// listCount is the page size to ask for: pageSize (else the client's),
// capped at what the provider advertises.
func (c *Client) listCount(pageSize int) int {
	count := orDefault(pageSize, c.pageSize)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc != nil && c.disc.caps.MaxResults > 0 && count > c.disc.caps.MaxResults {
		count = c.disc.caps.MaxResults
	}
	return count
}
