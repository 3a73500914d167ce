package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
)

// TestSCIMJoinerRequests counts what a SCIM joiner sends through the
// request-logging proxy: each identifier is looked up once, and a joiner
// costs the floor (find, create, per group a lookup and a PATCH) plus the
// memberships read-back. Bob's first choice is free; Ann's is another
// person's, so she gets the fallback ann.lee2: her first choice is asked
// once (held), the fallback once (free), never again before the create.
func TestSCIMJoinerRequests(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	sync := s.policy.Joiner.Steps[0].SyncIdentity
	sync.Attributes = map[string]string{
		"user_name":       "{first_name | LOWER}.{last_name | LOWER}@acme.test",
		"given_name":      "{first_name}",
		"employee_number": "{employee_id}",
	}
	sync.Fallbacks = map[string][]string{"user_name": {"{first_name | LOWER}.{last_name | LOWER | NEXT_NUMBER}@acme.test"}}
	px := hostile.StartSCIM(t, s.peer.Root(), hostile.SCIMSwitches{})
	sc, err := scim.New(ctx, scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL), Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	s.workerWith(t, map[string]any{"app": sc}, nil)

	// Set-up outside the count: discovery, the groups, and the other Ann.
	_, err = sc.Discover(ctx)
	require.NoError(t, err)
	direct := s.scim(t)
	for _, g := range []string{"everyone", "dept-eng"} {
		_, err := direct.EnsureGroup(ctx, connectors.Group{Name: g})
		require.NoError(t, err)
	}
	_, err = direct.CreateAccount(ctx, connectors.Attributes{"user_name": "ann.lee@acme.test", "employee_number": "E900"},
		connectors.CreateOptions{Activate: true})
	require.NoError(t, err)

	hire := func(emp, first, last string) []string {
		t.Helper()
		px.Reset()
		ev := hr.Event{EventID: emp + "-hire", Type: hr.Hire, Employee: map[string]string{
			"employee_id": emp, "first_name": first, "last_name": last, "department": "eng"}}
		_, err := deliver(ctx, s.c, ev)
		require.NoError(t, err)
		s.waitStatus(t, []string{emp}, contract.StatusActive)
		return px.Log()
	}
	find := func(login string) string { return `GET /scim/v2/Users?filter=userName eq "` + login + `"` }
	groups := []string{
		`GET /scim/v2/Groups?excludedAttributes=members&filter=displayName eq "everyone"`,
		`GET /scim/v2/Groups?excludedAttributes=members&filter=displayName eq "dept-eng"`,
		"PATCH /scim/v2/Groups/", "PATCH /scim/v2/Groups/",
		"GET /scim/v2/Users/", // the memberships read-back
	}
	// prefix reduces the log's resource IDs to their collection.
	prefix := func(log []string) []string {
		out := make([]string, len(log))
		for i, l := range log {
			out[i] = l
			for _, p := range []string{"PATCH /scim/v2/Groups/", "GET /scim/v2/Users/"} {
				if len(l) > len(p) && l[:len(p)] == p && l[len(p)] != '?' {
					out[i] = p
				}
			}
		}
		return out
	}

	bob := prefix(hire("E001", "Bob", "Ray"))
	assert.Equal(t, append([]string{find("bob.ray@acme.test"), "POST /scim/v2/Users"}, groups...), bob,
		"Bob: the floor (find, create, lookup + PATCH per group) plus the read-back")

	ann := prefix(hire("E002", "Ann", "Lee"))
	assert.Equal(t, append([]string{find("ann.lee@acme.test"), find("ann.lee2@acme.test"), "POST /scim/v2/Users"}, groups...), ann,
		"Ann: her first choice and the fallback asked once each")
	acct, err := direct.FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "ann.lee2@acme.test"})
	require.NoError(t, err)
	assert.Equal(t, "E002", acct.Attributes["employee_number"])
}
