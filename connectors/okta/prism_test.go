package okta_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/secret"
)

// startPrism runs `prism mock` on Okta's published spec (@okta/openapi, the
// one okta-sdk-golang v2 was generated from), patched only where Prism
// cannot route: path keys that carry a query string
// (expire_password?tempPassword=true) become a bare path with a query
// parameter.
func startPrism(t *testing.T) string {
	t.Helper()
	dir := peertest.PeerDir(t, "okta-prism")
	peertest.EnsureNPM(t, dir)
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "@okta", "openapi", "dist", "spec.json"))
	require.NoError(t, err)
	var spec map[string]any
	require.NoError(t, json.Unmarshal(raw, &spec))
	paths := spec["paths"].(map[string]any)
	for key, item := range paths {
		bare, qs, ok := strings.Cut(key, "?")
		if !ok {
			continue
		}
		delete(paths, key)
		name, _, _ := strings.Cut(qs, "=")
		for _, op := range item.(map[string]any) {
			if op, ok := op.(map[string]any); ok {
				params, _ := op["parameters"].([]any)
				op["parameters"] = append(params, map[string]any{"name": name, "in": "query", "type": "boolean"})
			}
		}
		if strings.Contains(qs, "=true") || paths[bare] == nil {
			paths[bare] = item
		}
	}
	patched, err := json.Marshal(spec)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "okta-spec.json")
	require.NoError(t, os.WriteFile(file, patched, 0o600))
	port := peertest.FreePort(t)
	peertest.Start(t, dir, regexp.MustCompile(`Prism is listening`), 90*time.Second,
		filepath.Join(dir, "node_modules", ".bin", "prism"), "mock", "-h", "127.0.0.1", "-p", fmt.Sprint(port), file)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// teeTransport sends a copy of every request to Prism before the real one,
// and records Prism's verdict.
type teeTransport struct {
	base  http.RoundTripper
	prism string

	mu         sync.Mutex
	routes     map[string]bool
	violations []string
}

var idSegment = regexp.MustCompile(`/(00[ug][0-9a-zA-Z]+|[^/]+@[^/]+)`)

func (tt *teeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	cp, err := http.NewRequestWithContext(req.Context(), req.Method, tt.prism+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	cp.Header = req.Header.Clone()
	resp, err := tt.base.RoundTrip(cp)
	if err != nil {
		return nil, fmt.Errorf("prism: %w", err)
	}
	verdict, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	route := req.Method + " " + idSegment.ReplaceAllString(req.URL.Path, "/{id}")
	tt.mu.Lock()
	tt.routes[route] = true
	if resp.StatusCode >= 400 {
		tt.violations = append(tt.violations, fmt.Sprintf("%s → %d %s", req.Method+" "+req.URL.RequestURI(), resp.StatusCode, verdict))
	}
	tt.mu.Unlock()
	return tt.base.RoundTrip(req)
}

// TestContractPrism runs every operation of the connector against the
// faithful server while Prism validates each request against Okta's spec.
func TestContractPrism(t *testing.T) {
	prism := startPrism(t)

	// Prism itself must reject what Okta would: prove the check can fail.
	bad, err := http.NewRequest("POST", prism+"/api/v1/users?activate=maybe", strings.NewReader(`{"profile": "x"}`))
	require.NoError(t, err)
	bad.Header.Set("Authorization", "SSWS t")
	bad.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(bad)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 422, resp.StatusCode)

	f := newFakeOkta(t)
	f.pageMax = 1
	tee := &teeTransport{base: http.DefaultTransport, prism: prism, routes: map[string]bool{}}
	c, _ := newClient(t, f.URL, f.Token, func(cfg *okta.Config) { cfg.HTTPClient = &http.Client{Transport: tee, Timeout: 10 * time.Second} })
	ctx := context.Background()

	g, err := c.EnsureGroup(ctx, connectors.Group{Name: "contract", Description: "first"})
	require.NoError(t, err)
	_, err = c.EnsureGroup(ctx, connectors.Group{Name: "contract", Description: "second"})
	require.NoError(t, err)
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "login", Value: "ada@acme.test"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	pw := secret.New("Contract-Pa55!")
	acct, err := c.CreateAccount(ctx, person("ada@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}, Password: &pw})
	require.NoError(t, err)
	_, err = c.CreateAccount(ctx, person("ada@acme.test"), connectors.CreateOptions{Activate: true, GroupIDs: []string{g.ID}})
	require.NoError(t, err)
	_, err = c.CreateAccount(ctx, person("bob@acme.test"), connectors.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, c.UpdateAccount(ctx, acct.ID, connectors.Diff{"title": "Lead", "nick_name": "", "favorite_color": ""}))
	_, err = c.FindAccount(ctx, connectors.Key{Attribute: "employee_id", Value: "E-ada"})
	require.NoError(t, err)
	accts, next, err := c.ListAccounts(ctx, "", 1)
	require.NoError(t, err)
	require.Len(t, accts, 1)
	_, _, err = c.ListAccounts(ctx, next, 1)
	require.NoError(t, err)
	_, since, err := c.Changes(ctx, "")
	require.NoError(t, err)
	_, _, err = c.Changes(ctx, since)
	require.NoError(t, err)
	_, err = c.Memberships(ctx, acct.ID)
	require.NoError(t, err)
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID))
	require.NoError(t, c.RemoveMember(ctx, g.ID, acct.ID))
	require.NoError(t, c.AddMember(ctx, g.ID, acct.ID))
	require.NoError(t, c.SetPassword(ctx, acct.ID, secret.New("Another-Pa55!")))
	_, err = c.ResetPassword(ctx, acct.ID)
	require.NoError(t, err)
	require.NoError(t, c.SetPassword(ctx, acct.ID, secret.New("Third-Pa55!"))) // back to ACTIVE in the fake
	f.mu.Lock()
	f.users[acct.ID].Status = "ACTIVE"
	f.mu.Unlock()
	all := connectors.DeprovisionOptions{RemoveGroups: true, ClearSessions: true}
	require.NoError(t, c.Deprovision(ctx, acct.ID, all))
	require.NoError(t, c.Reactivate(ctx, acct.ID))
	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{Mode: okta.ModeDeactivate}))
	require.NoError(t, c.Reactivate(ctx, acct.ID))
	require.NoError(t, c.Delete(ctx, acct.ID))

	assert.Empty(t, tee.violations, "Prism rejected requests")
	want := []string{
		"GET /api/v1/users", "POST /api/v1/users", "GET /api/v1/users/{id}", "POST /api/v1/users/{id}",
		"DELETE /api/v1/users/{id}", "GET /api/v1/users/{id}/groups", "DELETE /api/v1/users/{id}/sessions",
		"POST /api/v1/users/{id}/lifecycle/activate", "POST /api/v1/users/{id}/lifecycle/deactivate",
		"POST /api/v1/users/{id}/lifecycle/suspend", "POST /api/v1/users/{id}/lifecycle/unsuspend",
		"POST /api/v1/users/{id}/lifecycle/expire_password",
		"GET /api/v1/groups", "GET /api/v1/groups/{id}", "POST /api/v1/groups", "PUT /api/v1/groups/{id}",
		"PUT /api/v1/groups/{id}/users/{id}", "DELETE /api/v1/groups/{id}/users/{id}",
	}
	var got []string
	for r := range tee.routes {
		got = append(got, r)
	}
	sort.Strings(got)
	assert.ElementsMatch(t, want, got, "every endpoint the connector uses is validated")
}
