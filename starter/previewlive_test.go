package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/scim/scimtest"
)

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
	assert.Contains(t, out, "Reads went to the targets (--live); writes were answered by the recorder, never sent.")
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
	assert.Contains(t, out, "WOULD FAIL")
	assert.Contains(t, out, "GroupNotFound")
	assert.Empty(t, peer.Writes())
}
