package entra_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/entra/graphtest"
)

// TestListGroupsAndMembers pages through groups and a group's members
// against the Graph stand-in: one request per page.
func TestListGroupsAndMembers(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	var users []string
	for i := 0; i < 5; i++ {
		users = append(users, seedUser(srv, fmt.Sprintf("u%d@contoso.example", i), fmt.Sprint(i)))
	}
	ids := map[string]string{}
	for _, name := range []string{"all-staff", "dept-eng", "wiki"} {
		ids[name] = srv.AddGroup(graphtest.GroupSpec{Name: name})
	}
	for _, u := range users {
		srv.AddMember(ids["all-staff"], u)
	}
	srv.AddMember(ids["dept-eng"], users[1])

	srv.ResetCounts()
	var names []string
	pages := 0
	for cursor := ""; ; pages++ {
		gs, next, err := c.ListGroups(ctx, cursor, 2)
		require.NoError(t, err)
		for _, g := range gs {
			names = append(names, g.Name)
			assert.Equal(t, ids[g.Name], g.ID)
			assert.Nil(t, g.Members, "members are read per group")
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Equal(t, []string{"all-staff", "dept-eng", "wiki"}, names)
	assert.Equal(t, 1, pages, "two pages of two")

	members, next, err := c.ListMembers(ctx, ids["all-staff"], "", 0)
	require.NoError(t, err)
	assert.Empty(t, next)
	assert.ElementsMatch(t, users, members)
	members, _, err = c.ListMembers(ctx, ids["dept-eng"], "", 0)
	require.NoError(t, err)
	assert.Equal(t, []string{users[1]}, members)
	assert.Equal(t, 4, srv.Requests())

	_, _, err = c.ListGroups(ctx, "https://evil.example/v1.0/groups?$skiptoken=2", 2)
	assert.ErrorContains(t, err, "cursor is not a Graph /groups link")
	_, _, err = c.ListMembers(ctx, ids["wiki"], srv.GraphURL()+"/users?$skiptoken=1", 0)
	assert.ErrorContains(t, err, "cursor is not a Graph")
}
