package entra_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
)

// TestReadAccount: one GET /users/{id} whose $select carries
// accountEnabled, so Active is the real state (Graph's default property
// set leaves accountEnabled out).
func TestReadAccount(t *testing.T) {
	tests := []struct {
		name    string
		enabled bool
	}{
		{"enabled", true},
		{"disabled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			srv, c := setup(t)
			id := srv.AddUser(map[string]any{"userPrincipalName": "read@contoso.com", "displayName": "Read Back",
				"employeeId": "E7", "department": "Finance", "accountEnabled": tt.enabled})
			srv.ResetCounts()

			got, err := c.ReadAccount(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, []string{"GET /v1.0/users/" + id}, srv.Log(), "one request")
			assert.Equal(t, id, got.ID)
			assert.Equal(t, tt.enabled, got.Active)
			assert.Equal(t, "E7", got.Attributes["employee_id"])
			assert.Equal(t, "Finance", got.Attributes["department"])
			assert.Equal(t, "read@contoso.com", got.Attributes["user_principal_name"])
		})
	}
	t.Run("missing", func(t *testing.T) {
		srv, c := setup(t)
		_, err := c.ReadAccount(context.Background(), "00000000-0000-0000-0000-000000000000")
		require.ErrorIs(t, err, connectors.ErrNotFound)
		assert.Equal(t, 1, srv.Requests())
	})
	t.Run("empty id sends nothing", func(t *testing.T) {
		srv, c := setup(t)
		_, err := c.ReadAccount(context.Background(), " ")
		require.True(t, connectors.IsPermanent(err))
		assert.Equal(t, 0, srv.Requests())
	})
}

// leaver seeds an enabled user in two changeable groups and a dynamic one.
func leaver(t *testing.T) (*graphtest.Server, *entra.Connector, string, []string) {
	t.Helper()
	srv, c := setup(t)
	id := seedUser(srv, "leaver@contoso.com", "E1")
	groups := []string{
		srv.AddGroup(graphtest.GroupSpec{Name: "vpn"}),
		srv.AddGroup(graphtest.GroupSpec{Name: "m365", Unified: true}),
	}
	dynamic := srv.AddGroup(graphtest.GroupSpec{Name: "all-engineers", Dynamic: true})
	for _, g := range append(slices.Clone(groups), dynamic) {
		srv.AddMember(g, id)
	}
	srv.ResetCounts()
	return srv, c, id, groups
}

// steps reduces a request log to the leaver's state-changing steps, in
// order. The memberOf read is left out: it changes nothing, so it may
// travel with the disable (see readsGroups).
func steps(log []string) []string {
	var out []string
	for _, l := range log {
		l = strings.TrimPrefix(l, "batch ")
		var s string
		switch {
		case strings.HasPrefix(l, "PATCH /v1.0/users/"):
			s = "disable"
		case strings.HasPrefix(l, "DELETE /v1.0/groups/"):
			s = "remove group"
		case strings.HasSuffix(l, "/revokeSignInSessions"):
			s = "revoke sessions"
		default:
			continue
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func readsGroups(log []string) bool {
	return slices.ContainsFunc(log, func(l string) bool { return strings.Contains(l, "/memberOf") })
}

// TestDeprovisionOrder: disable first, then groups (only with
// RemoveGroups), then sessions (only with ClearSessions). graphtest runs a
// $batch in reverse order, as Graph may, so an order that relies on
// requests inside one $batch fails here.
func TestDeprovisionOrder(t *testing.T) {
	tests := []struct {
		name  string
		opts  connectors.DeprovisionOptions
		steps []string
		calls int // Graph HTTP requests (a $batch counts once)
	}{
		{"everything", connectors.DeprovisionOptions{Mode: "suspend", RemoveGroups: true, ClearSessions: true},
			[]string{"disable", "remove group", "revoke sessions"}, 3},
		{"options off", connectors.DeprovisionOptions{}, []string{"disable"}, 1},
		{"groups only", connectors.DeprovisionOptions{RemoveGroups: true}, []string{"disable", "remove group"}, 2},
		{"sessions only", connectors.DeprovisionOptions{Mode: "deactivate", ClearSessions: true}, []string{"disable", "revoke sessions"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c, id, groups := leaver(t)
			require.NoError(t, c.Deprovision(context.Background(), id, tt.opts))
			assert.Equal(t, tt.steps, steps(srv.Log()), "%v", srv.Log())
			assert.Equal(t, tt.calls, srv.Requests(), "leaver budget: %v", srv.Log())
			assert.Equal(t, tt.opts.RemoveGroups, readsGroups(srv.Log()), "groups are read only to remove them")
			assert.Equal(t, false, srv.User(id)["accountEnabled"])
			for _, g := range groups {
				if tt.opts.RemoveGroups {
					assert.Empty(t, srv.Members(g))
				} else {
					assert.Equal(t, []string{id}, srv.Members(g), "groups kept without RemoveGroups")
				}
			}
			want := 0
			if tt.opts.ClearSessions {
				want = 1
			}
			assert.Equal(t, want, srv.Revocations(id))
		})
	}
}

// TestDeprovisionFailureAfterDisable: a failed group read, group removal or
// session revocation after the disable returns an error of its own class
// that says the account was disabled; the account reads back disabled and
// a rerun completes the leaver.
func TestDeprovisionFailureAfterDisable(t *testing.T) {
	type class int
	const (
		transient class = iota
		permanent
		rateLimited
	)
	tests := []struct {
		name        string
		fault       func(id string, groups []string) graphtest.Fault
		want        class
		wantRemoved int // groups left without the user
		wantRevoked int
	}{
		{"group read 500", func(id string, _ []string) graphtest.Fault {
			return graphtest.Fault{Method: "GET", Path: "/v1.0/users/" + id + "/memberOf", Status: 500}
		}, transient, 0, 1},
		{"group read 400", func(id string, _ []string) graphtest.Fault {
			return graphtest.Fault{Method: "GET", Path: "/v1.0/users/" + id + "/memberOf", Status: 400, Code: "Request_BadRequest"}
		}, permanent, 0, 1},
		{"group read 429", func(id string, _ []string) graphtest.Fault {
			return graphtest.Fault{Method: "GET", Path: "/v1.0/users/" + id + "/memberOf", Status: 429, RetryAfter: "9"}
		}, rateLimited, 0, 1},
		{"group removal 500", func(_ string, groups []string) graphtest.Fault {
			return graphtest.Fault{Method: "DELETE", Path: "/v1.0/groups/" + groups[0], Status: 500}
		}, transient, 1, 1},
		{"group removal 403", func(_ string, groups []string) graphtest.Fault {
			return graphtest.Fault{Method: "DELETE", Path: "/v1.0/groups/" + groups[0], Status: 403}
		}, permanent, 1, 1},
		{"revoke 500", func(id string, _ []string) graphtest.Fault {
			return graphtest.Fault{Method: "POST", Path: "/v1.0/users/" + id + "/revokeSignInSessions", Status: 500}
		}, transient, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			srv, c, id, groups := leaver(t)
			srv.FailNext(tt.fault(id, groups))
			opts := connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true}
			err := c.Deprovision(ctx, id, opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "was disabled")
			switch tt.want {
			case transient:
				var tr *connectors.TransientError
				assert.ErrorAs(t, err, &tr)
				assert.False(t, connectors.IsPermanent(err))
			case permanent:
				assert.True(t, connectors.IsPermanent(err))
			case rateLimited:
				var rl *connectors.RateLimitedError
				require.ErrorAs(t, err, &rl)
				assert.Equal(t, 9e9, float64(rl.RetryAfter))
			}

			got, err := c.ReadAccount(ctx, id)
			require.NoError(t, err)
			assert.False(t, got.Active, "the disable stands")
			removed := 0
			for _, g := range groups {
				if !slices.Contains(srv.Members(g), id) {
					removed++
				}
			}
			assert.Equal(t, tt.wantRemoved, removed)
			assert.Equal(t, tt.wantRevoked, srv.Revocations(id), "sessions are still revoked after a group failure")

			require.NoError(t, c.Deprovision(ctx, id, opts), "the retry completes the leaver")
			for _, g := range groups {
				assert.Empty(t, srv.Members(g))
			}
		})
	}
	t.Run("a failed disable stops there", func(t *testing.T) {
		srv, c, id, groups := leaver(t)
		srv.FailNext(graphtest.Fault{Method: "PATCH", Path: "/v1.0/users/" + id, Status: 503})
		err := c.Deprovision(context.Background(), id, connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true})
		var tr *connectors.TransientError
		require.ErrorAs(t, err, &tr)
		assert.NotContains(t, err.Error(), "was disabled")
		assert.Equal(t, true, srv.User(id)["accountEnabled"])
		assert.Equal(t, []string{"disable"}, steps(srv.Log()), "nothing after a failed disable")
		assert.Equal(t, []string{id}, srv.Members(groups[0]))
	})
	t.Run("missing account is done", func(t *testing.T) {
		srv, c := setup(t)
		require.NoError(t, c.Deprovision(context.Background(), "00000000-0000-0000-0000-000000000000",
			connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true}))
		assert.Equal(t, 1, srv.Requests(), "the disable's 404 ends it")
	})
}

// TestDeprovisionGroupsPastFirstPage: memberOf read inside the disable's
// $batch follows its nextLink.
func TestDeprovisionGroupsPastFirstPage(t *testing.T) {
	srv, c := setup(t)
	id := seedUser(srv, "many@contoso.com", "E9")
	var groups []string
	for i := range 1001 {
		g := srv.AddGroup(graphtest.GroupSpec{Name: "g" + strings.Repeat("x", i%3) + string(rune('a'+i%26))})
		srv.AddMember(g, id)
		groups = append(groups, g)
	}
	srv.ResetCounts()
	require.NoError(t, c.Deprovision(context.Background(), id, connectors.DeprovisionOptions{RemoveGroups: true}))
	for _, g := range groups {
		require.Empty(t, srv.Members(g))
	}
	// $batch (disable + page 1), page 2, then ceil(1001/20) = 51 removal batches.
	assert.Equal(t, 53, srv.Requests())
}
