package scim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/internal/hostile"
)

// TestListGroupsInPages reads 250 groups with their members through a
// provider that caps count at 100 whatever is asked: pages advance by what
// came back, every group and member is read once. Without /Groups the
// error is permanent (reconciliation then classifies accounts only).
func TestListGroupsInPages(t *testing.T) {
	ctx := context.Background()
	peer := scimtest.Start(t)
	var groups []scimtest.LoadGroup
	for i := 0; i < 250; i++ {
		groups = append(groups, scimtest.LoadGroup{DisplayName: fmt.Sprintf("g%03d", i), Members: []string{"ada", "bob"}[:i%3%2+1]})
	}
	ids := peer.Load([]scimtest.LoadUser{{UserName: "ada", Active: true}, {UserName: "bob", Active: true}}, groups)
	proxy := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{MaxCount: 100})
	c, err := scim.New(ctx, scim.Config{BaseURL: proxy.Rewrite(peer.BaseURL), Auth: scim.Auth{BearerToken: peer.Token}})
	require.NoError(t, err)

	peer.Reset()
	got := map[string][]string{}
	pages := 0
	for cursor := ""; ; {
		gs, next, err := c.ListGroups(ctx, cursor, 200)
		require.NoError(t, err)
		pages++
		for _, g := range gs {
			got[g.Name] = g.Members
			assert.Equal(t, ids.Groups[g.Name], g.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, 3, peer.Requests())
	assert.Greater(t, proxy.Faults(hostile.FaultMaxCount), 0)
	require.Len(t, got, 250)
	assert.Equal(t, []string{ids.Users["ada"]}, got["g000"])
	assert.Equal(t, []string{ids.Users["ada"], ids.Users["bob"]}, got["g001"])

	members, next, err := c.ListMembers(ctx, ids.Groups["g001"], "", 0)
	require.NoError(t, err)
	assert.Empty(t, next)
	assert.Equal(t, []string{ids.Users["ada"], ids.Users["bob"]}, members)

	proxy.Set(hostile.SCIMSwitches{NoGroups: true})
	_, _, err = c.ListGroups(ctx, "", 200)
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err), "%v", err)
}
