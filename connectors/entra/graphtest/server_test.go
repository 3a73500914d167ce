package graphtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/entra/graphtest"
)

// The wire format, checked with a plain HTTP client: status codes, OData
// error bodies, $filter literals and $batch, as Graph documents them.
func TestWireFormat(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{})
	o := srv.Options()

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {o.ClientID},
		"client_secret": {o.ClientSecret}, "scope": {srv.URL + "/.default"}}
	resp, err := http.PostForm(srv.AuthorityURL()+"/"+o.Tenant+"/oauth2/v2.0/token", form)
	require.NoError(t, err)
	var tok struct {
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.Equal(t, 3599, tok.ExpiresIn)

	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.GraphURL()+path, strings.NewReader(body))
		require.NoError(t, err)
		if tok.AccessToken != "" {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if len(b) > 0 {
			require.NoError(t, json.Unmarshal(b, &out), string(b))
		}
		return resp.StatusCode, out
	}
	code := func(m map[string]any) string { return m["error"].(map[string]any)["code"].(string) }
	message := func(m map[string]any) string { return m["error"].(map[string]any)["message"].(string) }

	status, u := call("POST", "/users", `{"accountEnabled":true,"displayName":"Pat O'Neil","mailNickname":"pat",
		"userPrincipalName":"pat.o'neil@contoso.com","passwordProfile":{"forceChangePasswordNextSignIn":true,"password":"Xy7!pass-word"}}`)
	require.Equal(t, 201, status, u)
	id := u["id"].(string)
	assert.NotContains(t, u, "passwordProfile")

	status, list := call("GET", "/users?$filter="+url.QueryEscape("userPrincipalName eq 'pat.o''neil@contoso.com'")+"&$select=id,employeeId", "")
	require.Equal(t, 200, status)
	require.Len(t, list["value"], 1)
	assert.Contains(t, list["value"].([]any)[0], "employeeId", "selected properties come back, null when unset")

	status, e := call("GET", "/users?$filter="+url.QueryEscape("userPrincipalName eq 'pat.o'neil@contoso.com'"), "")
	assert.Equal(t, 400, status, "an unescaped quote is a syntax error")
	assert.Equal(t, "BadRequest", code(e))

	status, _ = call("PATCH", "/users/"+id, `{"department":"Sales"}`)
	assert.Equal(t, 204, status)
	status, e = call("PATCH", "/users/"+id, `{"employeeHireDate":"2026-12-01"}`)
	assert.Equal(t, 400, status, "DateTimeOffset needs a time")
	assert.Contains(t, message(e), "employeeHireDate")

	g := srv.AddGroup(graphtest.GroupSpec{Name: "everyone"})
	ref := `{"@odata.id":"` + srv.GraphURL() + `/directoryObjects/` + id + `"}`
	status, _ = call("POST", "/groups/"+g+"/members/$ref", ref)
	assert.Equal(t, 204, status)
	status, e = call("POST", "/groups/"+g+"/members/$ref", ref)
	assert.Equal(t, 400, status)
	assert.Equal(t, "Request_BadRequest", code(e))
	assert.Equal(t, "One or more added object references already exist for the following modified properties: 'members'.", message(e))
	assert.NotEmpty(t, e["error"].(map[string]any)["innerError"].(map[string]any)["request-id"])
	status, _ = call("DELETE", "/groups/"+g+"/members/"+id+"/$ref", "")
	assert.Equal(t, 204, status)
	status, e = call("DELETE", "/groups/"+g+"/members/"+id+"/$ref", "")
	assert.Equal(t, 404, status)
	assert.Equal(t, "Request_ResourceNotFound", code(e))

	status, r := call("POST", "/users/"+id+"/revokeSignInSessions", "")
	assert.Equal(t, 200, status)
	assert.Equal(t, true, r["value"])

	status, b := call("POST", "/$batch", `{"requests":[
		{"id":"1","method":"PATCH","url":"/users/`+id+`","body":{"jobTitle":"Lead"},"headers":{"Content-Type":"application/json"}},
		{"id":"2","method":"PATCH","url":"/users/`+id+`","body":{"jobTitle":"Lead"}},
		{"id":"3","method":"GET","url":"/users/nobody@contoso.com"}]}`)
	require.Equal(t, 200, status)
	byID := map[string]float64{}
	for _, x := range b["responses"].([]any) {
		m := x.(map[string]any)
		byID[m["id"].(string)] = m["status"].(float64)
	}
	assert.Equal(t, map[string]float64{"1": 204, "2": 400, "3": 404}, byID, "a body needs a Content-Type header")

	srv.FailNext(graphtest.Fault{Path: "/v1.0/users", Status: 429, RetryAfter: "5"})
	req, _ := http.NewRequest("GET", srv.GraphURL()+"/users", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))

	tok.AccessToken = ""
	status, e = call("GET", "/users", "")
	assert.Equal(t, 401, status)
	assert.Equal(t, "InvalidAuthenticationToken", code(e))
}

// client fetches a token and returns a caller of the Graph API.
func client(t *testing.T, srv *graphtest.Server) func(method, path, body string) (int, map[string]any) {
	t.Helper()
	o := srv.Options()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {o.ClientID},
		"client_secret": {o.ClientSecret}, "scope": {srv.URL + "/.default"}}
	resp, err := http.PostForm(srv.AuthorityURL()+"/"+o.Tenant+"/oauth2/v2.0/token", form)
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	return func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.GraphURL()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(path, "/groups(") {
			req.Header.Set("Prefer", "create-if-missing")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if len(b) > 0 {
			require.NoError(t, json.Unmarshal(b, &out), string(b))
		}
		return resp.StatusCode, out
	}
}

const newUser = `{"accountEnabled":true,"displayName":"Pat","mailNickname":"pat","userPrincipalName":"pat@contoso.com",
	"passwordProfile":{"password":"Xy7!pass-word"}}`

// The refusals Graph documents, each in the stand-in (issue 33).
func TestDocumentedRefusals(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{Roles: []string{graphtest.RoleUserReadWrite}})
	call := client(t, srv)
	status, u := call("POST", "/users", newUser)
	require.Equal(t, 201, status, u)
	id := u["id"].(string)

	status, e := call("PATCH", "/users/"+id, `{"businessPhones":["+1 425 555 0100","+1 425 555 0101"]}`)
	assert.Equal(t, 400, status, "one business phone")
	assert.Contains(t, e["error"].(map[string]any)["message"], "businessPhones")
	status, _ = call("PATCH", "/users/"+id, `{"businessPhones":["+1 425 555 0100"]}`)
	assert.Equal(t, 204, status)

	status, _ = call("PATCH", "/users/"+id, `{"passwordProfile":{"password":"Grüße-aus-Köln-1"}}`)
	assert.Equal(t, 400, status, "ASCII only")
	status, _ = call("PATCH", "/users/"+id, `{"passwordProfile":{"password":"alllowercase"}}`)
	assert.Equal(t, 400, status, "three of four classes")

	status, e = call("PATCH", "/users/"+id, `{"employeeHireDate":"2026-12-01T00:00:00Z"}`)
	assert.Equal(t, 403, status, "no User-LifeCycleInfo.ReadWrite.All")
	assert.Equal(t, "Authorization_RequestDenied", e["error"].(map[string]any)["code"])
	status, _ = call("POST", "/groups", `{"displayName":"g","mailNickname":"g","mailEnabled":false,"securityEnabled":true}`)
	assert.Equal(t, 403, status, "no Group.ReadWrite.All")

	status, _ = call("GET", "/users?$top=1000", "")
	assert.Equal(t, 400, status, "at most 999 a page")
	status, _ = call("GET", "/users?$top=999", "")
	assert.Equal(t, 200, status)
}

// A created object stays invisible to reads for ReplicationLag; writes
// that check uniqueness see it at once.
func TestReplicationLag(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{ReplicationLag: time.Hour})
	call := client(t, srv)
	status, u := call("POST", "/users", newUser)
	require.Equal(t, 201, status)
	id := u["id"].(string)
	status, _ = call("GET", "/users/"+id, "")
	assert.Equal(t, 404, status)
	status, list := call("GET", "/users?$filter="+url.QueryEscape("userPrincipalName eq 'pat@contoso.com'"), "")
	assert.Equal(t, 200, status)
	assert.Empty(t, list["value"])
	status, e := call("POST", "/users", newUser)
	assert.Equal(t, 400, status, "the UPN is taken, whatever reads show")
	assert.Contains(t, e["error"].(map[string]any)["message"], "userPrincipalName")

	// A group upsert by uniqueName creates once.
	body := `{"displayName":"Apollo","mailNickname":"apollo","mailEnabled":false,"securityEnabled":true}`
	status, g := call("PATCH", "/groups(uniqueName='jml-apollo')", body)
	require.Equal(t, 201, status, g)
	status, _ = call("PATCH", "/groups(uniqueName='jml-apollo')", body)
	assert.Equal(t, 204, status, "exists: an update")
	assert.Len(t, srv.GroupByName("Apollo"), 1)
	status, _ = call("GET", "/groups(uniqueName='jml-apollo')", "")
	assert.Equal(t, 404, status, "still replicating")
}

// $batch: dependsOn runs in order and a failed dependency fails its
// dependants with 424; a dependsOn on a later request refuses the batch.
func TestBatchDependsOn(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{})
	call := client(t, srv)
	status, b := call("POST", "/$batch", `{"requests":[
		{"id":"1","method":"GET","url":"/users/nobody@contoso.com"},
		{"id":"2","method":"PATCH","url":"/users/nobody@contoso.com","dependsOn":["1"],"body":{"jobTitle":"x"},"headers":{"Content-Type":"application/json"}},
		{"id":"3","method":"GET","url":"/users?$top=1","dependsOn":["2"]}]}`)
	require.Equal(t, 200, status)
	byID := map[string]float64{}
	for _, x := range b["responses"].([]any) {
		m := x.(map[string]any)
		byID[m["id"].(string)] = m["status"].(float64)
	}
	assert.Equal(t, map[string]float64{"1": 404, "2": 424, "3": 424}, byID)

	status, _ = call("POST", "/$batch", `{"requests":[
		{"id":"1","method":"GET","url":"/users","dependsOn":["2"]},
		{"id":"2","method":"GET","url":"/users"}]}`)
	assert.Equal(t, 400, status)
}

// /users/delta: the first round lists everyone and ends in a deltaLink;
// the deltaLink then returns only what changed.
func TestUsersDelta(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{})
	call := client(t, srv)
	a := srv.AddUser(map[string]any{"userPrincipalName": "a@contoso.com"})
	srv.AddUser(map[string]any{"userPrincipalName": "b@contoso.com"})
	status, d := call("GET", "/users/delta?$select=userPrincipalName,department", "")
	require.Equal(t, 200, status)
	assert.Len(t, d["value"], 2)
	link := d["@odata.deltaLink"].(string)
	require.NotEmpty(t, link)

	srv.UpdateUser(a, map[string]any{"department": "Sales"})
	status, d = call("GET", strings.TrimPrefix(link, srv.GraphURL()), "")
	require.Equal(t, 200, status)
	require.Len(t, d["value"], 1)
	assert.Equal(t, a, d["value"].([]any)[0].(map[string]any)["id"])
}
