package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/sandbox"
)

func TestSandboxListings(t *testing.T) {
	dataDir := t.TempDir()
	sb, err := sandbox.Start(sandbox.Config{Dir: dataDir + "/sandbox", SCIMAddr: "127.0.0.1:0", HRPortalAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer sb.Close()
	t.Setenv("JML_SANDBOX_TOKEN", "")
	flags := []string{"--url", sb.SCIMURL, "--hr-portal", sb.HRPortalURL, "--data-dir", dataDir}

	code, out, errs := runCmd(t, append([]string{"sandbox", "users"}, flags...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "No accounts")

	u, err := sb.Directory.CreateUser(map[string]any{
		"schemas":  []any{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "ada@example.com", "displayName": "Ada Lovelace", "active": true, "password": "Secret-123",
		sandbox.EnterpriseURN: map[string]any{"department": "Engineering"},
	})
	require.NoError(t, err)
	_, err = sb.Directory.CreateGroup(map[string]any{"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "dept-engineering", "members": []any{map[string]any{"value": u["id"]}}})
	require.NoError(t, err)

	code, out, errs = runCmd(t, append([]string{"sandbox", "users"}, flags...)...)
	require.Equal(t, 0, code, errs)
	for _, want := range []string{"USER NAME", "ada@example.com", "Ada Lovelace", "yes", "Engineering", "dept-engineering", u["id"].(string)} {
		assert.Contains(t, out, want)
	}

	code, out, errs = runCmd(t, append([]string{"sandbox", "users", "--json"}, flags...)...)
	require.Equal(t, 0, code, errs)
	var users []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &users))
	require.Len(t, users, 1)
	assert.Equal(t, "ada@example.com", users[0]["userName"])
	assert.NotContains(t, out, "Secret-123")

	code, out, errs = runCmd(t, append([]string{"sandbox", "groups"}, flags...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "dept-engineering")
	assert.Contains(t, out, "Ada Lovelace")

	// The HR portal records, read over HTTPS with the data dir's certificate.
	req, _ := http.NewRequest("POST", sb.HRPortalURL+"/accounts",
		strings.NewReader(`{"employee_id":"E1","login":"ada@example.com","initial_password":"Secret-123"}`))
	req.Header.Set("Authorization", "Bearer "+sb.Token())
	resp, err := sb.Portal.TrustingClient(0).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	code, out, errs = runCmd(t, append([]string{"sandbox", "handoffs"}, flags...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "10 characters")
	assert.Contains(t, out, "E1")
	assert.NotContains(t, out, "Secret-123")

	bad := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no listing", []string{"sandbox"}, 2, "usage: starter sandbox"},
		{"unknown listing", append([]string{"sandbox", "accounts"}, flags...), 2, `unknown listing "accounts"`},
		{"no token file", []string{"sandbox", "users", "--data-dir", t.TempDir()}, 2, "no sandbox token"},
		{"nothing listening", []string{"sandbox", "users", "--data-dir", dataDir, "--url", "http://127.0.0.1:1/scim/v2"}, 1, "is `go run ./worker --dev` running?"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errs, tt.want)
		})
	}
	t.Setenv("JML_SANDBOX_TOKEN", "wrong")
	code, _, errs = runCmd(t, append([]string{"sandbox", "users"}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "refused the token")
}
