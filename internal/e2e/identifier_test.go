package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/workflows"
)

// Issue 27: a user name servers refuse (65 octets before @, a space before
// @) stops the joiner in NeedsAttention as InvalidIdentifier before any
// request reaches the target: the strict server behind the hostile proxy
// sees no POST and the SCIMMY peer holds no account.
func TestJoinerRefusesInvalidIdentifierBeforeWriting(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	px := hostile.StartSCIM(t, s.peer.Root(), hostile.SCIMSwitches{Patch204: true, NoUserGroupsAttr: true})
	sc, err := scim.New(ctx, scim.Config{BaseURL: px.Rewrite(s.peer.BaseURL), Auth: scim.Auth{BearerToken: s.peer.Token}})
	require.NoError(t, err)
	s.workerWith(t, map[string]any{"app": sc}, nil)

	syncStep := ""
	for _, st := range s.policy.Joiner.Steps {
		if st.SyncIdentity != nil {
			syncStep = st.Name
		}
	}
	for i, email := range []string{
		strings.Repeat("a", 65) + "@acme.test",
		"sean.o suilleabhain@acme.test",
		"ada .lovelace@acme.test",
	} {
		p := person(900 + i)
		p["email"] = email
		wf := hostileDeliver(t, s, hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p}, "joiner")
		rows := hostileSettle(t, s, wf)
		failed := rows[0]
		if syncStep != "" {
			failed = hostileRow(t, rows, syncStep)
		}
		assert.Equal(t, workflows.StepFailed, failed.State, "%s: %+v", email, failed)
		assert.Contains(t, failed.LastError, activities.ErrTypeInvalidIdentifier, email)
		assert.Contains(t, failed.LastError, "employee "+p["employee_id"], email)
		assert.Equal(t, contract.StateNeedsAttention, hostileNeedsAttention(t, s, wf))
	}
	assert.Zero(t, px.Requests("POST"), "nothing was sent to create an account")
	assert.Zero(t, px.Requests("PATCH"))
	accts, _, err := s.scim(t).ListAccounts(ctx, "", 100)
	require.NoError(t, err)
	assert.Empty(t, accts, "the peer holds no account")
}
