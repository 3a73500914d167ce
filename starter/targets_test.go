package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/targets"
)

func checkPolicy(t *testing.T, baseURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`targets:
  app: {type: scim, base_url: %s, token_env: APP_TOKEN}
joiner:
  steps:
    - sync_identity: {target: app, create_allowed: true, attributes: {user_name: '{email}'}}
    - manage_relationships: {target: app, add: [everyone]}
leaver:
  steps:
    - deprovision_identity: {target: app, remove_groups: true}
`, baseURL)), 0o600))
	return path
}

func capStatus(r targets.Report) map[string]string {
	out := map[string]string{}
	for _, c := range r.Capabilities {
		out[c.Name] = c.Status
	}
	return out
}

// TestTargetsCheck probes the SCIM peer directly and behind the hostile
// proxy: the table names the members filter fallback and, without /Groups,
// the missing group capabilities and the steps that need them (exit 1).
func TestTargetsCheck(t *testing.T) {
	peer := scimtest.Start(t)
	t.Setenv("APP_TOKEN", peer.Token)

	code, out, errs := runCmd(t, "targets", "check", "--json", "--write-probe", "--policy", checkPolicy(t, peer.BaseURL))
	require.Equal(t, 0, code, "%s\n%s", out, errs)
	var reports []targets.Report
	require.NoError(t, json.Unmarshal([]byte(out), &reports))
	require.Len(t, reports, 1)
	st := capStatus(reports[0])
	for _, c := range []string{connectors.CapLookup, connectors.CapGroups, connectors.CapMembersFilter, connectors.CapCreate,
		connectors.CapUpdate, connectors.CapDelete, connectors.CapMembership} {
		assert.Equal(t, connectors.CapWorks, st[c], c)
	}
	assert.Empty(t, reports[0].Missing)

	t.Run("members filter refused", func(t *testing.T) {
		px := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{RejectMembersFilter: true})
		code, out, errs := runCmd(t, "targets", "check", "--policy", checkPolicy(t, px.Rewrite(peer.BaseURL)))
		require.Equal(t, 0, code, "a fallback is not a missing capability:\n%s\n%s", out, errs)
		assert.Regexp(t, `members_filter\s+FALLBACK\s+refused \(400 invalidFilter\)`, out)
		assert.Positive(t, px.Faults(hostile.FaultRejectMembersFilter), "the proxy refused the filter")
	})
	t.Run("no /Groups", func(t *testing.T) {
		px := hostile.StartSCIM(t, peer.Root(), hostile.SCIMSwitches{NoGroups: true})
		code, out, errs := runCmd(t, "targets", "check", "--policy", checkPolicy(t, px.Rewrite(peer.BaseURL)))
		require.Equal(t, 1, code, "%s\n%s", out, errs)
		assert.Regexp(t, `groups\s+MISSING`, out)
		assert.Regexp(t, `memberships\s+MISSING`, out)
		assert.Contains(t, out, "step joiner.app.manage_relationships needs groups")
		assert.Contains(t, out, "step leaver.app.deprovision_identity needs memberships")
		assert.Positive(t, px.Faults(hostile.FaultNoGroups))
	})
}

// TestTargetsCheckUnmappedAttribute: an attribute the target's /Schemas
// does not have fails every sync at run time (ScimMapping); targets check
// says so first, naming the step and the attribute (exit 1).
func TestTargetsCheckUnmappedAttribute(t *testing.T) {
	peer := scimtest.Start(t)
	t.Setenv("APP_TOKEN", peer.Token)
	path := checkPolicy(t, peer.BaseURL)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), "user_name: '{email}'",
		"user_name: '{email}', favourite_colour: '{colour}'", 1)), 0o600))
	code, out, errs := runCmd(t, "targets", "check", "--policy", path)
	require.Equal(t, 1, code, "%s\n%s", out, errs)
	assert.Contains(t, out, "step joiner.app.sync_identity needs schemas")
	assert.Contains(t, out, `favourite_colour`)
}

func TestTargetsHelp(t *testing.T) {
	code, out, _ := runCmd(t, "targets", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "usage: starter targets check")
	code, _, errs := runCmd(t, "targets", "check")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "usage:")
}
