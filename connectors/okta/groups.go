package okta

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
)

// FindGroup resolves a group name (exact match) to the group. The answer
// is remembered for GroupCacheTTL, and a remembered ID is confirmed with one
// GET by ID before it is handed out: a group renamed or deleted at Okta
// since is forgotten and the name searched again, so no write lands in a
// group that no longer has the name (the search lists and pages; the GET
// by ID does not).
func (c *Client) FindGroup(ctx context.Context, name string) (*connectors.Group, error) {
	if name == "" {
		return nil, connectors.Permanentf(TypeValidation, "okta: find group: empty group name")
	}
	if g, ok := c.cachedGroup(name); ok {
		got, err := c.readGroup(ctx, g.ID)
		switch {
		case err == nil && got.Name == name:
			c.cacheGroup(got)
			return &got, nil
		case err == nil, errors.Is(err, connectors.ErrNotFound):
			c.forgetGroupID(g.ID) // renamed or deleted: search the name again
		default:
			return nil, err
		}
	}
	var found *sdk.Group
	var groups []*sdk.Group
	var resp *sdk.Response
	err := call(ctx, "find group", func(ctx context.Context) (err error) {
		groups, resp, err = c.sdk.Group.ListGroups(ctx, query.NewQueryParams(query.WithQ(name), query.WithLimit(200)))
		return err
	})
	for err == nil {
		for _, g := range groups {
			if g.Profile != nil && g.Profile.Name == name && (found == nil || g.Type == "OKTA_GROUP") {
				found = g
			}
		}
		if found != nil || !resp.HasNextPage() {
			break
		}
		groups = nil
		err = call(ctx, "find group", func(ctx context.Context) (err error) {
			resp, err = resp.Next(ctx, &groups)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("okta: find group: %w", connectors.ErrNotFound)
	}
	g := toGroup(found)
	c.cacheGroup(g)
	return &g, nil
}

// readGroup reads one group by ID; ErrNotFound when it is gone.
func (c *Client) readGroup(ctx context.Context, id string) (connectors.Group, error) {
	var g *sdk.Group
	err := call(ctx, "read group", func(ctx context.Context) (err error) {
		g, _, err = c.sdk.Group.GetGroup(ctx, id)
		return err
	})
	if err != nil {
		return connectors.Group{}, err
	}
	return toGroup(g), nil
}

// EnsureGroup finds the group by name or creates it (OKTA_GROUP); a
// different non-empty description is updated.
func (c *Client) EnsureGroup(ctx context.Context, want connectors.Group) (*connectors.Group, error) {
	g, err := c.FindGroup(ctx, want.Name)
	if err == nil {
		if want.Description != "" && g.Description != want.Description {
			body := sdk.Group{Profile: &sdk.GroupProfile{Name: g.Name, Description: want.Description}}
			err := call(ctx, "update group", func(ctx context.Context) error {
				_, _, err := c.sdk.Group.UpdateGroup(ctx, g.ID, body)
				return err
			})
			if err != nil {
				return nil, err
			}
			g.Description = want.Description
			c.cacheGroup(*g)
		}
		return g, nil
	}
	if !errors.Is(err, connectors.ErrNotFound) {
		return nil, err
	}
	var created *sdk.Group
	body := sdk.Group{Profile: &sdk.GroupProfile{Name: want.Name, Description: want.Description}}
	err = call(ctx, "create group", func(ctx context.Context) (err error) {
		created, _, err = c.sdk.Group.CreateGroup(ctx, body)
		return err
	})
	if errors.Is(err, connectors.ErrConflict) { // created concurrently
		c.forgetGroup(want.Name)
		return c.FindGroup(ctx, want.Name)
	}
	if err != nil {
		return nil, err
	}
	out := toGroup(created)
	c.cacheGroup(out)
	c.log.Info("okta: created group", zap.String("group_id", out.ID))
	return &out, nil
}

// Memberships lists the user's groups (including BUILT_IN Everyone).
func (c *Client) Memberships(ctx context.Context, accountID string) ([]connectors.Group, error) {
	groups, err := c.userGroups(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]connectors.Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, toGroup(g))
	}
	return out, nil
}

func (c *Client) userGroups(ctx context.Context, id string) ([]*sdk.Group, error) {
	var all, page []*sdk.Group
	var resp *sdk.Response
	err := call(ctx, "list user groups", func(ctx context.Context) (err error) {
		page, resp, err = c.sdk.User.ListUserGroups(ctx, id)
		return err
	})
	for err == nil {
		all = append(all, page...)
		if !resp.HasNextPage() {
			return all, nil
		}
		page = nil
		err = call(ctx, "list user groups", func(ctx context.Context) (err error) {
			resp, err = resp.Next(ctx, &page)
			return err
		})
	}
	return nil, err
}

// AddMember adds the user to the group; a present member is success. A
// missing group or user is ErrNotFound (and the group leaves the cache).
func (c *Client) AddMember(ctx context.Context, groupID, accountID string) error {
	err := call(ctx, "add member", func(ctx context.Context) error {
		_, err := c.sdk.Group.AddUserToGroup(ctx, groupID, accountID)
		return err
	})
	if errors.Is(err, connectors.ErrNotFound) {
		c.forgetGroupID(groupID)
	}
	return err
}

// RemoveMember removes the user from the group; an absent member (or
// group, or user) is success.
func (c *Client) RemoveMember(ctx context.Context, groupID, accountID string) error {
	return ignoreNotFound(call(ctx, "remove member", func(ctx context.Context) error {
		_, err := c.sdk.Group.RemoveUserFromGroup(ctx, groupID, accountID)
		return err
	}))
}

func toGroup(g *sdk.Group) connectors.Group {
	out := connectors.Group{ID: g.Id}
	if g.Profile != nil {
		out.Name, out.Description = g.Profile.Name, g.Profile.Description
	}
	return out
}

func (c *Client) cachedGroup(name string) (connectors.Group, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.groups[name]
	if !ok || time.Since(e.at) > c.groupTTL {
		return connectors.Group{}, false
	}
	return e.g, true
}

func (c *Client) cacheGroup(g connectors.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[g.Name] = cachedGroup{g: g, at: time.Now()}
}

func (c *Client) forgetGroup(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, name)
}

func (c *Client) forgetGroupID(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, e := range c.groups {
		if e.g.ID == id {
			delete(c.groups, name)
		}
	}
}
