package scim

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
)

func groupPath(id string) string { return "/Groups/" + url.PathEscape(id) }

// Group PATCHes carry no excludedAttributes=members: some providers (SCIMMY
// among them) apply the PATCH to the group as read with that projection, so
// an "add" replaces every other member. The fault suite caught it.

func toGroup(r resource) connectors.Group {
	id, _ := r["id"].(string)
	name, _ := r["displayName"].(string)
	return connectors.Group{ID: id, Name: name}
}

// FindGroup resolves a group by displayName (case-insensitively), asking
// the provider every time: a name→ID cache would hand out the ID of a group
// renamed or deleted since, and a write would land in a group jml does not
// manage. A cached ID would need a GET to confirm it, which costs what the
// lookup costs.
func (c *Client) FindGroup(ctx context.Context, name string) (*connectors.Group, error) {
	if strings.TrimSpace(name) == "" {
		return nil, connectors.Permanentf("ScimValidation", "scim: find group: empty name")
	}
	var list listResponse
	q := url.Values{"filter": {"displayName eq " + quote(name)}, "excludedAttributes": {"members"}}
	if err := c.do(ctx, request{op: "find group", method: "GET", path: "/Groups", query: q}, &list); err != nil {
		return nil, err
	}
	for _, r := range list.Resources {
		if g := toGroup(r); strings.EqualFold(g.Name, name) {
			return &g, nil
		}
	}
	return nil, fmt.Errorf("scim: find group %q: %w", name, connectors.ErrNotFound)
}

// EnsureGroup finds the group by name or creates it (CREATE_ENTITLEMENT).
// The core SCIM Group has no description, so g.Description is not sent.
func (c *Client) EnsureGroup(ctx context.Context, g connectors.Group) (*connectors.Group, error) {
	found, err := c.FindGroup(ctx, g.Name)
	if !errors.Is(err, connectors.ErrNotFound) {
		return found, err
	}
	var created resource
	body := map[string]any{"schemas": []string{coreGroupURN}, "displayName": g.Name}
	err = c.do(ctx, request{op: "create group", method: "POST", path: "/Groups", body: body}, &created)
	if errors.Is(err, connectors.ErrConflict) {
		return c.FindGroup(ctx, g.Name) // created meanwhile: adopt it
	}
	if err != nil {
		return nil, err
	}
	out := toGroup(created)
	return &out, nil
}

// AddMember adds the account to the group with one PATCH add; a member
// already present is success (RFC 7644 §3.5.2.1).
func (c *Client) AddMember(ctx context.Context, groupID, accountID string) error {
	d, err := c.discover(ctx)
	if err != nil {
		return err
	}
	if d.caps.Patch {
		err = c.do(ctx, request{op: "add group member", method: "PATCH", path: groupPath(groupID),
			body: patchBody(patchOp{Op: "add", Path: "members", Value: []map[string]string{{"value": accountID}}})}, nil)
	} else {
		err = c.putMembers(ctx, "add group member", groupID, accountID, true)
	}
	return err
}

// RemoveMember removes the account with PATCH remove members[value eq "id"],
// never by rewriting the member list. An absent member, or a group that is
// gone, is success.
func (c *Client) RemoveMember(ctx context.Context, groupID, accountID string) error {
	d, err := c.discover(ctx)
	if err != nil {
		return err
	}
	if d.caps.Patch {
		err = c.do(ctx, request{op: "remove group member", method: "PATCH", path: groupPath(groupID),
			body: patchBody(patchOp{Op: "remove", Path: "members[value eq " + quote(accountID) + "]"})}, nil)
	} else {
		err = c.putMembers(ctx, "remove group member", groupID, accountID, false)
	}
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return nil
	case isNoTarget(err):
		return nil
	}
	return err
}

// isNoTarget is a 400 noTarget: some providers answer it when the member
// to remove is not there.
func isNoTarget(err error) bool {
	return isType(err, "ScimValidation") && strings.Contains(err.Error(), " noTarget")
}

// putMembers is the fallback for providers without PATCH: read the group,
// change its member list, write it back. It races with concurrent writers;
// PATCH is used whenever the provider offers it.
func (c *Client) putMembers(ctx context.Context, op, groupID, accountID string, add bool) error {
	var g resource
	if err := c.do(ctx, request{op: "read group", method: "GET", path: groupPath(groupID)}, &g); err != nil {
		return err
	}
	members, _ := g["members"].([]any)
	kept := make([]any, 0, len(members)+1)
	present := false
	for _, m := range members {
		if mm, ok := m.(map[string]any); ok && mm["value"] == accountID {
			present = true
			if !add {
				continue
			}
		}
		kept = append(kept, m)
	}
	if present == add {
		return nil // already as wanted
	}
	if add {
		kept = append(kept, map[string]any{"value": accountID})
	}
	g["members"] = kept
	delete(g, "meta")
	return c.do(ctx, request{op: op, method: "PUT", path: groupPath(groupID), body: g}, nil)
}

// Memberships lists the groups the account belongs to: from the User's
// groups attribute when the provider returns it (one request), else from
// /Groups — filtered on members.value where the provider accepts that
// filter, else listed page by page and matched here. ErrNotFound when the
// user is absent; ScimUnsupported when the answer needs /Groups and the
// provider has none.
func (c *Client) Memberships(ctx context.Context, accountID string) ([]connectors.Group, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	var r resource
	if err := c.do(ctx, request{op: "read user", method: "GET", path: userPath(accountID)}, &r); err != nil {
		return nil, err
	}
	if groups, ok := c.groupsOf(r, d); ok {
		return groups, nil
	}
	return c.listMemberships(ctx, accountID)
}

// groupsOf reads a User's groups attribute. ok is false when the answer
// does not settle the account's groups. Absent means none (RFC 7644
// §3.4.2: unassigned and empty are the same) only when the provider's
// /Schemas declares the attribute and it has been seen returning it: many
// servers declare groups and never return it on Users, and taking that for
// "no groups" would let a leaver keep its access.
func (c *Client) groupsOf(r resource, d *discovery) (groups []connectors.Group, ok bool) {
	if r == nil {
		return nil, false
	}
	raw, present := r["groups"]
	list, _ := raw.([]any)
	if present {
		c.userGroupsSeen.Store(true)
	} else if d == nil || !d.caps.SchemasDiscovered || d.schema.attr(coreUserURN, "groups") == nil || !c.userGroupsSeen.Load() {
		return nil, false
	}
	groups = make([]connectors.Group, 0, len(list))
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			gid, _ := m["value"].(string)
			name, _ := m["display"].(string)
			if gid != "" {
				groups = append(groups, connectors.Group{ID: gid, Name: name})
			}
		}
	}
	return groups, true
}

// maxListPages bounds a /Groups listing against a provider that ignores
// startIndex and answers the same page forever.
const maxListPages = 100000

// listMemberships finds the account's groups in /Groups: with the
// members.value filter unless the provider refused it (400 invalidFilter,
// remembered for the client's lifetime), else by listing every group.
func (c *Client) listMemberships(ctx context.Context, id string) ([]connectors.Group, error) {
	if !c.noMembersFilter.Load() {
		q := url.Values{"filter": {"members.value eq " + quote(id)}, "excludedAttributes": {"members"}}
		groups, err := c.pagedGroups(ctx, "list user groups", q, id, true)
		if !isScimType(err, "invalidFilter") {
			return groups, err
		}
		c.noMembersFilter.Store(true)
	}
	// No excludedAttributes: the members are what is matched, and some
	// providers do not support the parameter anyway.
	return c.pagedGroups(ctx, "list groups", url.Values{}, id, false)
}

// pagedGroups reads /Groups with q in pages and keeps the groups that list
// id as a member; when filtered, also those that come without members (the
// members were excluded from the answer). Pages advance by what the
// provider returned, not by what was asked: many cap count at 100 whatever
// the request says.
func (c *Client) pagedGroups(ctx context.Context, op string, q url.Values, id string, filtered bool) ([]connectors.Group, error) {
	groups := []connectors.Group{}
	for start, pages := 1, 0; pages < maxListPages; pages++ {
		var list listResponse
		q.Set("startIndex", strconv.Itoa(start))
		q.Set("count", strconv.Itoa(c.pageSize))
		if err := c.do(ctx, request{op: op, method: "GET", path: "/Groups", query: q}, &list); err != nil {
			return nil, err
		}
		for _, r := range list.Resources {
			if hasMember(r, id, filtered) {
				groups = append(groups, toGroup(r))
			}
		}
		start += len(list.Resources)
		if len(list.Resources) == 0 || start > list.TotalResults {
			return groups, nil
		}
	}
	return nil, connectors.Permanentf("ScimPaging", "scim: %s: more than %d pages; the provider ignores startIndex", op, maxListPages)
}

// hasMember reports whether the group lists id among its members. A group
// without a members attribute is a hit of a filtered read (the provider
// matched it; the members were excluded), else not a hit.
func hasMember(r resource, id string, filtered bool) bool {
	members, present := r["members"]
	if !present {
		return filtered
	}
	list, _ := members.([]any)
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok && mm["value"] == id {
			return true
		}
	}
	return false
}
