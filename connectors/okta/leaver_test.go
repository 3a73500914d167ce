package okta_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/secret"
)

// TestReadAccount: the read-back that verifies a write is exactly one GET by
// the Okta ID, with Active mapped from the status as FindAccount maps it.
func TestReadAccount(t *testing.T) {
	tests := []struct {
		status     string
		wantActive bool
	}{
		{"ACTIVE", true},
		{"PROVISIONED", true},
		{"RECOVERY", true},
		{"PASSWORD_EXPIRED", true},
		{"LOCKED_OUT", true},
		// STAGED (created with Activate=false) reads as not active, as
		// FindAccount has always read it: a create without activation
		// verifies as Active == false, and a rehire of a STAGED account
		// activates it.
		{"STAGED", false},
		{"SUSPENDED", false},
		{"DEPROVISIONED", false},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			f := newFakeOkta(t)
			c, _ := newClient(t, f.URL, f.Token, nil)
			ctx := context.Background()
			acct, err := c.CreateAccount(ctx, person("read@acme.test"), connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			f.mu.Lock()
			f.users[acct.ID].Status = tt.status
			f.mu.Unlock()
			f.ResetRequests()

			got, err := c.ReadAccount(ctx, acct.ID)
			require.NoError(t, err)
			assert.Equal(t, []string{"GET /api/v1/users/" + acct.ID}, f.Requests(), "one request")
			assert.Equal(t, acct.ID, got.ID)
			assert.Equal(t, tt.status, got.Status)
			assert.Equal(t, tt.wantActive, got.Active)
			assert.Equal(t, "E-read", got.Attributes["employee_id"])
			assert.Equal(t, "read@acme.test", got.Attributes["login"])

			found, err := c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
			require.NoError(t, err)
			assert.Equal(t, found.Active, got.Active, "one status mapping")
		})
	}
	t.Run("missing", func(t *testing.T) {
		f := newFakeOkta(t)
		c, _ := newClient(t, f.URL, f.Token, nil)
		_, err := c.ReadAccount(context.Background(), "00umissing")
		require.ErrorIs(t, err, connectors.ErrNotFound)
		assert.Len(t, f.Requests(), 1)
	})
	t.Run("empty id sends nothing", func(t *testing.T) {
		f := newFakeOkta(t)
		c, _ := newClient(t, f.URL, f.Token, nil)
		_, err := c.ReadAccount(context.Background(), "")
		assert.Equal(t, okta.TypeValidation, permanentType(t, err))
		assert.Empty(t, f.Requests())
	})
}

// leaverSetup creates an ACTIVE user in one OKTA_GROUP (and Everyone).
func leaverSetup(t *testing.T) (*fakeOkta, *okta.Client, string, string) {
	t.Helper()
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "finance"})
	require.NoError(t, err)
	pw := secret.New("Leaver-Pa55word!")
	acct, err := c.CreateAccount(ctx, person("leaver@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}, Password: &pw})
	require.NoError(t, err)
	require.Equal(t, "ACTIVE", acct.Status)
	f.ResetRequests()
	return f, c, acct.ID, g.ID
}

// TestDeprovisionOrder: disable first, then groups (only with
// RemoveGroups), then sessions (only with ClearSessions); every request
// in order.
func TestDeprovisionOrder(t *testing.T) {
	const (
		get      = "GET /api/v1/users/{u}"
		suspend  = "POST /api/v1/users/{u}/lifecycle/suspend"
		deact    = "POST /api/v1/users/{u}/lifecycle/deactivate?sendEmail=false"
		groups   = "GET /api/v1/users/{u}/groups"
		remove   = "DELETE /api/v1/groups/{g}/users/{u}"
		sessions = "DELETE /api/v1/users/{u}/sessions?oauthTokens=true"
	)
	tests := []struct {
		name       string
		status     string // before the call
		opts       connectors.DeprovisionOptions
		want       []string
		wantStatus string
	}{
		{"suspend, groups, sessions", "ACTIVE", connectors.DeprovisionOptions{Mode: okta.ModeSuspend, RemoveGroups: true, ClearSessions: true},
			[]string{get, suspend, groups, remove, sessions}, "SUSPENDED"},
		{"default mode is the client's (suspend)", "ACTIVE", connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true},
			[]string{get, suspend, groups, remove, sessions}, "SUSPENDED"},
		{"deactivate, groups, sessions", "ACTIVE", connectors.DeprovisionOptions{Mode: okta.ModeDeactivate, RemoveGroups: true, ClearSessions: true},
			[]string{get, deact, groups, remove, sessions}, "DEPROVISIONED"},
		{"options off: disable only", "ACTIVE", connectors.DeprovisionOptions{Mode: okta.ModeSuspend},
			[]string{get, suspend}, "SUSPENDED"},
		{"groups only", "ACTIVE", connectors.DeprovisionOptions{RemoveGroups: true},
			[]string{get, suspend, groups, remove}, "SUSPENDED"},
		{"sessions only", "ACTIVE", connectors.DeprovisionOptions{ClearSessions: true},
			[]string{get, suspend, sessions}, "SUSPENDED"},
		{"a status suspend does not apply to is deactivated", "PROVISIONED", connectors.DeprovisionOptions{Mode: okta.ModeSuspend, RemoveGroups: true, ClearSessions: true},
			[]string{get, deact, groups, remove, sessions}, "DEPROVISIONED"},
		{"already suspended: nothing to disable", "SUSPENDED", connectors.DeprovisionOptions{Mode: okta.ModeSuspend, RemoveGroups: true, ClearSessions: true},
			[]string{get, groups, remove, sessions}, "SUSPENDED"},
		{"suspended, deactivate asked", "SUSPENDED", connectors.DeprovisionOptions{Mode: okta.ModeDeactivate},
			[]string{get, deact}, "DEPROVISIONED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c, uid, gid := leaverSetup(t)
			f.mu.Lock()
			f.users[uid].Status = tt.status
			f.mu.Unlock()
			require.NoError(t, c.Deprovision(context.Background(), uid, tt.opts))
			r := strings.NewReplacer("{u}", uid, "{g}", gid)
			var want []string
			for _, w := range tt.want {
				want = append(want, r.Replace(w))
			}
			assert.Equal(t, want, f.Requests())
			assert.Equal(t, tt.wantStatus, f.user(uid).Status)
			if tt.opts.RemoveGroups {
				assert.Equal(t, []string{"00gEveryone"}, f.groupsOf(uid), "built-in Everyone stays")
			} else {
				assert.Contains(t, f.groupsOf(uid), gid, "groups kept without RemoveGroups")
			}
			_, cleared := f.sessions[uid]
			assert.Equal(t, tt.opts.ClearSessions, cleared)
		})
	}
}

// TestDeprovisionFailureAfterDisable: a failed group read, group removal or
// session call after the disable returns an error of its own class that
// says the account was disabled — and the account reads back disabled.
func TestDeprovisionFailureAfterDisable(t *testing.T) {
	type class int
	const (
		transient class = iota
		permanent
		rateLimited
	)
	tests := []struct {
		name         string
		method, path string // path suffix to fail, "{g}" is the group
		status       int
		code         string
		want         class
		wantGroups   bool // group membership removed despite the failure
		wantSessions bool // sessions cleared despite the failure
	}{
		{"group read 500", "GET", "/groups", 500, "E0000009", transient, false, true},
		{"group read 400", "GET", "/groups", 400, "E0000003", permanent, false, true},
		// The client's pacing holds the users/{id} endpoint after a 429, so
		// the session call waits for the retry (after Okta's reset) too.
		{"group read 429", "GET", "/groups", 429, "E0000047", rateLimited, false, false},
		{"group removal 500", "DELETE", "/users/{u}", 500, "E0000009", transient, false, true},
		{"group removal 403", "DELETE", "/users/{u}", 403, "E0000006", permanent, false, true},
		{"sessions 500", "DELETE", "/sessions", 500, "E0000009", transient, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c, uid, gid := leaverSetup(t)
			suffix := strings.NewReplacer("{u}", uid).Replace(tt.path)
			f.intercept = func(w http.ResponseWriter, r *http.Request, after bool) bool {
				if after || r.Method != tt.method || !strings.HasSuffix(r.URL.Path, suffix) {
					return false
				}
				oktaErr(w, tt.status, tt.code, "injected failure")
				return true
			}
			ctx := context.Background()
			err := c.Deprovision(ctx, uid, connectors.DeprovisionOptions{Mode: okta.ModeSuspend, RemoveGroups: true, ClearSessions: true})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "was suspended")
			switch tt.want {
			case transient:
				var tr *connectors.TransientError
				assert.ErrorAs(t, err, &tr)
				assert.False(t, connectors.IsPermanent(err))
			case permanent:
				assert.True(t, connectors.IsPermanent(err))
			case rateLimited:
				var rl *connectors.RateLimitedError
				assert.ErrorAs(t, err, &rl)
				assert.False(t, connectors.IsPermanent(err))
			}

			// Read back (and retry) with a fresh client: after a 429 the
			// first one rightly holds that endpoint until Okta's reset.
			f.intercept = nil
			c, _ = newClient(t, f.URL, f.Token, nil)
			got, err := c.ReadAccount(ctx, uid)
			require.NoError(t, err)
			assert.False(t, got.Active, "the disable stands")
			assert.Equal(t, "SUSPENDED", got.Status)
			assert.Equal(t, tt.wantGroups, !contains(f.groupsOf(uid), gid))
			_, cleared := f.sessions[uid]
			assert.Equal(t, tt.wantSessions, cleared, "sessions are still ended after a group failure")

			// The retry Temporal makes completes the leaver.
			require.NoError(t, c.Deprovision(ctx, uid, connectors.DeprovisionOptions{Mode: okta.ModeSuspend, RemoveGroups: true, ClearSessions: true}))
			assert.Equal(t, []string{"00gEveryone"}, f.groupsOf(uid))
			_, cleared = f.sessions[uid]
			assert.True(t, cleared)
		})
	}
	t.Run("a failed disable is reported as not disabled", func(t *testing.T) {
		f, c, uid, _ := leaverSetup(t)
		f.intercept = func(w http.ResponseWriter, r *http.Request, after bool) bool {
			if after || !strings.HasSuffix(r.URL.Path, "/lifecycle/suspend") {
				return false
			}
			oktaErr(w, 500, "E0000009", "injected failure")
			return true
		}
		err := c.Deprovision(context.Background(), uid, connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true})
		var tr *connectors.TransientError
		require.ErrorAs(t, err, &tr)
		assert.NotContains(t, err.Error(), "was suspended")
		assert.Equal(t, "ACTIVE", f.user(uid).Status)
		for _, r := range f.Requests() {
			assert.NotContains(t, r, "/groups", "nothing after a failed disable")
			assert.NotContains(t, r, "/sessions", "nothing after a failed disable")
		}
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestResetPasswordTwice: the activities reset again (never set a
// permanent password) when the worker holding a temporary password died;
// the second reset works and each sends only expire_password with
// tempPassword=true.
func TestResetPasswordTwice(t *testing.T) {
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	acct, err := c.CreateAccount(ctx, person("twice@acme.test"), connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	f.ResetRequests()

	first, err := c.ResetPassword(ctx, acct.ID)
	require.NoError(t, err)
	second, err := c.ResetPassword(ctx, acct.ID)
	require.NoError(t, err)

	reset := "POST /api/v1/users/" + acct.ID + "/lifecycle/expire_password?tempPassword=true"
	assert.Equal(t, []string{reset, reset}, f.Requests(), "no other request: no permanent password is set")
	assert.NotEqual(t, first.Reveal(), second.Reveal())
	u := f.user(acct.ID)
	assert.Equal(t, second.Reveal(), u.Password, "the second temporary password is the one that works")
	assert.Equal(t, "PASSWORD_EXPIRED", u.Status, "the user must change it at sign-in")
}

// TestLoginIsImmutable: Okta logins cannot change after creation; asking
// is a permanent OktaImmutable error and nothing is sent.
func TestLoginIsImmutable(t *testing.T) {
	tests := []struct {
		name   string
		change connectors.Diff
	}{
		{"login alone", connectors.Diff{"login": "new@acme.test"}},
		{"login with other attributes", connectors.Diff{"login": "new@acme.test", "title": "Lead", "email": ""}},
		{"login cleared", connectors.Diff{"login": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c, uid, _ := leaverSetup(t)
			err := c.UpdateAccount(context.Background(), uid, tt.change)
			require.Error(t, err)
			assert.Equal(t, okta.TypeImmutable, permanentType(t, err))
			assert.EqualError(t, err, "okta: login cannot be changed after creation")
			assert.Empty(t, f.Requests())
			assert.Equal(t, "leaver@acme.test", f.user(uid).Profile["login"])
		})
	}
}
