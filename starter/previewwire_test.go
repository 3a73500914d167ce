package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/targets"
)

// wireHire is the event every connector's preview-equals-wire test plans.
var wireHire = hr.Event{EventID: "evt-wire-1", Type: hr.Hire, EffectiveAt: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC),
	Employee: map[string]string{"employee_id": "E2001", "first_name": "Ada", "last_name": "Lovelace",
		"department": "Engineering", "title": "engineer", "country_code": "GB"}}

// previewAndWire plans ev under the policy twice: once as `starter preview`
// does (recorder, nothing sent) and once with every request forwarded to the
// real peer, and returns both call lists of step, normalized.
func previewAndWire(t *testing.T, policyYAML string, env map[string]string, live http.RoundTripper, step int) (preview, wire []string) {
	t.Helper()
	p, err := policy.Parse("wire.yaml", []byte(policyYAML))
	require.NoError(t, err)
	ctx := context.Background()
	// Graph checks password complexity: both runs stand in the same
	// password for the generated one (the preview shows it masked).
	pw := newWireWith(ctx, p, &targets.Recorder{}, func(string) string { return "preview" }, true)
	pw.password = "Gen3rated-Pa55word!"
	got, err := previewWith(p, pw)
	require.NoError(t, err)
	ww := newWireWith(ctx, p, &targets.Recorder{Live: live, Wire: true}, func(k string) string { return env[k] }, true)
	ww.password = pw.password
	sent, err := previewWith(p, ww)
	require.NoError(t, err)
	require.Empty(t, got.Steps[step].Error)
	require.Empty(t, sent.Steps[step].Error, "the real peer accepted every request")
	return normalize(got.Steps[step].Calls), normalize(sent.Steps[step].Calls)
}

func previewWith(p *policy.Policy, w *wire) (*previewResult, error) { return preview(p, wireHire, w) }

var hostRE = regexp.MustCompile(`https?://127\.0\.0\.1:[0-9]+`)

// normalize keeps method, path, query and body: the host is the peer's.
func normalize(calls []previewCall) []string {
	var out []string
	for _, c := range calls {
		u, _ := url.PathUnescape(c.URL)
		out = append(out, fmt.Sprintf("%s %s\n%s", c.Method, hostRE.ReplaceAllString(u, "<peer>"), c.Body))
	}
	return out
}

const wireAttrs = `
        attributes:
          %s: '{first_name | LOWER}.{last_name | LOWER}@example.com'
          email: '{first_name | LOWER}.{last_name | LOWER}@example.com'
          given_name: '{first_name}'
          family_name: '{last_name}'
          department: '{department}'
          title: '{title | TITLE_CASE}'
`

func TestPreviewEqualsWireSCIM(t *testing.T) {
	peer := scimtest.Start(t)
	pol := fmt.Sprintf(`targets:
  app: {type: scim, base_url: %s, token_env: APP_TOKEN}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate`+wireAttrs, peer.BaseURL, "user_name")
	preview, wire := previewAndWire(t, pol, map[string]string{"APP_TOKEN": peer.Token}, http.DefaultTransport, 0)
	assert.Equal(t, wire, preview)
	assert.Contains(t, strings.Join(preview, "\n"), `"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Engineering"}`)
}

func TestPreviewEqualsWireOkta(t *testing.T) {
	peer := oktatest.Start(t)
	pol := fmt.Sprintf(`targets:
  okta: {type: okta, org_url: %s, token_env: OKTA_TOKEN}
joiner:
  steps:
    - sync_identity:
        target: okta
        create_allowed: true
        password: generate`+wireAttrs, peer.OrgURL, "login")
	preview, wire := previewAndWire(t, pol, map[string]string{"OKTA_TOKEN": peer.Token}, http.DefaultTransport, 0)
	assert.Equal(t, wire, preview)
	assert.Contains(t, strings.Join(preview, "\n"), `"firstName":"Ada"`, "given_name is Okta's firstName")
}

func TestPreviewEqualsWireEntra(t *testing.T) {
	srv := graphtest.New(t, graphtest.Options{Domains: []string{"example.com"}})
	o := srv.Options()
	pol := fmt.Sprintf(`targets:
  entra: {type: entra, tenant: %s, client_id_env: ENTRA_ID, client_secret_env: ENTRA_SECRET, base_url: %s, authority_url: %s}
joiner:
  steps:
    - sync_identity:
        target: entra
        create_allowed: true
        password: generate`+wireAttrs, o.Tenant, srv.GraphURL(), srv.AuthorityURL(), "user_name")
	pol = strings.Replace(pol, "          department:", "          display_name: '{first_name} {last_name}'\n          department:", 1)
	pol = strings.Replace(pol, "          email:", "          mail:", 1)
	preview, wire := previewAndWire(t, pol, map[string]string{"ENTRA_ID": o.ClientID, "ENTRA_SECRET": o.ClientSecret}, http.DefaultTransport, 0)
	assert.Equal(t, wire, preview)
	assert.Contains(t, strings.Join(preview, "\n"), `"givenName":"Ada"`)
}

func TestPreviewEqualsWireREST(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"acc-1"}`)
	}))
	t.Cleanup(srv.Close)
	pol := fmt.Sprintf(`targets:
  portal: {type: rest, base_url: %s/api, entity_type: Portal, auth: {type: bearer, token_env: PORTAL_TOKEN}}
joiner:
  steps:
    - send_rest_request:
        target: portal
        method: POST
        url: '/accounts/{employee_id}'
        headers: {Idempotency-Key: 'jml-{employee_id}'}
        body: '{"name":"{first_name} {last_name}","quote":"say \"hi\"","start":"{department | UPPER}"}'
        extract: {account_id: $.id}
`, srv.URL)
	preview, wire := previewAndWire(t, pol, map[string]string{"PORTAL_TOKEN": "t0k"}, srv.Client().Transport, 0)
	assert.Equal(t, wire, preview)
	require.Len(t, preview, 1)
	assert.Equal(t, "POST <peer>/api/accounts/E2001\n"+`{"name":"Ada Lovelace","quote":"say \"hi\"","start":"ENGINEERING"}`, preview[0])
}

// TestPreviewLive: with --live the connectors' reads reach the target (with
// the credentials of the environment) and writes never do; without it the
// target sees nothing at all.
func TestPreviewLive(t *testing.T) {
	peer := scimtest.Start(t)
	t.Setenv("APP_TOKEN", peer.Token)
	path := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`targets:
  app: {type: scim, base_url: %s, token_env: APP_TOKEN}
joiner:
  steps:
    - sync_identity: {target: app, create_allowed: true, attributes: {user_name: '{first_name}@example.com', given_name: '{first_name}'}}
    - manage_relationships: {target: app, add: ['dept-{department}'], create_missing: true}
`, peer.BaseURL)), 0o600))
	ev := filepath.Join(t.TempDir(), "ev.json")
	require.NoError(t, os.WriteFile(ev, []byte(`{"event_id":"e1","type":"hire","effective_at":"2026-11-02T09:00:00Z","employee":{"employee_id":"E1","first_name":"ada","department":"eng"}}`), 0o600))

	peer.Reset()
	code, out, errs := runCmd(t, "preview", "--policy", path, "--event", ev)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "answered not found: preview without --live")
	assert.Zero(t, peer.Requests(), "without --live nothing reaches the target")

	code, out, errs = runCmd(t, "preview", "--live", "--policy", path, "--event", ev)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "Reads went to the targets (--live); writes were blocked.")
	assert.Regexp(t, `GET\s+\S+/Users\?filter=userName\+eq\+"ada@example.com"\s+\(sent\)`, out)
	assert.Regexp(t, `POST\s+\S+/Users\s+\(a write: not sent\)`, out)
	assert.Positive(t, peer.Requests(), "the lookups reached the peer")
	assert.Empty(t, peer.Writes(), "no write reached the peer")

	// Without create_missing, a group the live lookup did not find is where
	// a run would stop; a group named from an empty attribute is none.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	blank := strings.Replace(string(b), "add: ['dept-{department}']", "add: ['dept-{department}', 'cc-{cost_center}']", 1)
	require.NoError(t, os.WriteFile(path, []byte(blank), 0o600))
	code, out, errs = runCmd(t, "preview", "--live", "--policy", path, "--event", ev)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "not granted, no value: cc-{cost_center} (cost_center empty)")
	assert.NotContains(t, out, "cc-,")
	strict := strings.Replace(string(b), "add: ['dept-{department}'], create_missing: true", "add: ['dept-{department}']", 1)
	require.NoError(t, os.WriteFile(path, []byte(strict), 0o600))
	code, out, _ = runCmd(t, "preview", "--live", "--policy", path, "--event", ev)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, `group "dept-eng" does not exist at the target and create_missing is not set`)
	assert.Empty(t, peer.Writes())
}
