package okta_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/secret"
)

// newClient builds a connector for a loopback stand-in and captures its logs.
func newClient(t testing.TB, orgURL, token string, tune func(*okta.Config)) (*okta.Client, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	cfg := okta.Config{OrgURL: orgURL, Token: secret.New(token), AllowInsecure: true, Logger: zap.New(core),
		HTTPClient: &http.Client{Timeout: 5 * time.Second}}
	if tune != nil {
		tune(&cfg)
	}
	c, err := okta.New(context.Background(), cfg)
	require.NoError(t, err)
	return c, logs
}

func person(login string) connectors.Attributes {
	return connectors.Attributes{"login": login, "email": login, "first_name": "Ada", "last_name": "Lovelace",
		"department": "Engineering", "title": "Engineer", "employee_id": "E-" + strings.SplitN(login, "@", 2)[0],
		"cost_center": "CC-42", "nick_name": "ada", "favorite_color": "green"}
}

func permanentType(t *testing.T, err error) string {
	t.Helper()
	var p *connectors.PermanentError
	require.ErrorAs(t, err, &p)
	return p.Type
}

func TestNewRejectsBadConfig(t *testing.T) {
	tok := secret.New("t")
	tests := []struct {
		name string
		cfg  okta.Config
		want string
	}{
		{"missing org URL", okta.Config{Token: tok}, "org URL is required"},
		{"plain http", okta.Config{OrgURL: "http://acme.okta.com", Token: tok}, "must use https"},
		{"plain http to a remote host even for tests", okta.Config{OrgURL: "http://acme.okta.com", Token: tok, AllowInsecure: true}, "must use https"},
		{"plain http to loopback outside tests", okta.Config{OrgURL: "http://127.0.0.1:8080", Token: tok}, "must use https"},
		{"URL with a path", okta.Config{OrgURL: "https://acme.okta.com/api/v1", Token: tok}, "want https://<org>.okta.com"},
		{"missing token", okta.Config{OrgURL: "https://acme.okta.com"}, "API token is required"},
		{"unknown deprovision mode", okta.Config{OrgURL: "https://acme.okta.com", Token: tok, DeprovisionMode: "delete"}, `deprovision mode "delete"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := okta.New(context.Background(), tt.cfg)
			require.Error(t, err)
			assert.Equal(t, okta.TypeConfig, permanentType(t, err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	_, err := okta.New(context.Background(), okta.Config{OrgURL: "https://acme.okta.com/", Token: tok})
	require.NoError(t, err, "https org URL with a trailing slash is fine")

	t.Setenv("JML_TEST_OKTA_TOKEN", "")
	_, err = okta.TokenFromEnv("JML_TEST_OKTA_TOKEN")
	require.Error(t, err)
	assert.Equal(t, okta.TypeConfig, permanentType(t, err))
	assert.Contains(t, err.Error(), "JML_TEST_OKTA_TOKEN")
	t.Setenv("JML_TEST_OKTA_TOKEN", "abc")
	tokv, err := okta.TokenFromEnv("JML_TEST_OKTA_TOKEN")
	require.NoError(t, err)
	assert.Equal(t, "abc", tokv.Reveal())
}

func TestBadInputSendsNothing(t *testing.T) {
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	for _, missing := range []string{"login", "email", "first_name", "last_name"} {
		t.Run("create without "+missing, func(t *testing.T) {
			a := person("ada@acme.test")
			delete(a, missing)
			_, err := c.CreateAccount(ctx, a, connectors.CreateOptions{Activate: true})
			require.Error(t, err)
			assert.Equal(t, okta.TypeValidation, permanentType(t, err))
			assert.Contains(t, err.Error(), "required attribute "+missing)
		})
	}
	err := c.UpdateAccount(ctx, "00u1", connectors.Diff{"login": "new@acme.test"})
	assert.Equal(t, okta.TypeImmutable, permanentType(t, err))
	assert.Contains(t, err.Error(), "login cannot be changed")
	err = c.UpdateAccount(ctx, "00u1", connectors.Diff{"email": ""})
	assert.Equal(t, okta.TypeValidation, permanentType(t, err))
	assert.Contains(t, err.Error(), "email cannot be cleared")
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "login"})
	assert.Equal(t, okta.TypeValidation, permanentType(t, err))
	err = c.Deprovision(ctx, "00u1", connectors.DeprovisionOptions{Mode: "erase"})
	assert.Equal(t, okta.TypeValidation, permanentType(t, err))
	_, _, err = c.Changes(ctx, "yesterday")
	assert.Equal(t, okta.TypeValidation, permanentType(t, err))
	assert.Empty(t, f.Requests(), "bad input must not reach Okta")
}

// TestJoinerRequestBudget: once group IDs are cached a joiner costs one
// GET by ID per group (the cached ID confirmed), a lookup and one create
// that carries groupIds, password and activation.
func TestJoinerRequestBudget(t *testing.T) {
	f := newFakeOkta(t)
	c, logs := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	var gids []string
	for _, name := range []string{"engineering", "vpn-users"} {
		g, err := c.EnsureGroup(ctx, connectors.Group{Name: name, Description: name + " staff"})
		require.NoError(t, err)
		gids = append(gids, g.ID)
	}
	f.ResetRequests()
	for _, name := range []string{"engineering", "vpn-users"} { // cached: confirmed by ID, no search
		_, err := c.FindGroup(ctx, name)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"GET /api/v1/groups/" + gids[0], "GET /api/v1/groups/" + gids[1]}, f.Requests())
	f.ResetRequests()

	pw := secret.New("Initial-Pa55word!")
	_, err := c.FindAccount(ctx, connectors.Key{Attribute: "login", Value: "ada@acme.test"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	acct, err := c.CreateAccount(ctx, person("ada@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: gids, Password: &pw})
	require.NoError(t, err)

	assert.Equal(t, []string{"GET /api/v1/users/ada@acme.test", "POST /api/v1/users?activate=true"}, f.Requests())
	assert.Equal(t, "ACTIVE", acct.Status)
	assert.True(t, acct.Active)
	u := f.user(acct.ID)
	assert.Equal(t, "Initial-Pa55word!", u.Password)
	assert.Equal(t, "E-ada", u.Profile["employeeNumber"])
	assert.Equal(t, "CC-42", u.Profile["costCenter"])
	assert.Equal(t, "ada", u.Profile["nickName"])
	assert.Equal(t, "green", u.Profile["favorite_color"], "custom attributes pass through by name")
	assert.ElementsMatch(t, append([]string{"00gEveryone"}, gids...), f.groupsOf(acct.ID))
	assert.Equal(t, "E-ada", acct.Attributes["employee_id"], "attributes read back normalized")
	assert.NotContains(t, logText(logs), "Pa55word")
}

// TestFindGroupConfirmsCachedID: a group renamed or deleted at Okta after
// its name was cached is noticed at the next lookup: the name resolves to
// the group that has it now, or to nothing (and EnsureGroup creates it),
// never to the renamed group.
func TestFindGroupConfirmsCachedID(t *testing.T) {
	cases := []struct {
		name   string
		change func(f *fakeOkta, id string) // at Okta, after the name was cached
		reused bool                         // another group has the name now
	}{
		{name: "renamed", change: func(f *fakeOkta, id string) { f.groups[id].Name = "Finance Department" }},
		{name: "deleted", change: func(f *fakeOkta, id string) { delete(f.groups, id); delete(f.members, id) }},
		{name: "renamed, name reused", reused: true, change: func(f *fakeOkta, id string) {
			f.groups[id].Name = "Finance Department"
			f.groups["00gNew"] = &fakeGroup{ID: "00gNew", Type: "OKTA_GROUP", Name: "dept-finance"}
			f.members["00gNew"] = map[string]bool{}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOkta(t)
			c, _ := newClient(t, f.URL, f.Token, nil)
			ctx := context.Background()
			old, err := c.EnsureGroup(ctx, connectors.Group{Name: "dept-finance"})
			require.NoError(t, err)
			f.mu.Lock()
			tc.change(f, old.ID)
			f.mu.Unlock()

			g, err := c.FindGroup(ctx, "dept-finance")
			if tc.reused {
				require.NoError(t, err)
				assert.Equal(t, "00gNew", g.ID)
				return
			}
			require.ErrorIs(t, err, connectors.ErrNotFound, "the cached ID no longer has the name")
			g, err = c.EnsureGroup(ctx, connectors.Group{Name: "dept-finance"})
			require.NoError(t, err)
			assert.NotEqual(t, old.ID, g.ID, "created again")
			assert.Equal(t, "dept-finance", g.Name)
		})
	}
}

func TestCreateAdoptsExistingLogin(t *testing.T) {
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	first, err := c.CreateAccount(ctx, person("grace@acme.test"), connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "navy"})
	require.NoError(t, err)

	again, err := c.CreateAccount(ctx, person("grace@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}})
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Contains(t, f.groupsOf(first.ID), g.ID, "an adopted account gets the joiner's groups")
	accts, next, err := c.ListAccounts(ctx, "", 50)
	require.NoError(t, err)
	assert.Len(t, accts, 1, "no duplicate")
	assert.Empty(t, next)
}

func TestResetPasswordNeverLeaks(t *testing.T) {
	f := newFakeOkta(t)
	c, logs := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	acct, err := c.CreateAccount(ctx, person("alan@acme.test"), connectors.CreateOptions{Activate: true})
	require.NoError(t, err)

	tmp, err := c.ResetPassword(ctx, acct.ID)
	require.NoError(t, err)
	require.Len(t, f.temps, 1)
	assert.Equal(t, f.temps[0], tmp.Reveal())
	assert.Equal(t, "PASSWORD_EXPIRED", f.user(acct.ID).Status)
	assert.Contains(t, f.Requests(), "POST /api/v1/users/"+acct.ID+"/lifecycle/expire_password?tempPassword=true")

	// A second reset on a deactivated user fails; its error must not carry the old password.
	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{Mode: okta.ModeDeactivate}))
	_, err = c.ResetPassword(ctx, acct.ID)
	require.Error(t, err)
	assert.Equal(t, okta.TypeValidation, permanentType(t, err))
	assert.NotContains(t, err.Error(), tmp.Reveal())

	assert.NotContains(t, logText(logs), tmp.Reveal())
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", tmp, tmp, tmp), tmp.Reveal(), "the secret never prints")
}

// logText renders every captured log entry with its fields.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %v\n", e.Message, e.ContextMap())
	}
	return b.String()
}

// TestResetPasswordAmbiguous: after the request may have reached Okta, no
// clear answer means an operator decides; it is never resent.
func TestResetPasswordAmbiguous(t *testing.T) {
	tests := []struct {
		name      string
		after     bool // fail after Okta changed state
		respond   func(w http.ResponseWriter)
		wantType  string
		wantClass error
	}{
		{"503 after the change", true, func(w http.ResponseWriter) {
			oktaErr(w, 503, "E0000009", "Internal Server Error")
		}, okta.TypeAmbiguousReset, nil},
		{"connection dropped after the change", true, func(w http.ResponseWriter) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, okta.TypeAmbiguousReset, nil},
		{"timeout after the change", true, func(w http.ResponseWriter) {
			time.Sleep(1500 * time.Millisecond)
		}, okta.TypeAmbiguousReset, nil},
		{"garbled 200", true, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"tempPass`))
		}, okta.TypeAmbiguousReset, nil},
		{"429 before anything happened", false, func(w http.ResponseWriter) {
			w.Header().Set("X-Rate-Limit-Reset", "0")
			oktaErr(w, 429, "E0000047", "API call exceeded rate limit due to too many requests.")
		}, "", &connectors.RateLimitedError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOkta(t)
			c, _ := newClient(t, f.URL, f.Token, func(cfg *okta.Config) { cfg.HTTPClient = &http.Client{Timeout: time.Second} })
			ctx := context.Background()
			acct, err := c.CreateAccount(ctx, person("kay@acme.test"), connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			f.ResetRequests()
			f.intercept = func(w http.ResponseWriter, r *http.Request, after bool) bool {
				if !strings.Contains(r.URL.Path, "expire_password") || after != tt.after {
					return false
				}
				tt.respond(w)
				return true
			}
			_, err = c.ResetPassword(ctx, acct.ID)
			require.Error(t, err)
			if tt.wantType != "" {
				assert.Equal(t, tt.wantType, permanentType(t, err))
				assert.Contains(t, err.Error(), "outcome unknown")
			} else {
				var rl *connectors.RateLimitedError
				require.ErrorAs(t, err, &rl)
				assert.False(t, connectors.IsPermanent(err))
			}
			assert.Len(t, f.Requests(), 1, "a reset is sent once")
			for _, tp := range f.temps {
				assert.NotContains(t, err.Error(), tp)
			}
		})
	}
	t.Run("missing user", func(t *testing.T) {
		f := newFakeOkta(t)
		c, _ := newClient(t, f.URL, f.Token, nil)
		_, err := c.ResetPassword(context.Background(), "00unknown")
		require.ErrorIs(t, err, connectors.ErrNotFound)
	})
}

func TestRateLimit(t *testing.T) {
	t.Run("429 is retryable after the reset", func(t *testing.T) {
		f := newFakeOkta(t)
		f.remaining["users/{id}"] = 0
		f.reset = time.Now().Add(30 * time.Second)
		c, logs := newClient(t, f.URL, f.Token, nil)
		_, err := c.FindAccount(context.Background(), connectors.Key{Value: "x@acme.test"})
		var rl *connectors.RateLimitedError
		require.ErrorAs(t, err, &rl)
		assert.False(t, connectors.IsPermanent(err))
		assert.Greater(t, rl.RetryAfter, 25*time.Second)
		assert.LessOrEqual(t, rl.RetryAfter, 32*time.Second)
		assert.Len(t, f.Requests(), 1, "the SDK's own 429 retry is off")

		// The next call to that endpoint is deferred without a request.
		_, err = c.FindAccount(context.Background(), connectors.Key{Value: "y@acme.test"})
		require.ErrorAs(t, err, &rl)
		assert.Len(t, f.Requests(), 1)
		assert.NotEmpty(t, logs.FilterMessageSnippet("deferring").All())

		// Other endpoints are not held back.
		_, err = c.EnsureGroup(context.Background(), connectors.Group{Name: "ops"})
		require.NoError(t, err)
	})
	t.Run("paces when Remaining is low", func(t *testing.T) {
		f := newFakeOkta(t)
		f.limit = 100
		f.remaining["users/{id}"] = 6 // at or under 10%: spread what is left
		f.reset = time.Now().Add(2 * time.Second)
		c, logs := newClient(t, f.URL, f.Token, nil)
		for i := range 3 {
			_, err := c.FindAccount(context.Background(), connectors.Key{Value: "p" + string(rune('a'+i)) + "@acme.test"})
			require.ErrorIs(t, err, connectors.ErrNotFound)
		}
		assert.Len(t, f.Requests(), 3)
		assert.NotEmpty(t, logs.FilterMessage("okta: pacing").All(), "later calls waited for a slot")
	})
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name    string
		respond func(w http.ResponseWriter)
		check   func(t *testing.T, err error)
	}{
		{"E0000001 with causes", func(w http.ResponseWriter) {
			oktaErr(w, 400, "E0000001", "Api validation failed: email", "email: Does not match required pattern")
		}, func(t *testing.T, err error) {
			assert.Equal(t, okta.TypeValidation, permanentType(t, err))
			assert.Contains(t, err.Error(), "email: Does not match required pattern")
		}},
		{"E0000001 already exists", func(w http.ResponseWriter) {
			oktaErr(w, 400, "E0000001", "Api validation failed: email", "email: An object with this field already exists in the current organization")
		}, func(t *testing.T, err error) {
			assert.Equal(t, okta.TypeConflict, permanentType(t, err))
			assert.ErrorIs(t, err, connectors.ErrConflict)
		}},
		{"401", func(w http.ResponseWriter) { oktaErr(w, 401, "E0000011", "Invalid token provided") }, func(t *testing.T, err error) {
			assert.Equal(t, okta.TypeAuth, permanentType(t, err))
		}},
		{"403", func(w http.ResponseWriter) {
			oktaErr(w, 403, "E0000006", "You do not have permission to perform the requested action")
		}, func(t *testing.T, err error) {
			assert.Equal(t, okta.TypeAuth, permanentType(t, err))
		}},
		{"E0000007", func(w http.ResponseWriter) { oktaErr(w, 404, "E0000007", "Not found: Resource not found: 00u1 (User)") }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, connectors.ErrNotFound)
		}},
		{"500", func(w http.ResponseWriter) { oktaErr(w, 500, "E0000009", "Internal Server Error") }, func(t *testing.T, err error) {
			var tr *connectors.TransientError
			assert.ErrorAs(t, err, &tr)
		}},
		{"E0000038 wrong status", func(w http.ResponseWriter) {
			oktaErr(w, 403, "E0000038", "This operation is not allowed in the user's current status.")
		}, func(t *testing.T, err error) {
			assert.True(t, connectors.IsPermanent(err))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOkta(t)
			c, _ := newClient(t, f.URL, f.Token, nil)
			acct, err := c.CreateAccount(context.Background(), person("ed@acme.test"), connectors.CreateOptions{Activate: true})
			require.NoError(t, err)
			f.intercept = func(w http.ResponseWriter, r *http.Request, after bool) bool {
				if after || r.Method != "POST" {
					return false
				}
				tt.respond(w)
				return true
			}
			err = c.UpdateAccount(context.Background(), acct.ID, connectors.Diff{"email": "bad"})
			require.Error(t, err)
			tt.check(t, err)
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		f := newFakeOkta(t)
		c, _ := newClient(t, f.URL, "not-the-token", nil)
		_, err := c.FindAccount(context.Background(), connectors.Key{Value: "x@acme.test"})
		assert.Equal(t, okta.TypeAuth, permanentType(t, err))
	})
	t.Run("server down", func(t *testing.T) {
		c, _ := newClient(t, "http://127.0.0.1:1", "t", nil)
		_, err := c.FindAccount(context.Background(), connectors.Key{Value: "x@acme.test"})
		var tr *connectors.TransientError
		assert.ErrorAs(t, err, &tr)
		_, err = c.ResetPassword(context.Background(), "00u1")
		assert.ErrorAs(t, err, &tr, "a reset that never left is safe to retry")
	})
}

func TestDeprovision(t *testing.T) {
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "finance"})
	require.NoError(t, err)
	pw := secret.New("Joan-Pa55word!")
	acct, err := c.CreateAccount(ctx, person("joan@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}, Password: &pw})
	require.NoError(t, err)

	all := connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true}
	require.NoError(t, c.Deprovision(ctx, acct.ID, all))
	u := f.user(acct.ID)
	assert.Equal(t, "SUSPENDED", u.Status, "suspend is the default mode")
	assert.Equal(t, "oauthTokens=true", f.sessions[acct.ID], "sessions and OAuth tokens cleared")
	assert.Equal(t, []string{"00gEveryone"}, f.groupsOf(acct.ID), "built-in Everyone stays")
	assert.Equal(t, "Engineering", u.Profile["department"], "profile preserved")

	require.NoError(t, c.Deprovision(ctx, acct.ID, all), "idempotent")
	require.NoError(t, c.Reactivate(ctx, acct.ID))
	assert.Equal(t, "ACTIVE", f.user(acct.ID).Status)

	staged, err := c.CreateAccount(ctx, person("pre@acme.test"), connectors.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, "STAGED", staged.Status)
	require.NoError(t, c.Deprovision(ctx, staged.ID, connectors.DeprovisionOptions{Mode: okta.ModeSuspend}))
	assert.Equal(t, "DEPROVISIONED", f.user(staged.ID).Status, "a user Okta cannot suspend is deactivated")

	require.NoError(t, c.Deprovision(ctx, "00umissing", all), "a missing user is done")
	require.NoError(t, c.Delete(ctx, acct.ID))
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	require.NoError(t, c.Delete(ctx, acct.ID), "already deleted is done")
}

func TestPagingAndChanges(t *testing.T) {
	f := newFakeOkta(t)
	f.pageMax = 2
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx := context.Background()
	var ids []string
	for _, l := range []string{"a", "b", "c", "d", "e"} {
		a, err := c.CreateAccount(ctx, person(l+"@acme.test"), connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		ids = append(ids, a.ID)
	}

	var got []string
	cursor, pages := "", 0
	for {
		accts, next, err := c.ListAccounts(ctx, cursor, 2)
		require.NoError(t, err)
		pages++
		for _, a := range accts {
			got = append(got, a.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Equal(t, ids, got)
	assert.Equal(t, 3, pages)
	_, _, err := c.ListAccounts(ctx, "/api/v1/groups?after=x", 2)
	assert.True(t, connectors.IsPermanent(err), "a cursor is only ever a users link")

	changes, since, err := c.Changes(ctx, "")
	require.NoError(t, err)
	require.Len(t, changes, 5)
	assert.Equal(t, "E-a", changes[0].EmployeeID)
	assert.True(t, changes[0].Active)

	none, same, err := c.Changes(ctx, since)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, since, same)

	require.NoError(t, c.UpdateAccount(ctx, ids[1], connectors.Diff{"title": "Director", "nick_name": "", "favorite_color": ""}))
	require.NoError(t, c.Deprovision(ctx, ids[3], connectors.DeprovisionOptions{Mode: okta.ModeDeactivate}))
	changes, since2, err := c.Changes(ctx, since)
	require.NoError(t, err)
	require.Len(t, changes, 2)
	assert.Equal(t, "E-b", changes[0].EmployeeID)
	assert.Equal(t, "Director", changes[0].Attributes["title"])
	assert.NotContains(t, changes[0].Attributes, "nick_name", "an empty diff value clears the attribute")
	assert.NotContains(t, changes[0].Attributes, "favorite_color", "custom attributes clear too")
	assert.Equal(t, "E-d", changes[1].EmployeeID, "deactivated users are reported too")
	assert.False(t, changes[1].Active)
	// Cursors are RFC 3339 times with trailing zeros trimmed: compare them
	// as times (as strings, "…30.53Z" sorts after "…30.532Z").
	t1, err := time.Parse(time.RFC3339Nano, since)
	require.NoError(t, err)
	t2, err := time.Parse(time.RFC3339Nano, since2)
	require.NoError(t, err)
	assert.True(t, t2.After(t1), "the cursor moves forward: %s → %s", since, since2)
	assert.True(t, slicesContainFilter(f.Requests(), "lastUpdated+gt"), "the cursor becomes a lastUpdated gt filter")

	byEmp, err := c.FindAccount(ctx, connectors.Key{Attribute: "employee_id", Value: "E-c"})
	require.NoError(t, err)
	assert.Equal(t, ids[2], byEmp.ID)
}

func slicesContainFilter(reqs []string, sub string) bool {
	for _, r := range reqs {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

func TestContextCancelled(t *testing.T) {
	f := newFakeOkta(t)
	c, _ := newClient(t, f.URL, f.Token, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.FindAccount(ctx, connectors.Key{Value: "x@acme.test"})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))
}

// BenchmarkJoiner measures lookup + create with cached group IDs against the
// faithful loopback server.
func BenchmarkJoiner(b *testing.B) {
	f := newFakeOkta(b)
	f.limit = 1 << 30
	c, _ := newClient(b, f.URL, f.Token, nil)
	ctx := context.Background()
	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "bench"})
	require.NoError(b, err)
	b.ResetTimer()
	for i := range b.N {
		login := fmt.Sprintf("u%d@acme.test", i)
		if _, err := c.FindAccount(ctx, connectors.Key{Value: login}); !errors.Is(err, connectors.ErrNotFound) {
			b.Fatal(err)
		}
		if _, err := c.CreateAccount(ctx, person(login), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}}); err != nil {
			b.Fatal(err)
		}
	}
}
