package entra_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
)

// Item 7 (connector): a first cycle reads every user through
// /users/delta, page by page, and keeps the delta link; the second cycle
// through that link reads only the users changed or removed since — in
// one request, not the whole tenant.
func TestDeltaSecondCycleReadsOnlyChanges(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t)
	var ids []string
	for i := range 250 {
		ids = append(ids, seedUser(srv, fmt.Sprintf("u%03d@contoso.com", i), fmt.Sprintf("E%03d", i)))
	}
	srv.ResetCounts()
	var all []connectors.Account
	cursor, delta := "", ""
	for {
		changed, removed, next, d, err := c.ListChanges(ctx, cursor)
		require.NoError(t, err)
		assert.Empty(t, removed)
		all = append(all, changed...)
		if next == "" {
			delta = d
			break
		}
		cursor = next
	}
	assert.Len(t, all, 250, "the first cycle is a full read")
	require.NotEmpty(t, delta)
	assert.Equal(t, "E000", all[0].Attributes["employee_id"])

	srv.UpdateUser(ids[7], map[string]any{"department": "Sales"})
	srv.UpdateUser(ids[42], map[string]any{"jobTitle": "Lead"})
	require.NoError(t, c.Delete(ctx, ids[99]))
	srv.ResetCounts()
	changed, removed, next, again, err := c.ListChanges(ctx, delta)
	require.NoError(t, err)
	assert.Equal(t, 1, srv.Requests(), "one page: only the changes")
	assert.Empty(t, next)
	assert.NotEmpty(t, again, "the next delta link")
	require.Len(t, changed, 2)
	got := map[string]connectors.Account{changed[0].ID: changed[0], changed[1].ID: changed[1]}
	assert.Equal(t, "Sales", got[ids[7]].Attributes["department"])
	assert.Equal(t, "Lead", got[ids[42]].Attributes["job_title"])
	assert.Equal(t, []string{ids[99]}, removed)

	changed, removed, _, _, err = c.ListChanges(ctx, again)
	require.NoError(t, err)
	assert.Empty(t, changed, "nothing changed since")
	assert.Empty(t, removed)

	_, _, _, _, err = c.ListChanges(ctx, "https://evil.example/users/delta?$deltatoken=1")
	require.Error(t, err, "a cursor outside this tenant's Graph is refused")
}
