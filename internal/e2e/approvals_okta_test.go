package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// TestAccessRequestOktaApprovedByMailLink: the joiner creates Ada's
// account at the Okta stand-in (emulate, through okta-sdk-golang v2); a
// request for an Okta group is approved by the manager's mail link (real
// SMTP, opened over HTTP); the membership is read back at the stand-in
// through the SDK, and at expiry it is gone there again.
func TestAccessRequestOktaApprovedByMailLink(t *testing.T) {
	peer := oktatest.Start(t)
	ctx := context.Background()
	oc, err := okta.New(ctx, okta.Config{OrgURL: peer.OrgURL, Token: secret.New(peer.Token), AllowInsecure: true})
	require.NoError(t, err)
	_, err = oc.EnsureGroup(ctx, connectors.Group{Name: "prod-okta-admin"})
	require.NoError(t, err)

	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.policy.Targets["okta"] = policy.Target{Type: "okta", OrgURL: peer.OrgURL, TokenEnv: "OKTA_API_TOKEN"}
	s.policy.Joiner.Steps = append(s.policy.Joiner.Steps[:1:1], policy.Step{SyncIdentity: &policy.SyncIdentity{
		Target: "okta", CreateAllowed: true, Attributes: map[string]string{"login": "{email}", "email": "{email}",
			"first_name": "{first_name}", "last_name": "Test"}}})
	s.policy.Approvals.Requestable = append(s.policy.Approvals.Requestable, "group:prod-okta-*@okta")
	s.more = map[string]any{"okta": oc}
	s.startWorker(t)
	s.people(t)

	rec, err := activities.TemporalDirectory{Client: s.c}.Identity(ctx, "E1")
	require.NoError(t, err)
	acct := rec.Accounts["okta"]
	require.NotEmpty(t, acct, "the joiner linked Ada's Okta account")
	inGroup := func() bool {
		gs, err := oc.Memberships(ctx, acct) // GET /api/v1/users/{id}/groups at the stand-in
		require.NoError(t, err)
		return slices.ContainsFunc(gs, func(g connectors.Group) bool { return g.Name == "prod-okta-admin" })
	}
	require.False(t, inGroup())

	s.request(t, "okta1", "group:prod-okta-admin@okta", "5s")
	ask := s.waitMail(t, "grace@acme.test", "Approve", 1)[0]
	assert.Contains(t, ask.Header.Get("Subject"), "prod-okta-admin in okta")
	l := link(t, ask)
	code, page := s.open(t, l)
	require.Equal(t, http.StatusOK, code, page)
	assert.Contains(t, page, "prod-okta-admin")
	assert.False(t, inGroup(), "opening the link decides nothing")

	peer.Reset()
	approvedAt := time.Now()
	code, page = s.answer(t, tokenOf(t, l), "approve", "release night")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, inGroup, time.Minute, 50*time.Millisecond, "granted at the Okta stand-in")
	grantedAfter := time.Since(approvedAt)
	st := s.waitRequest(t, "okta1", func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
	assert.Equal(t, "added to prod-okta-admin (read back)", st.Note)
	assert.True(t, slices.ContainsFunc(peer.Log(), func(l string) bool {
		return strings.HasPrefix(l, "PUT /api/v1/groups/") && strings.HasSuffix(l, "/users/"+acct)
	}), "the grant is Okta's add-member call: %v", peer.Log())

	require.Eventually(t, func() bool { return !inGroup() }, time.Minute, 50*time.Millisecond, "revoked at the Okta stand-in")
	revokedAfter := time.Since(st.Until)
	st = s.waitRequest(t, "okta1", func(st workflows.RequestStatus) bool { return st.State == contract.StateCompleted })
	assert.Equal(t, workflows.OutcomeExpired, st.Outcome)
	assert.Equal(t, "removed from prod-okta-admin (read back)", st.Note)
	assert.True(t, slices.ContainsFunc(peer.Log(), func(l string) bool {
		return strings.HasPrefix(l, "DELETE /api/v1/groups/") && strings.HasSuffix(l, "/users/"+acct)
	}), "the revoke is Okta's remove-member call: %v", peer.Log())
	t.Logf("Okta: approval → granted at the stand-in: %v; expiry → revoked there: %v", grantedAfter, revokedAfter)
	s.assertNoSecrets(t, []string{approvalKey, tokenOf(t, l), "smtp-secret", peer.Token})
}
