package hostile_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/hostile"
)

// upstream is a stand-in SCIM server: users carry groups, PATCH answers
// 200 with the user, lists echo the count they were asked for.
func upstream(t *testing.T) *httptest.Server {
	user := map[string]any{"id": "u1", "userName": "a", "groups": []any{map[string]any{"value": "g1"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/Schemas"):
			_ = json.NewEncoder(w).Encode(map[string]any{"Resources": []any{map[string]any{
				"id":         "urn:ietf:params:scim:schemas:core:2.0:User",
				"attributes": []any{map[string]any{"name": "userName"}, map[string]any{"name": "groups"}},
			}}})
		case strings.HasSuffix(r.URL.Path, "/Users"):
			_ = json.NewEncoder(w).Encode(map[string]any{"totalResults": 1, "count": r.URL.Query().Get("count"), "Resources": []any{user}})
		case strings.Contains(r.URL.Path, "/Groups"):
			_ = json.NewEncoder(w).Encode(map[string]any{"totalResults": 0, "Resources": []any{}})
		default:
			_ = json.NewEncoder(w).Encode(user)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestSCIMSwitches(t *testing.T) {
	up := upstream(t)
	for _, tc := range []struct {
		name   string
		sw     hostile.SCIMSwitches
		method string
		path   string
		fault  string
		check  func(t *testing.T, status int, h http.Header, body string)
	}{
		{"reject members filter", hostile.SCIMSwitches{RejectMembersFilter: true}, "GET",
			`/scim/v2/Groups?filter=members.value+eq+%22u1%22`, hostile.FaultRejectMembersFilter,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Equal(t, http.StatusBadRequest, status)
				assert.Contains(t, body, `"scimType":"invalidFilter"`)
				assert.Contains(t, body, "urn:ietf:params:scim:api:messages:2.0:Error")
			}},
		{"no groups", hostile.SCIMSwitches{NoGroups: true}, "PATCH", "/scim/v2/Groups/g1", hostile.FaultNoGroups,
			func(t *testing.T, status int, h http.Header, body string) {
				assert.Equal(t, http.StatusNotFound, status)
				assert.Equal(t, "text/html", h.Get("Content-Type"))
				assert.Contains(t, body, "<title>404 Not Found</title>")
			}},
		{"no user groups attribute (one user)", hostile.SCIMSwitches{NoUserGroupsAttr: true}, "GET", "/scim/v2/Users/u1", hostile.FaultNoUserGroupsAttr,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Equal(t, http.StatusOK, status)
				assert.NotContains(t, body, "groups")
				assert.Contains(t, body, `"userName":"a"`)
			}},
		{"no user groups attribute (list)", hostile.SCIMSwitches{NoUserGroupsAttr: true}, "GET", "/scim/v2/Users", hostile.FaultNoUserGroupsAttr,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.NotContains(t, body, "groups")
				assert.Contains(t, body, `"userName":"a"`)
			}},
		{"no user groups attribute (schemas)", hostile.SCIMSwitches{NoUserGroupsAttr: true}, "GET", "/scim/v2/Schemas", hostile.FaultNoUserGroupsAttr,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.NotContains(t, body, "groups")
				assert.Contains(t, body, "userName")
			}},
		{"omit user groups (one user)", hostile.SCIMSwitches{OmitUserGroups: true}, "GET", "/scim/v2/Users/u1", hostile.FaultOmitUserGroups,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.NotContains(t, body, "groups")
			}},
		{"patch 204", hostile.SCIMSwitches{Patch204: true}, "PATCH", "/scim/v2/Users/u1", hostile.FaultPatch204,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Equal(t, http.StatusNoContent, status)
				assert.Empty(t, body)
			}},
		{"drop writes", hostile.SCIMSwitches{DropWrites: true}, "PATCH", "/scim/v2/Users/u1", hostile.FaultDropWrites,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Equal(t, http.StatusNoContent, status)
				assert.Empty(t, body)
			}},
		{"max count", hostile.SCIMSwitches{MaxCount: 100}, "GET", "/scim/v2/Users?count=500", hostile.FaultMaxCount,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Contains(t, body, `"count":"100"`)
			}},
		{"ignore excludedAttributes", hostile.SCIMSwitches{IgnoreExcludedAttributes: true}, "GET", "/scim/v2/Users?count=7&excludedAttributes=groups",
			hostile.FaultIgnoreExcluded,
			func(t *testing.T, status int, _ http.Header, body string) {
				assert.Contains(t, body, `"count":"7"`, "the rest of the query kept")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := hostile.StartSCIM(t, up.URL, tc.sw)
			status, h, body := call(t, tc.method, px.URL+tc.path)
			tc.check(t, status, h, body)
			assert.Equal(t, 1, px.Faults(tc.fault))
			assert.Equal(t, 1, px.Requests(""))

			// Switched off, the same request passes untouched.
			px.Set(hostile.SCIMSwitches{})
			px.Reset()
			status, _, _ = call(t, tc.method, px.URL+tc.path)
			assert.Equal(t, http.StatusOK, status)
			assert.Zero(t, px.Faults(tc.fault))
		})
	}
}

func TestRewriteKeepsThePath(t *testing.T) {
	up := upstream(t)
	px := hostile.StartSCIM(t, up.URL+"/ignored", hostile.SCIMSwitches{})
	assert.Equal(t, px.URL+"/scim/v2", px.Rewrite(up.URL+"/scim/v2"))
	assert.True(t, strings.HasPrefix(px.URL, "http://127.0.0.1:"))
}
