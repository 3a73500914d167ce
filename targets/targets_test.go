package targets

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/policy"
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
				"x":    {Type: "ldap"},
			},
			wantErr: []string{"target app: auth.token_env: environment variable MISSING_SCIM is empty or unset",
				"target okta: token_env: environment variable MISSING_OKTA is empty or unset",
				`target x: unknown type "ldap"`},
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
