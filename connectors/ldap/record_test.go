package ldap_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/ldap"
	"github.com/jml-dev/jml/internal/ldappeer"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
)

// joinerAndLeaver is what both a run and its preview do: a joiner with a
// password, then a leaver.
func joinerAndLeaver(t *testing.T, c *ldap.Connector, pw secret.Secret) {
	t.Helper()
	ctx := context.Background()
	acct, err := c.CreateAccount(ctx, connectors.Attributes{"login": "apreview", "first_name": "Ann", "last_name": "Preview",
		"display_name": "Ann Preview", "department": "Sales", "employee_id": "E0900"},
		connectors.CreateOptions{Password: &pw, Activate: true})
	require.NoError(t, err)
	require.True(t, acct.Active)
	require.NoError(t, c.Deprovision(ctx, acct.ID, connectors.DeprovisionOptions{RemoveGroups: true}))
	got, err := c.ReadAccount(ctx, acct.ID)
	require.NoError(t, err)
	require.False(t, got.Active, "the preview answers the read as the directory would after the unsent writes")
}

// writes are the recorded writes as "METHOD target\nbody".
func writes(calls []targets.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method != "SEARCH" {
			out = append(out, c.Method+" "+c.URL+"\n"+c.Body)
		}
	}
	return out
}

// TestPreviewRecordsWhatARunSends: the operations a preview records
// (without a directory: nothing sent) are the ones a run sends to Samba,
// through the same recorder HTTP connectors use, with unicodePwd masked.
func TestPreviewRecordsWhatARunSends(t *testing.T) {
	s := ldappeer.StartSamba(t)
	s.CreateOU(t, "OU=Sales,"+s.StaffDN)
	pw := secret.New("Preview-Pass-2026!x")

	offline := &targets.Recorder{}
	cfg := peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	cfg.Recorder = offline
	cfg.URL = "ldaps://192.0.2.1:636" // never dialled
	joinerAndLeaver(t, newPeerConnector(t, cfg), pw)

	wire := &targets.Recorder{Live: http.DefaultTransport, Wire: true}
	cfg = peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	cfg.Recorder = wire
	joinerAndLeaver(t, newPeerConnector(t, cfg), pw)

	want := writes(wire.Calls())
	require.Len(t, want, 3, "add, disable, move: %q", want)
	assert.Equal(t, want, writes(offline.Calls()))
	for _, c := range offline.Calls() {
		assert.NotContains(t, c.Body, pw.Reveal())
		assert.NotContains(t, c.Body, ldappeer.UnicodePwd(pw.Reveal()))
		if c.Method != "SEARCH" {
			assert.Equal(t, "blocked", c.Answer, "%s %s", c.Method, c.URL)
		}
	}
	add := want[0]
	assert.True(t, strings.HasPrefix(add, "ADD CN=Ann Preview,OU=Sales,"+s.StaffDN), add)
	assert.Contains(t, add, "unicodePwd: "+secret.Redacted)
	assert.Contains(t, add, "userAccountControl: 512")
	assert.Contains(t, add, "pwdLastSet: 0")
	assert.Contains(t, want[1], "replace userAccountControl: 514")
	assert.Contains(t, want[2], "new DN: CN=Ann Preview,"+s.DisabledDN)

	// A live preview reads the directory and writes nothing.
	live := &targets.Recorder{Live: http.DefaultTransport}
	cfg = peerConfig(t, ldap.ActiveDirectory, &s.Directory)
	cfg.Recorder = live
	c := newPeerConnector(t, cfg)
	_, err := c.FindAccount(context.Background(), connectors.Key{Attribute: "login", Value: "bpreview"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	_, err = c.CreateAccount(context.Background(), connectors.Attributes{"login": "bpreview", "last_name": "Preview",
		"department": "Sales", "employee_id": "E0901"}, connectors.CreateOptions{Password: &pw, Activate: true})
	require.NoError(t, err)
	assert.Empty(t, s.SearchAll(t, s.BaseDN, "(sAMAccountName=bpreview)"), "a preview sends no write")
	var sent []string
	for _, c := range live.Calls() {
		if c.Answer == "sent" {
			sent = append(sent, c.Method)
		}
	}
	assert.NotEmpty(t, sent, "%+v", live.Calls())
	assert.NotContains(t, sent, "ADD")
}
