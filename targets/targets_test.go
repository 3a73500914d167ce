package targets

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

func TestBuild(t *testing.T) {
	env := map[string]string{"SCIM_TOKEN": "t0k", "OKTA_TOKEN": "o0k"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		targets map[string]policy.Target
		wantErr []string
		check   func(t *testing.T, got map[string]any)
	}{
		{
			name: "scim, okta and rest",
			targets: map[string]policy.Target{
				"app":    {Type: "scim", BaseURL: "https://app.example/scim/v2", TokenEnv: "SCIM_TOKEN", RateLimit: 5},
				"okta":   {Type: "okta", OrgURL: "https://acme.okta.com", TokenEnv: "OKTA_TOKEN"},
				"portal": {Type: "rest", BaseURL: "https://hr.example"},
			},
			check: func(t *testing.T, got map[string]any) {
				assert.IsType(t, &scim.Client{}, got["app"])
				assert.IsType(t, &okta.Client{}, got["okta"])
				assert.NotContains(t, got, "portal", "rest targets need no connector")
			},
		},
		{
			name: "every problem at once, naming the variable",
			targets: map[string]policy.Target{
				"app":  {Type: "scim", BaseURL: "https://app.example/scim/v2", TokenEnv: "MISSING_SCIM"},
				"okta": {Type: "okta", OrgURL: "https://acme.okta.com", TokenEnv: "MISSING_OKTA"},
				"x":    {Type: "x500"},
			},
			wantErr: []string{"target app: token_env: environment variable MISSING_SCIM is empty or unset",
				"target okta: token_env: environment variable MISSING_OKTA is empty or unset",
				`target x: unknown type "x500"`},
		},
		{
			name:    "okta over plain http outside dev",
			targets: map[string]policy.Target{"okta": {Type: "okta", OrgURL: "http://acme.okta.com", TokenEnv: "OKTA_TOKEN"}},
			wantErr: []string{"target okta:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(context.Background(), &policy.Policy{Targets: tt.targets}, Options{Getenv: getenv})
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.NotContains(t, err.Error(), "t0k")
				return
			}
			require.NoError(t, err)
			tt.check(t, got)
		})
	}
}

// TestEntraTwoTenants: each entra target is built from its own tenant,
// client_id_env and client_secret_env, so one policy provisions two
// tenants, each through its own credentials.
func TestEntraTwoTenants(t *testing.T) {
	ctx := context.Background()
	contoso := graphtest.New(t, graphtest.Options{Tenant: "contoso-tenant", ClientID: "contoso-app", ClientSecret: "contoso-s3cret"})
	fabrikam := graphtest.New(t, graphtest.Options{Tenant: "fabrikam-tenant", ClientID: "fabrikam-app", ClientSecret: "fabrikam-s3cret",
		Domains: []string{"fabrikam.com"}})
	env := map[string]string{
		"CONTOSO_CLIENT_ID": "contoso-app", "CONTOSO_CLIENT_SECRET": "contoso-s3cret",
		"FABRIKAM_CLIENT_ID": "fabrikam-app", "FABRIKAM_CLIENT_SECRET": "fabrikam-s3cret",
	}
	p := &policy.Policy{Targets: map[string]policy.Target{
		"contoso": {Type: "entra", Tenant: "contoso-tenant", ClientIDEnv: "CONTOSO_CLIENT_ID", ClientSecretEnv: "CONTOSO_CLIENT_SECRET",
			BaseURL: contoso.GraphURL(), AuthorityURL: contoso.AuthorityURL()},
		"fabrikam": {Type: "entra", Tenant: "fabrikam-tenant", ClientIDEnv: "FABRIKAM_CLIENT_ID", ClientSecretEnv: "FABRIKAM_CLIENT_SECRET",
			BaseURL: fabrikam.GraphURL(), AuthorityURL: fabrikam.AuthorityURL()},
	}}
	got, err := Build(ctx, p, Options{Getenv: func(k string) string { return env[k] }, AllowInsecure: true})
	require.NoError(t, err)
	require.Len(t, got, 2)
	for name, srv := range map[string]*graphtest.Server{"contoso": contoso, "fabrikam": fabrikam} {
		c := got[name].(*entra.Connector)
		upn := "ada@" + name + ".com"
		_, err := c.CreateAccount(ctx, connectors.Attributes{"user_principal_name": upn, "display_name": "Ada"},
			connectors.CreateOptions{Password: ptr(secret.New("Xy9-long-enough-pw")), Activate: true})
		require.NoError(t, err, name)
		assert.NotEmpty(t, srv.UserByUPN(upn), "%s's user is in %s's tenant", name, name)
		assert.Equal(t, 1, srv.TokenRequests(), "%s authenticated with its own tenant's credentials", name)
	}
	assert.Empty(t, contoso.UserByUPN("ada@fabrikam.com"))
	assert.Empty(t, fabrikam.UserByUPN("ada@contoso.com"))

	// The tenant written in the policy is the one used: a wrong one is refused by the authority.
	bad := p.Targets["fabrikam"]
	bad.Tenant = "contoso-tenant"
	c, err := BuildOne(ctx, "fabrikam", bad, Options{Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	before := fabrikam.Requests()
	_, err = c.(*entra.Connector).FindAccount(ctx, connectors.Key{Attribute: "user_name", Value: "ada@fabrikam.com"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS")
	assert.Equal(t, before, fabrikam.Requests(), "no Graph call without a token of the right tenant")
}

func ptr[T any](v T) *T { return &v }

// TestProbeOkta: the read probe of an Okta target finds lookups, groups and
// paging working; the write probe creates, changes and deletes a user.
func TestProbeOkta(t *testing.T) {
	peer := oktatest.Start(t)
	ctx := context.Background()
	p := &policy.Policy{Targets: map[string]policy.Target{"okta": {Type: "okta", OrgURL: peer.OrgURL, TokenEnv: "OKTA_TOKEN"}},
		Leaver: policy.Flow{Steps: []policy.Step{{DeleteIdentity: &policy.DeleteIdentity{Target: "okta"}}}}}
	o := Options{Getenv: func(string) string { return peer.Token }, AllowInsecure: true}
	reports := Check(ctx, p, o, true)
	require.Len(t, reports, 1)
	require.Empty(t, reports[0].Error)
	st := map[string]string{}
	for _, c := range reports[0].Capabilities {
		st[c.Name] = c.Status
	}
	for _, c := range []string{connectors.CapLookup, connectors.CapGroups, connectors.CapList, connectors.CapCreate, connectors.CapUpdate, connectors.CapDelete} {
		assert.Equal(t, connectors.CapWorks, st[c], c)
	}
	assert.Equal(t, connectors.CapUntested, st[connectors.CapMembership])
	assert.Empty(t, reports[0].Missing)
}

// TestConnectorsRunTheActionsTheyDescribe: every action a connector's
// description lists (what validation accepts on its targets) is one its
// client implements (what the action's execution asserts), and a step
// whose connector lacks it is reported by the check.
func TestConnectorsRunTheActionsTheyDescribe(t *testing.T) {
	env := map[string]string{"T": "t0k", "ID": "id", "SECRET": "s3cret"}
	p := &policy.Policy{Targets: map[string]policy.Target{
		"scim":  {Type: "scim", BaseURL: "https://app.example/scim/v2", TokenEnv: "T"},
		"okta":  {Type: "okta", OrgURL: "https://acme.okta.com", TokenEnv: "T"},
		"entra": {Type: "entra", Tenant: "contoso.onmicrosoft.com", ClientIDEnv: "ID", ClientSecretEnv: "SECRET"},
	}}
	got, err := Build(context.Background(), p, Options{Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	for name, c := range got {
		d, ok := policy.Describe(p.Targets[name].Type)
		require.True(t, ok)
		for _, action := range d.Actions {
			a := activities.ActionOf(action)
			if a == nil {
				continue // attribute_sync, password_sync: no step
			}
			assert.True(t, a.Supports(c), "%s lists %s but its client lacks the interfaces", name, action)
		}
	}

	p.Joiner.Steps = []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app"}}, {ResetPassword: &policy.ResetPassword{Target: "other"}}}
	missing := unsupported(struct{}{}, p, "app")
	require.Len(t, missing, 1)
	assert.Equal(t, Need{Step: "joiner.app.sync_identity", Capability: "sync_identity", Detail: "the connector cannot run sync_identity"}, missing[0])
}

// A directory's missing container (here the leaver's disabled_container)
// fails the steps on it: targets check must list them (and exit 1), not
// pass a policy whose every leaver would retry a move to a missing OU.
func TestNeedsDirectoryContainersAndSchema(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"ad": {Type: "active_directory"}, "app": {Type: "scim"}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "ad", RemoveGroups: true}},
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app"}},
		}},
	}
	needs := Needs(p)
	assert.Contains(t, needs["ad"], Need{Step: "leaver.ad.deprovision_identity", Capability: "containers"})
	assert.Contains(t, needs["ad"], Need{Step: "leaver.ad.deprovision_identity", Capability: "schemas"})
	for _, n := range needs["app"] {
		assert.NotContains(t, []string{"containers", "schemas"}, n.Capability, "only directories have containers")
	}
}
