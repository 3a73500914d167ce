package entra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jml-dev/jml/connectors"
)

// group is a Graph group as read from memberOf or /groups.
type group struct {
	Type            string   `json:"@odata.type"`
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description"`
	GroupTypes      []string `json:"groupTypes"`
	MailEnabled     bool     `json:"mailEnabled"`
	SecurityEnabled bool     `json:"securityEnabled"`
	OnPremisesSync  *bool    `json:"onPremisesSyncEnabled"`
	UniqueName      string   `json:"uniqueName"`
	CreatedDateTime string   `json:"createdDateTime"`
}

const selectGroup = "id,displayName,description,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,uniqueName,createdDateTime"

func (g group) public() connectors.Group {
	return connectors.Group{ID: g.ID, Name: g.DisplayName, Description: g.Description}
}

// changeable reports whether Graph lets us change the members: not a
// dynamic group, not synced from on-premises AD, and not a mail-enabled
// security group or distribution list (Exchange owns those).
func (g group) changeable() bool {
	unified := slices.Contains(g.GroupTypes, "Unified")
	return !slices.Contains(g.GroupTypes, "DynamicMembership") &&
		(g.OnPremisesSync == nil || !*g.OnPremisesSync) &&
		(unified || !g.MailEnabled)
}

func groupPath(id string) string { return "/groups/" + url.PathEscape(id) }

// memberOf lists the groups the account is a direct member of (directory
// roles and administrative units in memberOf are skipped).
func (c *Connector) memberOf(ctx context.Context, id string) ([]group, error) {
	return c.memberPages(ctx, c.graph+memberOfURL(id), nil)
}

// memberOfURL is the first memberOf page, relative to the service root.
func memberOfURL(id string) string {
	return userPath(id) + "/memberOf?" + query("$select", selectGroup, "$top", fmt.Sprint(maxPage))
}

// groupPage is one page of memberOf.
type groupPage struct {
	Value    []group `json:"value"`
	NextLink string  `json:"@odata.nextLink"`
}

// groups keeps the groups of the page (not roles or administrative units).
func (p groupPage) groups() []group {
	var out []group
	for _, g := range p.Value {
		if g.Type == "#microsoft.graph.group" {
			out = append(out, g)
		}
	}
	return out
}

// memberPages reads memberOf from the page at next on, after the groups
// already in out.
func (c *Connector) memberPages(ctx context.Context, next string, out []group) ([]group, error) {
	const op = "list memberships"
	for next != "" {
		var page groupPage
		if !strings.HasPrefix(next, c.graph+"/") {
			return nil, connectors.Transient(fmt.Errorf("entra: %s: next link outside Graph", op))
		}
		if err := c.doURL(ctx, op, next, call{method: "GET"}, &page); err != nil {
			return nil, err
		}
		out = append(out, page.groups()...)
		next = page.NextLink
	}
	return out, nil
}

// Memberships lists the account's direct group memberships.
func (c *Connector) Memberships(ctx context.Context, accountID string) ([]connectors.Group, error) {
	if err := requireID("list memberships", accountID); err != nil {
		return nil, err
	}
	groups, err := c.memberOf(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]connectors.Group, len(groups))
	for i, g := range groups {
		out[i] = g.public()
	}
	return out, nil
}

// alreadyMember accepts Graph's 400 "One or more added object references
// already exist for the following modified properties: 'members'".
func alreadyMember(e *apiError) bool {
	return e.Status == http.StatusBadRequest && strings.Contains(e.Message, "added object references already exist")
}

func addMemberCall(graph, groupID, accountID string) call {
	return call{method: "POST", path: groupPath(groupID) + "/members/$ref",
		body: map[string]string{"@odata.id": graph + "/directoryObjects/" + accountID}, ok: alreadyMember}
}

func removeMemberCall(groupID, accountID string) call {
	return call{method: "DELETE", path: groupPath(groupID) + "/members/" + url.PathEscape(accountID) + "/$ref", ok: notFound}
}

// AddMember adds the account to the group; a present member is success.
func (c *Connector) AddMember(ctx context.Context, groupID, accountID string) error {
	return c.AddMemberships(ctx, accountID, []string{groupID})
}

// RemoveMember removes the account from the group; an absent member is
// success.
func (c *Connector) RemoveMember(ctx context.Context, groupID, accountID string) error {
	return c.RemoveMemberships(ctx, accountID, []string{groupID})
}

// AddMemberships adds the account to several groups in one $batch (per 20
// groups). Present memberships are success.
func (c *Connector) AddMemberships(ctx context.Context, accountID string, groupIDs []string) error {
	if err := checkIDs("add member", accountID, groupIDs); err != nil {
		return err
	}
	calls := make([]call, len(groupIDs))
	for i, g := range groupIDs {
		calls[i] = addMemberCall(c.graph, g, accountID)
	}
	return c.run(ctx, "add member", calls)
}

// RemoveMemberships removes the account from several groups in one $batch
// (per 20 groups). Absent memberships are success.
func (c *Connector) RemoveMemberships(ctx context.Context, accountID string, groupIDs []string) error {
	if err := checkIDs("remove member", accountID, groupIDs); err != nil {
		return err
	}
	calls := make([]call, len(groupIDs))
	for i, g := range groupIDs {
		calls[i] = removeMemberCall(g, accountID)
	}
	return c.run(ctx, "remove member", calls)
}

func checkIDs(op, accountID string, groupIDs []string) error {
	if err := requireID(op, accountID); err != nil {
		return err
	}
	if slices.Contains(groupIDs, "") {
		return connectors.Permanentf(TypeValidation, "entra: %s: group id is empty", op)
	}
	return nil
}

// FindGroup finds a group by displayName. Entra allows duplicate names;
// of several, the one EnsureGroup made for that name (its uniqueName)
// wins, else the oldest (createdDateTime, then ID): the same group every
// time, never a permanent conflict.
func (c *Connector) FindGroup(ctx context.Context, name string) (*connectors.Group, error) {
	const op = "find group"
	if name == "" {
		return nil, connectors.Permanentf(TypeValidation, "entra: %s: empty name", op)
	}
	var list struct {
		Value []group `json:"value"`
	}
	err := c.do(ctx, op, call{method: "GET", path: "/groups",
		query: query("$filter", "displayName eq "+escape(name), "$select", selectGroup)}, &list)
	if err != nil {
		return nil, err
	}
	if len(list.Value) == 0 {
		if g, ok := c.recent.get(name); ok {
			return &g, nil // made here moments ago; the replica read has not seen it yet
		}
		return nil, fmt.Errorf("entra: %s %q: %w", op, name, connectors.ErrNotFound)
	}
	key := uniqueName(name)
	best := slices.MinFunc(list.Value, func(a, b group) int {
		if (a.UniqueName == key) != (b.UniqueName == key) {
			if a.UniqueName == key {
				return -1
			}
			return 1
		}
		ta, _ := time.Parse(time.RFC3339Nano, a.CreatedDateTime)
		tb, _ := time.Parse(time.RFC3339Nano, b.CreatedDateTime)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	g := best.public()
	return &g, nil
}

// uniqueName is the alternate key EnsureGroup gives the group it makes
// for name: derived from the name alone, so a retry (after a lost answer,
// or a read that missed the group on a lagging replica) names the same
// group.
func uniqueName(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(name))))
	return "jml-" + hex.EncodeToString(sum[:16])
}

// EnsureGroup finds the group by name, or creates a security group (not
// mail-enabled) with it. The create is an upsert on the group's
// uniqueName (PATCH /groups(uniqueName='…') with Prefer:
// create-if-missing): Graph checks the key on the write, so a retry never
// makes a second group, even when the reads before it missed the first
// (https://learn.microsoft.com/en-us/graph/api/group-upsert).
func (c *Connector) EnsureGroup(ctx context.Context, g connectors.Group) (*connectors.Group, error) {
	if f, err := c.FindGroup(ctx, g.Name); !errors.Is(err, connectors.ErrNotFound) {
		return f, err
	}
	key := uniqueName(g.Name)
	byKey := call{method: "GET", path: "/groups(uniqueName=" + escape(key) + ")", query: query("$select", selectGroup)}
	nick := mailNickname(g.Name)
	if nick == "" { // a name without ASCII characters still needs an alias
		nick = key
	}
	body := map[string]any{
		"displayName": g.Name, "mailEnabled": false, "securityEnabled": true,
		"mailNickname": nick[:min(len(nick), 64)],
	}
	if g.Description != "" {
		body["description"] = g.Description
	}
	var created group
	err := c.do(ctx, "create group", call{method: "PATCH", path: "/groups(uniqueName=" + escape(key) + ")", body: body,
		header: map[string]string{"Prefer": "create-if-missing"}}, &created)
	if err != nil {
		return nil, err
	}
	if created.ID == "" {
		// 204: an earlier attempt created it; read it (by its key) once a
		// replica shows it.
		err = c.eventually(ctx, func() error { return c.do(ctx, "find group", byKey, &created) })
		if err != nil {
			return nil, err
		}
	}
	out := created.public()
	c.recent.put(g.Name, out)
	return &out, nil
}

// recentGroups are the groups this connector created within the
// consistency bound, by lower-cased name: a later step of the same run
// (manage_relationships after create_entitlement) finds the group it just
// made although Graph's $filter does not show it yet.
type recentGroups struct {
	mu  sync.Mutex
	ttl time.Duration
	by  map[string]recentGroup
}

type recentGroup struct {
	g  connectors.Group
	at time.Time
}

func (r *recentGroups) put(name string, g connectors.Group) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.by == nil {
		r.by = map[string]recentGroup{}
	}
	for k, v := range r.by { // forget what every replica shows by now
		if now.Sub(v.at) > r.ttl {
			delete(r.by, k)
		}
	}
	r.by[strings.ToLower(name)] = recentGroup{g: g, at: now}
}

func (r *recentGroups) get(name string) (connectors.Group, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.by[strings.ToLower(name)]
	if !ok || time.Since(v.at) > r.ttl {
		return connectors.Group{}, false
	}
	return v.g, true
}
