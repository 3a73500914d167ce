package scim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/internal/hostile"
)

func groupIDs(gs []connectors.Group) []string {
	ids := []string{}
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}

func requireType(t *testing.T, err error, typ string) {
	t.Helper()
	var perm *connectors.PermanentError
	require.ErrorAs(t, err, &perm)
	assert.Equal(t, typ, perm.Type, "%v", err)
}

// requireOneLineSummary checks that an HTML 404 body was summarized, not pasted.
func requireOneLineSummary(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	assert.Contains(t, msg, "404 Not Found", "the page title")
	assert.NotContains(t, msg, "<", "no markup")
	assert.NotContains(t, msg, "\n", "one line")
	assert.NotContains(t, msg, "nginx", "the title, not the whole page")
}

// TestHostileServers runs a joiner (create + groups), the read-backs and a
// leaver (Deprovision with RemoveGroups) through each hostile behaviour of
// real SCIM servers, and checks the outcome at the peer itself.
func TestHostileServers(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	direct := peerClient(t, peer) // the truth, not through the proxy

	for i, tc := range []struct {
		name string
		sw   hostile.SCIMSwitches
		// fired are the faults the flow must run into. RejectMembersFilter
		// is only reached when users carry no groups attribute (otherwise
		// no client needs the filter), and never behind NoGroups.
		fired []string
	}{
		{"reject members filter", hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true},
			[]string{hostile.FaultRejectMembersFilter, hostile.FaultNoUserGroupsAttr}},
		{"no groups endpoint", hostile.SCIMSwitches{NoGroups: true}, []string{hostile.FaultNoGroups}},
		{"no user groups attribute", hostile.SCIMSwitches{NoUserGroupsAttr: true}, []string{hostile.FaultNoUserGroupsAttr}},
		{"excludedAttributes ignored", hostile.SCIMSwitches{NoUserGroupsAttr: true, IgnoreExcludedAttributes: true},
			[]string{hostile.FaultNoUserGroupsAttr, hostile.FaultIgnoreExcluded}},
		{"patch 204", hostile.SCIMSwitches{Patch204: true}, []string{hostile.FaultPatch204}},
		{"count capped", hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, MaxCount: 1},
			[]string{hostile.FaultRejectMembersFilter, hostile.FaultMaxCount}},
		{"all but no groups", hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 1, IgnoreExcludedAttributes: true},
			[]string{hostile.FaultRejectMembersFilter, hostile.FaultNoUserGroupsAttr, hostile.FaultPatch204, hostile.FaultMaxCount}},
		{"all", hostile.SCIMSwitches{RejectMembersFilter: true, NoGroups: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 1, IgnoreExcludedAttributes: true},
			[]string{hostile.FaultNoGroups, hostile.FaultNoUserGroupsAttr, hostile.FaultPatch204}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := hostile.StartSCIM(t, peer.Root(), tc.sw)
			fired := map[string]int{} // kept across px.Reset
			reset := func() {
				for _, f := range tc.fired {
					fired[f] += px.Faults(f)
				}
				px.Reset()
			}
			// A small page size makes the /Groups listing take several pages.
			c := newClient(t, px.Rewrite(peer.BaseURL), peer.Token, func(c *scim.Config) { c.PageSize = 2 })
			_, err := c.Discover(ctx)
			require.NoError(t, err)

			// Groups exist at the peer (made directly: a server without
			// /Groups still has its own entitlements).
			var gs []*connectors.Group
			for _, n := range []string{"a", "b", "c"} {
				g, err := direct.EnsureGroup(ctx, connectors.Group{Name: fmt.Sprintf("hostile-%d-%s", i, n)})
				require.NoError(t, err)
				gs = append(gs, g)
			}
			want := []string{gs[0].ID, gs[2].ID}

			// Joiner: 1 lookup + 1 create + 1 PATCH per group.
			name := fmt.Sprintf("hostile%d", i)
			reset()
			_, err = c.FindAccount(ctx, connectors.Key{Value: name})
			require.ErrorIs(t, err, connectors.ErrNotFound)
			u, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": name, "title": "Keep"},
				connectors.CreateOptions{Activate: true, GroupIDs: want})
			joiner := px.Requests("")
			if tc.sw.NoGroups {
				requireType(t, err, "ScimUnsupported")
				requireOneLineSummary(t, err)
				require.NotNil(t, u, "the account was created")
				for _, id := range want {
					require.NoError(t, direct.AddMember(ctx, id, u.ID))
				}
			} else {
				require.NoError(t, err)
				assert.Equal(t, 2+len(want), joiner, "joiner requests")
			}
			t.Logf("joiner: %d requests", joiner)

			// Read-back: one request.
			reset()
			got, err := c.ReadAccount(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, px.Requests(""), "ReadAccount is one request")
			assert.True(t, got.Active)
			assert.Equal(t, "Keep", got.Attributes["title"])
			if tc.sw.NoUserGroupsAttr {
				assert.Nil(t, got.Groups, "the server said nothing about groups")
			} else {
				assert.ElementsMatch(t, want, groupIDs(got.Groups))
			}
			_, err = c.ReadAccount(ctx, "no-such-user")
			require.ErrorIs(t, err, connectors.ErrNotFound)

			// Memberships, whatever the server lacks.
			ms, err := c.Memberships(ctx, u.ID)
			if tc.sw.NoGroups && tc.sw.NoUserGroupsAttr {
				requireType(t, err, "ScimUnsupported")
				require.NotErrorIs(t, err, connectors.ErrNotFound)
				requireOneLineSummary(t, err)
			} else {
				require.NoError(t, err)
				assert.ElementsMatch(t, want, groupIDs(ms))
			}
			if tc.sw.RejectMembersFilter && !tc.sw.NoGroups {
				rejected := px.Faults(hostile.FaultRejectMembersFilter)
				ms, err = c.Memberships(ctx, u.ID)
				require.NoError(t, err)
				assert.ElementsMatch(t, want, groupIDs(ms))
				assert.Equal(t, rejected, px.Faults(hostile.FaultRejectMembersFilter), "the fallback is remembered")
			}

			// Leaver.
			reset()
			err = c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true})
			leaver := px.Requests("")
			t.Logf("leaver: %d requests (%v)", leaver, err)
			if !tc.sw.NoGroups && !tc.sw.RejectMembersFilter {
				// PATCH active=false, whose answer carries the groups (else
				// one read), then one PATCH per group.
				budget := 1 + len(want)
				if tc.sw.Patch204 || tc.sw.NoUserGroupsAttr {
					budget++
				}
				assert.Equal(t, budget, leaver, "leaver requests")
			}
			acct, rerr := direct.ReadAccount(ctx, u.ID)
			require.NoError(t, rerr)
			assert.False(t, acct.Active, "disabled at the peer")
			assert.Equal(t, "Keep", acct.Attributes["title"])
			left, merr := direct.Memberships(ctx, u.ID)
			require.NoError(t, merr)
			if tc.sw.NoGroups {
				requireType(t, err, "ScimUnsupported")
				require.NotErrorIs(t, err, connectors.ErrNotFound)
				assert.Contains(t, err.Error(), "disabled", "the error says the account was disabled")
				requireOneLineSummary(t, err)
				assert.ElementsMatch(t, want, groupIDs(left), "nothing could be removed")

				// Without RemoveGroups there is nothing unsupported to do.
				require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{}))
			} else {
				require.NoError(t, err)
				assert.Empty(t, left, "in no group at the peer")
				got, err := c.ReadAccount(ctx, u.ID)
				require.NoError(t, err)
				assert.False(t, got.Active)
				if tc.sw.NoUserGroupsAttr {
					assert.Nil(t, got.Groups, "unknown")
				} else {
					assert.NotNil(t, got.Groups, "declared in /Schemas: absent means none")
					assert.Empty(t, got.Groups)
				}
			}

			reset()
			for _, f := range tc.fired {
				assert.Positive(t, fired[f], "fault %s happened", f)
			}
		})
	}
}

// TestDeprovisionDisablesFirst: a failing group read must not keep the
// account active, and a missing user is still success.
func TestDeprovisionDisablesFirst(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	direct := peerClient(t, peer)
	px := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{NoUserGroupsAttr: true})
	c := newClient(t, px.Rewrite(peer.BaseURL), peer.Token)

	u, err := direct.CreateAccount(ctx, connectors.Attributes{"user_name": "first"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	g, err := direct.EnsureGroup(ctx, connectors.Group{Name: "first-g"})
	require.NoError(t, err)
	require.NoError(t, direct.AddMember(ctx, g.ID, u.ID))

	// /Groups disappears: the group read fails, the disable must not.
	px.Set(hostile.SCIMSwitches{NoUserGroupsAttr: true, NoGroups: true})
	err = c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true})
	requireType(t, err, "ScimUnsupported")
	assert.Positive(t, px.Faults(hostile.FaultNoGroups))
	acct, err := direct.ReadAccount(ctx, u.ID)
	require.NoError(t, err)
	assert.False(t, acct.Active)

	// Options are honoured: no RemoveGroups, the memberships stay.
	px.Set(hostile.SCIMSwitches{})
	require.NoError(t, direct.Reactivate(ctx, u.ID))
	require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{}))
	ms, err := direct.Memberships(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{g.ID}, groupIDs(ms))
	acct, err = direct.ReadAccount(ctx, u.ID)
	require.NoError(t, err)
	assert.False(t, acct.Active)

	// A missing user is success.
	require.NoError(t, direct.Delete(ctx, u.ID))
	require.NoError(t, c.Deprovision(ctx, u.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	_, err = c.ReadAccount(ctx, u.ID)
	require.ErrorIs(t, err, connectors.ErrNotFound)
	assert.False(t, strings.Contains(err.Error(), "<"))
}

// TestFindGroupSeesRename: a group renamed or deleted at the target after
// the client found (or created) it by name is not found under that name
// any more, whatever the client saw before; EnsureGroup creates the name
// again. Against SCIMMY and behind the strict proxy.
func TestFindGroupSeesRename(t *testing.T) {
	strict := hostile.SCIMSwitches{RejectMembersFilter: true, NoUserGroupsAttr: true, Patch204: true, MaxCount: 1, IgnoreExcludedAttributes: true}
	for _, tc := range []struct {
		name   string
		sw     *hostile.SCIMSwitches
		delete bool
	}{{name: "scimmy renamed"}, {name: "scimmy deleted", delete: true}, {name: "strict renamed", sw: &strict}, {name: "strict deleted", sw: &strict, delete: true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			peer := scimtest.Start(t)
			direct := peerClient(t, peer)
			c := direct
			if tc.sw != nil {
				c = newClient(t, hostile.StartSCIM(t, peer.Root(), *tc.sw).Rewrite(peer.BaseURL), peer.Token)
			}
			old, err := c.EnsureGroup(ctx, connectors.Group{Name: "dept-finance"})
			require.NoError(t, err)
			found, err := c.FindGroup(ctx, "dept-finance")
			require.NoError(t, err)
			require.Equal(t, old.ID, found.ID)
			groups, _, err := c.ListGroups(ctx, "", 0)
			require.NoError(t, err)
			require.NotEmpty(t, groups)

			if tc.delete {
				peer.DeleteGroup(old.ID)
			} else {
				peer.RenameGroup(old.ID, "Finance Department")
			}
			_, err = c.FindGroup(ctx, "dept-finance")
			require.ErrorIs(t, err, connectors.ErrNotFound)
			again, err := c.EnsureGroup(ctx, connectors.Group{Name: "dept-finance"})
			require.NoError(t, err)
			assert.NotEqual(t, old.ID, again.ID, "created again")
			assert.Equal(t, "dept-finance", again.Name)
		})
	}
}
