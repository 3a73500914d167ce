package scimtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/scim/scimtest"
)

func TestPeerCountsRequests(t *testing.T) {
	p := scimtest.Start(t)
	do := func(method, path, token string) int {
		req, err := http.NewRequest(method, p.BaseURL+path, strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, do("GET", "/Users", "wrong"))
	assert.Equal(t, http.StatusCreated, do("POST", "/Users", p.Token))
	assert.Equal(t, http.StatusConflict, do("POST", "/Users", p.Token))
	assert.Equal(t, http.StatusOK, do("GET", "/Users", p.Token))
	assert.Equal(t, 4, p.Requests())
	assert.Equal(t, map[string]int{"POST": 2}, p.Writes())
	p.Reset()
	assert.Equal(t, 0, p.Requests())
	assert.Empty(t, p.Writes())
	assert.NotContains(t, p.String(), p.Token)
}
