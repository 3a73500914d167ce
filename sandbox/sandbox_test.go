package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/secret"
)

func start(t *testing.T, dir string) *Sandbox {
	t.Helper()
	s, err := Start(Config{Dir: dir, SCIMAddr: "127.0.0.1:0", HRPortalAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// call sends a SCIM request and decodes the JSON answer.
func call(t *testing.T, s *Sandbox, method, path string, body any) (int, object) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.SCIMURL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out object
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, &out), string(b))
	}
	return resp.StatusCode, out
}

func user(name string, extra object) object {
	u := object{"schemas": []any{coreUserURN}, "userName": name}
	for k, v := range extra {
		u[k] = v
	}
	return u
}

// The sandbox is driven here through the real SCIM connector: it must be a
// target like any other, with the connector's ensure semantics holding.
func TestConnectorLifecycleAndRestart(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	s := start(t, dataDir)
	c, err := scim.New(ctx, scim.Config{BaseURL: s.SCIMURL, Auth: scim.Auth{BearerToken: s.Token()}})
	require.NoError(t, err)
	caps, err := c.Discover(ctx)
	require.NoError(t, err)
	assert.True(t, caps.Patch)
	assert.True(t, caps.Filter)
	assert.False(t, caps.Bulk)
	assert.True(t, caps.SchemasDiscovered)

	pw := secret.New("S3cret-Pass_word!")
	attrs := connectors.Attributes{
		"user_name": "ada.lovelace@example.com", "given_name": "Ada", "family_name": "Lovelace",
		"display_name": "Ada Lovelace", "email": "ada.lovelace@example.com", "title": "Engineer",
		"department": "Engineering", "employee_number": "E1", "phone_numbers.work": "+12125550199",
	}
	acct, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Activate: true, Password: &pw})
	require.NoError(t, err)
	assert.True(t, acct.Active)
	for k, v := range attrs {
		assert.Equal(t, v, acct.Attributes[k], k)
	}
	again, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Activate: true})
	require.NoError(t, err, "a second create adopts the existing account")
	assert.Equal(t, acct.ID, again.ID)

	found, err := c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "ADA.Lovelace@example.com"})
	require.NoError(t, err, "userName matches case-insensitively")
	assert.Equal(t, acct.ID, found.ID)
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "nobody@example.com"})
	assert.ErrorIs(t, err, connectors.ErrNotFound)

	ok, err := s.Directory.CheckPassword("ada.lovelace@example.com", pw.Reveal())
	require.NoError(t, err)
	assert.True(t, ok)
	ok, _ = s.Directory.CheckPassword("ada.lovelace@example.com", "wrong")
	assert.False(t, ok)

	eng, err := c.EnsureGroup(ctx, connectors.Group{Name: "dept-engineering"})
	require.NoError(t, err)
	eng2, err := c.EnsureGroup(ctx, connectors.Group{Name: "DEPT-engineering"})
	require.NoError(t, err)
	assert.Equal(t, eng.ID, eng2.ID, "EnsureGroup finds the group by name")
	all, err := c.EnsureGroup(ctx, connectors.Group{Name: "everyone"})
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, c.AddMember(ctx, eng.ID, acct.ID), "adding a present member succeeds")
		require.NoError(t, c.AddMember(ctx, all.ID, acct.ID))
	}
	groups, err := c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"dept-engineering", "everyone"}, names(groups))
	_, g := call(t, s, "GET", "/Groups/"+eng.ID, nil)
	assert.Len(t, g["members"], 1, "a member added twice is there once")

	require.NoError(t, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"department": "Sales", "title": "Account Executive", "phone_numbers.work": "+4915123456789"}))
	require.NoError(t, c.RemoveMember(ctx, eng.ID, acct.ID))
	require.NoError(t, c.RemoveMember(ctx, eng.ID, acct.ID), "removing an absent member succeeds")

	// Restart on the same data dir: everything is still there, password too.
	require.NoError(t, s.Close())
	s = start(t, dataDir)
	c, err = scim.New(ctx, scim.Config{BaseURL: s.SCIMURL, Auth: scim.Auth{BearerToken: s.Token()}})
	require.NoError(t, err)
	acct, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
	require.NoError(t, err)
	assert.Equal(t, "Sales", acct.Attributes["department"])
	assert.Equal(t, "Account Executive", acct.Attributes["title"])
	assert.Equal(t, "+4915123456789", acct.Attributes["phone_numbers.work"])
	groups, err = c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"everyone"}, names(groups))
	ok, err = s.Directory.CheckPassword("ada.lovelace@example.com", pw.Reveal())
	require.NoError(t, err)
	assert.True(t, ok, "the password hash survives a restart")

	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	acct, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
	require.NoError(t, err)
	assert.False(t, acct.Active)
	groups, err = c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	assert.Empty(t, groups)

	require.NoError(t, c.Delete(ctx, acct.ID))
	require.NoError(t, c.Delete(ctx, acct.ID), "deleting a missing account succeeds")
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "id", Value: acct.ID})
	assert.ErrorIs(t, err, connectors.ErrNotFound)

	raw, err := os.ReadFile(filepath.Join(dataDir, DirectoryFile))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), pw.Reveal(), "only a hash is stored")
	info, err := os.Stat(filepath.Join(dataDir, TokenFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func names(gs []connectors.Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

func TestSCIMProtocol(t *testing.T) {
	s := start(t, "")
	for i, n := range []string{"amy", "bob", "cara", "dan", "eve"} {
		dept := "Sales"
		if i%2 == 0 {
			dept = "Engineering"
		}
		code, _ := call(t, s, "POST", "/Users", user(n+"@example.com", object{
			"active": i != 4, "displayName": strings.ToUpper(n),
			enterpriseURN: object{"department": dept},
			"emails":      []any{object{"type": "work", "value": n + "@example.com", "primary": true}},
		}))
		require.Equal(t, http.StatusCreated, code)
	}
	list := func(q string) object {
		t.Helper()
		code, out := call(t, s, "GET", "/Users?"+q, nil)
		require.Equal(t, http.StatusOK, code, out)
		return out
	}
	userNames := func(o object) []string {
		var out []string
		for _, r := range o["Resources"].([]any) {
			out = append(out, r.(map[string]any)["userName"].(string))
		}
		return out
	}
	tests := []struct {
		name, query string
		want        []string
	}{
		{"eq is case-insensitive on userName", `filter=` + url.QueryEscape(`userName eq "BOB@example.com"`), []string{"bob@example.com"}},
		{"and with an extension path", `filter=` + url.QueryEscape(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering" and active eq true`), []string{"amy@example.com", "cara@example.com"}},
		{"emails.value", `filter=` + url.QueryEscape(`emails.value eq "dan@example.com"`), []string{"dan@example.com"}},
		{"or and not", `filter=` + url.QueryEscape(`userName sw "a" or not (active eq true)`), []string{"amy@example.com", "eve@example.com"}},
		{"paging", `startIndex=2&count=2`, []string{"bob@example.com", "cara@example.com"}},
		{"past the end", `startIndex=9`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, userNames(list(tt.query)))
		})
	}
	assert.EqualValues(t, 5, list("count=1")["totalResults"])
	assert.EqualValues(t, 2, list("startIndex=2&count=2")["startIndex"])

	bad := []struct {
		name, method, path string
		body               any
		status             int
		scimType           string
	}{
		{"duplicate userName", "POST", "/Users", user("AMY@example.com", nil), 409, "uniqueness"},
		{"no userName", "POST", "/Users", object{"schemas": []any{coreUserURN}}, 400, "invalidValue"},
		{"unknown attribute", "POST", "/Users", user("x@example.com", object{"favoriteColor": "red"}), 400, "invalidValue"},
		{"active not boolean", "POST", "/Users", user("x@example.com", object{"active": "False"}), 400, "invalidValue"},
		{"no schemas", "POST", "/Users", object{"userName": "x@example.com"}, 400, "invalidSyntax"},
		{"bad filter", "GET", "/Users?filter=" + url.QueryEscape(`userName eq`), nil, 400, "invalidFilter"},
		{"unknown user", "GET", "/Users/nope", nil, 404, ""},
		{"member that is no user", "POST", "/Groups", object{"schemas": []any{coreGroupURN}, "displayName": "g", "members": []any{object{"value": "nope"}}}, 400, "invalidValue"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			code, out := call(t, s, tt.method, tt.path, tt.body)
			assert.Equal(t, tt.status, code, out)
			assert.Equal(t, []any{errorURN}, out["schemas"])
			if tt.scimType != "" {
				assert.Equal(t, tt.scimType, out["scimType"])
			}
		})
	}

	req, _ := http.NewRequest("GET", s.SCIMURL+"/Users", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token, no data")
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	for _, p := range []string{"/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Schemas/" + enterpriseURN, "/ResourceTypes/User"} {
		code, out := call(t, s, "GET", p, nil)
		assert.Equal(t, http.StatusOK, code, p)
		assert.NotEmpty(t, out["schemas"], p)
	}

	// Group PATCH: add members twice, remove by filter, path-less replace.
	amy := userNames(list("count=1"))[0]
	_, found := call(t, s, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+amy+`"`), nil)
	amyID := found["Resources"].([]any)[0].(map[string]any)["id"].(string)
	code, g := call(t, s, "POST", "/Groups", object{"schemas": []any{coreGroupURN}, "displayName": "admins"})
	require.Equal(t, http.StatusCreated, code)
	gid := g["id"].(string)
	patch := func(ops ...object) (int, object) {
		return call(t, s, "PATCH", "/Groups/"+gid, object{"schemas": []any{patchOpURN}, "Operations": ops})
	}
	for range 2 {
		code, g = patch(object{"op": "add", "path": "members", "value": []any{object{"value": amyID}}})
		require.Equal(t, http.StatusOK, code, g)
	}
	assert.Len(t, g["members"], 1)
	code, g = patch(object{"op": "replace", "value": object{"displayName": "Admins"}},
		object{"op": "remove", "path": `members[value eq "` + amyID + `"]`})
	require.Equal(t, http.StatusOK, code, g)
	assert.Equal(t, "Admins", g["displayName"])
	assert.Nil(t, g["members"])
	code, _ = call(t, s, "GET", "/Groups?filter="+url.QueryEscape(`displayName eq "admins"`)+"&excludedAttributes=members", nil)
	assert.Equal(t, http.StatusOK, code)

	// User PATCH: filtered path, extension path, password never returned.
	ops := object{"schemas": []any{patchOpURN}, "Operations": []any{
		object{"op": "replace", "path": `emails[type eq "work"].value`, "value": "amy.new@example.com"},
		object{"op": "replace", "path": enterpriseURN + ":department", "value": "Legal"},
		object{"op": "replace", "path": "password", "value": "n3w-Password"},
		object{"op": "replace", "path": "active", "value": false},
	}}
	code, u := call(t, s, "PATCH", "/Users/"+amyID, ops)
	require.Equal(t, http.StatusOK, code, u)
	assert.Equal(t, "amy.new@example.com", u["emails"].([]any)[0].(map[string]any)["value"])
	assert.Equal(t, "Legal", u[enterpriseURN].(map[string]any)["department"])
	assert.Equal(t, false, u["active"])
	assert.NotContains(t, u, "password")
	ok, err := s.Directory.CheckPassword(amy, "n3w-Password")
	require.NoError(t, err)
	assert.True(t, ok)
	code, out := call(t, s, "PATCH", "/Users/"+amyID, object{"schemas": []any{patchOpURN}, "Operations": []any{
		object{"op": "replace", "path": "groups", "value": []any{}}}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "mutability", out["scimType"])
}

func TestHRPortal(t *testing.T) {
	dataDir := t.TempDir()
	var seen []secret.Secret
	s, err := Start(Config{Dir: dataDir, SCIMAddr: "127.0.0.1:0", HRPortalAddr: "127.0.0.1:0",
		Observe: func(pw secret.Secret) { seen = append(seen, pw) }})
	require.NoError(t, err)
	defer s.Close()
	const pw = "Gen3rated!Passw0rd#x"
	code, _ := call(t, s, "POST", "/Users", user("ada@example.com", object{"password": pw}))
	require.Equal(t, http.StatusCreated, code)

	post := func(hc *http.Client, body string) (*http.Response, error) {
		req, _ := http.NewRequest("POST", s.HRPortalURL+"/accounts", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.Token())
		return hc.Do(req)
	}
	_, err = post(&http.Client{Timeout: 5 * time.Second}, `{}`)
	require.Error(t, err, "the sink's certificate is trusted only by the dev stack's client")
	assert.Contains(t, err.Error(), "certificate")

	hc := s.Portal.TrustingClient(5 * time.Second)
	body := func(p string) string {
		return `{"employee_id":"E1","login":"ada@example.com","initial_password":` + strings.Trim(jsonString(p), "\n") + `}`
	}
	resp, err := post(hc, body(pw))
	require.NoError(t, err)
	var out map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "hr-E1", out["id"])

	resp, err = post(hc, body("not-the-password"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "a password the directory refuses fails the step")

	resp, err = post(hc, `{"employee_id":"E1","login":"ada@example.com"}`)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(b), "initial_password: required")

	h := s.Portal.Handoffs()
	require.Len(t, h, 1)
	assert.Equal(t, Handoff{EmployeeID: "E1", Login: "ada@example.com", PasswordLength: len("not-the-password"),
		PasswordAccepted: false, Deliveries: 2, ReceivedAt: h[0].ReceivedAt}, h[0])
	require.Len(t, seen, 2)
	assert.Equal(t, pw, seen[0].Reveal())

	req, _ := http.NewRequest("POST", s.HRPortalURL+"/notifications", strings.NewReader(`{"text":"Welcome Ada"}`))
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err = hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)

	for _, f := range []string{HRPortalFile, DirectoryFile} {
		raw, err := os.ReadFile(filepath.Join(dataDir, f))
		require.NoError(t, err)
		assert.NotContains(t, string(raw), pw, f)
		assert.NotContains(t, string(raw), "not-the-password", f)
	}
	require.NoError(t, s.Close())
	s2, err := Start(Config{Dir: dataDir, SCIMAddr: "127.0.0.1:0", HRPortalAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer s2.Close()
	assert.Len(t, s2.Portal.Handoffs(), 1, "records survive a restart")
	assert.Len(t, s2.Portal.Notifications(), 1)
	assert.Equal(t, s.Token(), s2.Token(), "the token file is reused")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
