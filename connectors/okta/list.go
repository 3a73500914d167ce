package okta

import (
	"context"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"github.com/jml-dev/jml/connectors"
)

var _ connectors.GroupLister = (*Client)(nil)

// ListGroups reads one page of groups (without members: Okta lists them
// per group, see ListMembers). The cursor is Okta's "next" link.
func (c *Client) ListGroups(ctx context.Context, cursor string, pageSize int) ([]connectors.GroupMembers, string, error) {
	if pageSize <= 0 || pageSize > 200 {
		pageSize = 200
	}
	var (
		groups []*sdk.Group
		resp   *sdk.Response
	)
	err := call(ctx, "list groups", func(ctx context.Context) (err error) {
		if cursor == "" {
			groups, resp, err = c.sdk.Group.ListGroups(ctx, query.NewQueryParams(query.WithLimit(int64(pageSize))))
			return err
		}
		resp, err = c.getPage(ctx, cursor, "/api/v1/groups", &groups)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]connectors.GroupMembers, 0, len(groups))
	for _, g := range groups {
		out = append(out, connectors.GroupMembers{Group: toGroup(g)})
	}
	return out, resp.NextPage, nil
}

// ListMembers reads one page of a group's members (up to 1000, Okta's
// largest page).
func (c *Client) ListMembers(ctx context.Context, groupID, cursor string, pageSize int) ([]string, string, error) {
	if pageSize <= 0 || pageSize > 1000 {
		pageSize = 1000
	}
	var (
		users []*sdk.User
		resp  *sdk.Response
	)
	err := call(ctx, "list group members", func(ctx context.Context) (err error) {
		if cursor == "" {
			users, resp, err = c.sdk.Group.ListGroupUsers(ctx, groupID, query.NewQueryParams(query.WithLimit(int64(pageSize))))
			return err
		}
		resp, err = c.getPage(ctx, cursor, "/api/v1/groups/"+groupID+"/users", &users)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		ids = append(ids, u.Id)
	}
	return ids, resp.NextPage, nil
}
