package scim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
)

func TestClassifySummarizesNonJSONBodies(t *testing.T) {
	long := "<html><body><h1>Oops</h1><p>" + strings.Repeat("word ", 100) + "</p></body></html>"
	for _, tc := range []struct {
		name, body, want string
	}{
		{"html title", "<html>\n<head><title>404  Not\nFound</title><style>x{}</style></head>\n<body><h1>404</h1>\n<hr>nginx</body></html>", "scim: op: HTTP 404: 404 Not Found"},
		{"html without title", "<html><head><script>var a=1;</script></head><body>\n  <h1>Bad   Gateway</h1>\n<p>upstream &amp; down</p></body></html>", "scim: op: HTTP 502: Bad Gateway upstream & down"},
		{"plain text", "  upstream\nconnect error\r\n", "scim: op: HTTP 503: upstream connect error"},
		{"long page", long, "scim: op: HTTP 500: Oops " + strings.TrimSpace(strings.Repeat("word ", 100))[:115] + "…"},
		{"scim error", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"no"}`, "scim: op: HTTP 400 invalidFilter: no"},
		{"other json", `{"message":"nope"}`, "scim: op: HTTP 500"},
		{"empty", "", "scim: op: HTTP 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := map[string]int{"html title": 404, "html without title": 502, "plain text": 503, "scim error": 400}[tc.name]
			if status == 0 {
				status = 500
			}
			err := classify("op", &http.Response{StatusCode: status, Header: http.Header{}}, []byte(tc.body), "")
			require.Error(t, err)
			msg := strings.TrimSuffix(err.Error(), ": "+connectors.ErrNotFound.Error())
			assert.Equal(t, tc.want, msg)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestNotFoundAt(t *testing.T) {
	html := []byte("<html><head><title>404 Not Found</title></head></html>")
	scimBody := []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"Resource x not found"}`)
	nf := func(path string, body []byte) error {
		return notFoundAt("op", path, classify("op", &http.Response{StatusCode: 404, Header: http.Header{}}, body, ""))
	}
	for _, tc := range []struct {
		path     string
		body     []byte
		notFound bool
		typ      string
	}{
		{"/Groups", scimBody, false, "ScimUnsupported"},
		{"/Groups", html, false, "ScimUnsupported"},
		{"/Groups/g1", html, false, "ScimUnsupported"},
		{"/Groups/g1", scimBody, true, ""},
		{"/Users/u1", scimBody, true, ""},
		{"/Users/u1", nil, true, ""},
		{"/Users/u1", html, false, "ScimEndpoint"},
		{"/Schemas", html, true, ""},
	} {
		err := nf(tc.path, tc.body)
		assert.Equal(t, tc.notFound, errors.Is(err, connectors.ErrNotFound), "%s %s: %v", tc.path, tc.body, err)
		if tc.typ != "" {
			assert.True(t, isType(err, tc.typ), "%s: %v", tc.path, err)
		}
	}
}

// TestTransportErrorsLeaveTheURLOut: a connection cut on a lookup gives a
// transient error without the request URL, whose filter holds the user
// name (personal data that the worker's logs must not get).
func TestTransportErrorsLeaveTheURLOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Users") {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // the connection drops mid-request
			}
			return
		}
		http.NotFound(w, r) // no discovery documents: RFC defaults
	}))
	defer srv.Close()
	c, err := New(context.Background(), Config{BaseURL: srv.URL + "/scim/v2", Auth: Auth{BearerToken: "t"}})
	require.NoError(t, err)
	_, err = c.FindAccount(context.Background(), connectors.Key{Attribute: "user_name", Value: "dur.able@acme.test"})
	require.Error(t, err)
	assert.False(t, connectors.IsPermanent(err), "a dropped connection is retried: %v", err)
	assert.NotContains(t, err.Error(), "dur.able")
	assert.NotContains(t, err.Error(), "filter=")
	assert.Contains(t, err.Error(), "scim: find")
}
