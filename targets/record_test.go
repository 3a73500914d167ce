package targets_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/targets"
)

// A preview's later read of a resource it changed (the change unsent)
// answers as the target would once the change was made; other resources
// answer as the target holds them.
func TestRecorderAppliesUnsentChanges(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodGet, r.Method, "no write reaches the target")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/scim/Users/u1", "/scim/Users/u2":
			_, _ = io.WriteString(w, `{"id":"u","active":true,"title":"Eng","nickName":"ada"}`)
		case "/api/v1/users/o1":
			_, _ = io.WriteString(w, `{"id":"o1","status":"ACTIVE"}`)
		case "/v1.0/users/e1":
			_, _ = io.WriteString(w, `{"id":"e1","accountEnabled":true}`)
		case "/v1.0/users/e1/memberOf":
			_, _ = io.WriteString(w, `{"value":[{"id":"g1"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(live.Close)
	rec := &targets.Recorder{Live: live.Client().Transport}
	hc := &http.Client{Transport: rec}
	send := func(method, path, body string) map[string]any {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, live.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}

	send("PATCH", "/scim/Users/u1", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+
		`{"op":"replace","path":"active","value":false},{"op":"remove","path":"nickName"},{"op":"add","value":{"title":"CTO"}}]}`)
	assert.Equal(t, map[string]any{"id": "u", "active": false, "title": "CTO"}, send("GET", "/scim/Users/u1", ""))
	assert.Equal(t, true, send("GET", "/scim/Users/u2", "")["active"], "another resource: as the target holds it")

	send("POST", "/api/v1/users/o1/lifecycle/suspend", "")
	assert.Equal(t, "SUSPENDED", send("GET", "/api/v1/users/o1", "")["status"])

	// A Graph $batch: answered per request, the write applied to later reads.
	got := send("POST", "/v1.0/$batch", `{"requests":[`+
		`{"id":"1","method":"PATCH","url":"/users/e1","headers":{"Content-Type":"application/json"},"body":{"accountEnabled":false}},`+
		`{"id":"2","method":"GET","url":"/users/e1/memberOf?$top=999"}]}`)
	b, err := json.Marshal(got)
	require.NoError(t, err)
	var batch struct {
		Responses []struct {
			ID     string          `json:"id"`
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"responses"`
	}
	require.NoError(t, json.Unmarshal(b, &batch))
	require.Len(t, batch.Responses, 2)
	assert.Less(t, batch.Responses[0].Status, 300)
	assert.Equal(t, 200, batch.Responses[1].Status)
	assert.JSONEq(t, `{"value":[{"id":"g1"}]}`, string(batch.Responses[1].Body), "the read in the batch is the target's")
	assert.Equal(t, false, send("GET", "/v1.0/users/e1", "")["accountEnabled"])

	var calls []string
	for _, c := range rec.Calls() {
		calls = append(calls, c.Method+" "+c.URL[len(live.URL):]+" "+c.Answer)
	}
	assert.Equal(t, []string{
		"PATCH /scim/Users/u1 blocked", "GET /scim/Users/u1 sent", "GET /scim/Users/u2 sent",
		"POST /api/v1/users/o1/lifecycle/suspend blocked", "GET /api/v1/users/o1 sent",
		"POST /v1.0/$batch blocked", "GET /v1.0/users/e1 sent",
	}, calls, "the batch is one call; the recorder's own reads are not recorded")
}
