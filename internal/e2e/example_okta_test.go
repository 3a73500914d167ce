package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/targets"
	"github.com/jml-dev/jml/transform"
)

// TestExampleOktaJoiner runs the Okta steps of examples/policy.yaml's joiner
// (sync with given_name/family_name/employee_number, create_entitlement)
// through real workflows against the Okta stand-in,
// and checks the user holds exactly the attributes the preview renders.
// Before the connectors described their attributes, the run stopped with
// "OktaValidation: required attribute first_name is missing".
func TestExampleOktaJoiner(t *testing.T) {
	peer := oktatest.Start(t)
	p, err := policy.Load("../../examples/policy.yaml")
	require.NoError(t, err)
	tgt := p.Targets["okta"]
	tgt.OrgURL = peer.OrgURL
	p.Targets = map[string]policy.Target{"okta": tgt}
	// The okta sync and entitlement steps; the stand-in cannot list a
	// user's groups (the read-back of manage_relationships), and jira, the
	// portal and slack are other tests' peers.
	p.Joiner.Steps = p.Joiner.Steps[:2]
	p.Joiner.Offset = ""
	p.AttributeSync, p.PasswordSyncGroups = policy.AttributeSync{}, nil

	ctx := context.Background()
	env := map[string]string{"OKTA_API_TOKEN": peer.Token}
	// Every request the worker's Okta connector sends is recorded on its way to the stand-in.
	wire := &targets.Recorder{Live: http.DefaultTransport, Wire: true}
	built, err := targets.Build(ctx, p, targets.Options{Getenv: func(k string) string { return env[k] },
		HTTPClient: &http.Client{Transport: wire}, AllowInsecure: true})
	require.NoError(t, err)
	oc := built["okta"].(*okta.Client)
	for _, g := range []string{"everyone", "region-amer"} { // groups the example expects to exist
		_, err := oc.EnsureGroup(ctx, connectors.Group{Name: g})
		require.NoError(t, err)
	}

	s := newStack(t)
	s.policy = p
	s.workerWith(t, built, nil)
	ev := hr.Event{EventID: "evt-example-okta", Type: hr.Hire, EffectiveAt: time.Now().UTC(), Employee: map[string]string{
		"employee_id": "E1042", "first_name": "Łukasz", "last_name": "Gruba", "department": "Engineering",
		"title": "senior site reliability engineer", "country_code": "US", "mobile_phone": "(212) 555-0199",
	}}
	_, err = deliver(ctx, s.c, ev)
	require.NoError(t, err)
	s.waitStatus(t, []string{"E1042"}, contract.StatusActive)

	// What the preview shows for the sync step: the same rendering.
	tables, err := p.Tables()
	require.NoError(t, err)
	want, err := policy.RenderAttributes(p, *p.Joiner.Steps[0].SyncIdentity,
		&transform.Env{Attrs: ev.Employee, Lookups: tables, Rand: rand.Reader, Now: time.Now()})
	require.NoError(t, err)
	acct, err := oc.FindAccount(ctx, connectors.Key{Attribute: "login", Value: want["login"]})
	require.NoError(t, err)
	// The stand-in keeps the core profile (it drops the rest, see
	// docs/PEERS); the create request carried every previewed attribute
	// under Okta's profile property.
	for _, k := range []string{"login", "email", "given_name", "family_name"} {
		assert.Equal(t, want[k], acct.Attributes[k], "attribute %s", k)
	}
	assert.Equal(t, "Łukasz", acct.Attributes["first_name"], "given_name is Okta's firstName")
	var create map[string]any
	for _, c := range wire.Calls() {
		if c.Method == http.MethodPost && strings.HasPrefix(c.URL, peer.OrgURL+"/api/v1/users?") {
			require.NoError(t, json.Unmarshal([]byte(c.Body), &create))
		}
	}
	require.NotNil(t, create, "the joiner sent a create")
	profile, _ := create["profile"].(map[string]any)
	for k, v := range want {
		assert.Equal(t, v, profile[okta.ProfileName(k)], "attribute %s as %s", k, okta.ProfileName(k))
	}
	assert.Equal(t, "E1042", profile["employeeNumber"], "employee_number is Okta's employeeNumber")
	g, err := oc.FindGroup(ctx, "dept-engineering")
	require.NoError(t, err, "create_entitlement made the department group")
	assert.Equal(t, "dept-engineering", g.Name)
}
