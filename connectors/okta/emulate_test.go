package okta_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/secret"
)

// TestLifecycleOnEmulate runs joiner → mover → leaver → rehire → delete on
// the stateful emulate stand-in through the real SDK.
func TestLifecycleOnEmulate(t *testing.T) {
	peer := oktatest.Start(t)
	c, logs := newClient(t, peer.OrgURL, peer.Token, nil)
	ctx := context.Background()
	const login = "margaret.hamilton@acme.test"

	// CREATE_ENTITLEMENT, idempotent by name.
	eng, err := c.EnsureGroup(ctx, connectors.Group{Name: "jml-engineering", Description: "Engineering"})
	require.NoError(t, err)
	again, err := c.EnsureGroup(ctx, connectors.Group{Name: "jml-engineering", Description: "Engineering"})
	require.NoError(t, err)
	assert.Equal(t, eng.ID, again.ID)
	apollo, err := c.EnsureGroup(ctx, connectors.Group{Name: "jml-apollo"})
	require.NoError(t, err)

	// Joiner: lookup + create = 2 requests once group IDs are cached.
	peer.Reset()
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "login", Value: login})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	pw := secret.New("Apollo-11-Pa55!")
	acct, err := c.CreateAccount(ctx, person(login), connectors.CreateOptions{Activate: true, GroupIDs: []string{eng.ID}, Password: &pw})
	require.NoError(t, err)
	assert.Equal(t, 2, peer.Requests(), "joiner budget: %v", peer.Log())
	assert.Equal(t, "ACTIVE", acct.Status)
	assert.Equal(t, login, acct.Attributes["login"])
	assert.Equal(t, "Ada", acct.Attributes["first_name"])
	// emulate drops groupIds at creation (Okta grants them); the faithful
	// server covers that, so grant explicitly here — idempotently.
	require.NoError(t, c.AddMember(ctx, eng.ID, acct.ID))
	require.NoError(t, c.AddMember(ctx, eng.ID, acct.ID))

	// Duplicate login: adopt, never duplicate.
	dup, err := c.CreateAccount(ctx, person(login), connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	assert.Equal(t, acct.ID, dup.ID)

	// Mover: changed attributes only, new groups.
	require.NoError(t, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"last_name": "Hamilton"}))
	got, err := c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
	require.NoError(t, err)
	assert.Equal(t, "Hamilton", got.Attributes["last_name"])
	assert.Equal(t, "Ada", got.Attributes["first_name"], "untouched attributes stay")
	require.NoError(t, c.AddMember(ctx, apollo.ID, acct.ID))
	require.NoError(t, c.RemoveMember(ctx, eng.ID, acct.ID))
	require.NoError(t, c.RemoveMember(ctx, eng.ID, acct.ID), "removing an absent member succeeds")
	assert.Equal(t, []string{"jml-apollo"}, groupNames(t, c, acct.ID))

	// Leaver: suspend, drop groups; profile kept; rerun is a no-op.
	// Order: disable first, then groups, then sessions (emulate has no
	// sessions endpoint: its 404 reads as done).
	leave := connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true}
	peer.Reset()
	require.NoError(t, c.Deprovision(ctx, acct.ID, leave))
	assert.Equal(t, []string{
		"GET /api/v1/users/" + acct.ID,
		"POST /api/v1/users/" + acct.ID + "/lifecycle/suspend",
		"GET /api/v1/users/" + acct.ID + "/groups",
		"DELETE /api/v1/groups/" + apollo.ID + "/users/" + acct.ID,
		"DELETE /api/v1/users/" + acct.ID + "/sessions?oauthTokens=true",
	}, peer.Log(), "leaver budget and order")
	peer.Reset()
	got, err = c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, peer.Requests(), "a read-back is one request: %v", peer.Log())
	assert.Equal(t, "SUSPENDED", got.Status)
	assert.False(t, got.Active)
	assert.Equal(t, "Hamilton", got.Attributes["last_name"])
	assert.Empty(t, groupNames(t, c, acct.ID))
	require.NoError(t, c.Deprovision(ctx, acct.ID, leave))

	// Rehire, then a harder leaver.
	require.NoError(t, c.Reactivate(ctx, acct.ID))
	got, err = c.FindAccount(ctx, connectors.Key{Value: login})
	require.NoError(t, err)
	assert.Equal(t, "ACTIVE", got.Status)
	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{Mode: okta.ModeDeactivate}))
	got, err = c.FindAccount(ctx, connectors.Key{Value: login})
	require.NoError(t, err)
	assert.Equal(t, "DEPROVISIONED", got.Status)

	// Delete: 404 afterwards, and deleting again is done.
	require.NoError(t, c.Delete(ctx, acct.ID))
	_, err = c.FindAccount(ctx, connectors.Key{Value: login})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	require.NoError(t, c.Delete(ctx, acct.ID))
	require.NoError(t, c.Deprovision(ctx, acct.ID, leave), "deprovisioning a deleted user is done")
	_, err = c.ReadAccount(ctx, acct.ID)
	require.ErrorIs(t, err, connectors.ErrNotFound)
	require.NoError(t, c.RemoveMember(ctx, apollo.ID, acct.ID))

	// A user deleted without being deactivated first.
	other, err := c.CreateAccount(ctx, person("katherine.johnson@acme.test"), connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	require.NoError(t, c.Delete(ctx, other.ID))
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: other.ID})
	require.ErrorIs(t, err, connectors.ErrNotFound)

	assert.NotContains(t, logText(logs), pw.Reveal())
}

func groupNames(t *testing.T, c *okta.Client, id string) []string {
	t.Helper()
	gs, err := c.Memberships(context.Background(), id)
	require.NoError(t, err)
	var names []string
	for _, g := range gs {
		if g.Name != "Everyone" {
			names = append(names, g.Name)
		}
	}
	return names
}
