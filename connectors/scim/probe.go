package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/jml-dev/jml/connectors"
)

// ProbeUserPrefix starts the user name of a write probe's user, so that an
// operator recognises (and may delete) it.
const ProbeUserPrefix = "jml-probe-"

// Probe reads /ServiceProviderConfig and /Schemas, looks up an account that
// does not exist, reads /Groups and filters groups on members.value — each
// a thing the connector relies on — and reports what works, what the
// connector falls back from, and what is missing. With write, it creates,
// changes and deletes a probe user (jml-probe-…) and group.
func (c *Client) Probe(ctx context.Context, write bool) ([]connectors.Capability, error) {
	var out []connectors.Capability
	add := func(name, status, format string, args ...any) {
		out = append(out, connectors.Capability{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	caps, err := c.Discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("scim: discovery: %w", err)
	}
	if caps.Patch {
		add("patch", connectors.CapWorks, "advertised in /ServiceProviderConfig")
	} else {
		add("patch", connectors.CapFallback, "not advertised: changes are sent as PUT of the whole resource")
	}
	if caps.Bulk {
		add("bulk", connectors.CapWorks, "up to %d operations", caps.BulkMaxOperations)
	} else {
		add("bulk", connectors.CapFallback, "not advertised: one request per change")
	}
	if caps.SchemasDiscovered {
		add("schemas", connectors.CapWorks, "attributes mapped from /Schemas")
	} else {
		add("schemas", connectors.CapFallback, "no /Schemas: RFC 7643 core and enterprise schemas assumed")
	}

	probe := ProbeUserPrefix + "lookup-" + randHex()
	switch _, err := c.FindAccount(ctx, connectors.Key{Attribute: c.uniqueID, Value: probe}); {
	case errors.Is(err, connectors.ErrNotFound):
		add(connectors.CapLookup, connectors.CapWorks, "%s eq filter on /Users", c.uniqueID)
	default:
		add(connectors.CapLookup, connectors.CapUnsupported, "find by %s: %v", c.uniqueID, err)
	}

	groups := true
	switch _, err := c.FindGroup(ctx, probe); {
	case errors.Is(err, connectors.ErrNotFound):
		add(connectors.CapGroups, connectors.CapWorks, "displayName eq filter on /Groups")
	default:
		groups = false
		add(connectors.CapGroups, connectors.CapUnsupported, "/Groups: %v", err)
	}
	if groups {
		q := url.Values{"filter": {"members.value eq " + quote(probe)}, "excludedAttributes": {"members"}}
		err := c.do(ctx, request{op: "probe members filter", method: "GET", path: "/Groups", query: q}, nil)
		switch {
		case err == nil || errors.Is(err, connectors.ErrNotFound):
			add(connectors.CapMembersFilter, connectors.CapWorks, "members.value eq filter on /Groups")
		case isScimType(err, "invalidFilter"):
			add(connectors.CapMembersFilter, connectors.CapFallback, "refused (400 invalidFilter): memberships read from the User's groups attribute, else by paging /Groups")
		default:
			add(connectors.CapMembersFilter, connectors.CapUnsupported, "%v", err)
		}
		add(connectors.CapMemberships, connectors.CapWorks, "a User's groups attribute or /Groups")
	} else {
		add(connectors.CapMembersFilter, connectors.CapUnsupported, "no /Groups")
		add(connectors.CapMemberships, connectors.CapUnsupported, "no /Groups: group steps and remove_groups cannot run")
	}
	if _, _, err := c.ListAccounts(ctx, "", 1); err != nil {
		add(connectors.CapList, connectors.CapUnsupported, "%v", err)
	} else {
		add(connectors.CapList, connectors.CapWorks, "paged /Users")
	}

	if !write {
		for _, n := range []string{connectors.CapCreate, connectors.CapUpdate, connectors.CapDelete, connectors.CapMembership} {
			add(n, connectors.CapUntested, "a write: run with --write-probe")
		}
		return out, nil
	}
	return append(out, c.writeProbe(ctx, groups)...), nil
}

func (c *Client) writeProbe(ctx context.Context, groups bool) (out []connectors.Capability) {
	res := func(name string, err error, ok string) {
		if err != nil {
			out = append(out, connectors.Capability{Name: name, Status: connectors.CapUnsupported, Detail: err.Error()})
			return
		}
		out = append(out, connectors.Capability{Name: name, Status: connectors.CapWorks, Detail: ok})
	}
	name := ProbeUserPrefix + randHex()
	acct, err := c.CreateAccount(ctx, connectors.Attributes{c.uniqueID: name, "display_name": "jml probe (safe to delete)"}, connectors.CreateOptions{Activate: false})
	res(connectors.CapCreate, err, "created and will delete user "+name)
	if err != nil {
		return out
	}
	defer func() { res(connectors.CapDelete, c.Delete(ctx, acct.ID), "deleted "+name) }()
	res(connectors.CapUpdate, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"display_name": "jml probe (updated)"}), "changed display_name")
	if !groups {
		out = append(out, connectors.Capability{Name: connectors.CapMembership, Status: connectors.CapUnsupported, Detail: "no /Groups"})
		return out
	}
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: name})
	if err != nil {
		res(connectors.CapMembership, err, "")
		return out
	}
	err = c.AddMember(ctx, g.ID, acct.ID)
	if err == nil {
		err = c.RemoveMember(ctx, g.ID, acct.ID)
	}
	res(connectors.CapMembership, err, "added to and removed from group "+name)
	if err := c.do(ctx, request{op: "delete probe group", method: "DELETE", path: "/Groups/" + url.PathEscape(g.ID)}, nil); err != nil && !errors.Is(err, connectors.ErrNotFound) {
		out = append(out, connectors.Capability{Name: "cleanup", Status: connectors.CapUnsupported, Detail: "probe group " + name + " left behind: " + err.Error()})
	}
	return out
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
