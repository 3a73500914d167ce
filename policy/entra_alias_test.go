package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 33 item 10: docs/policy.md says user_name is an alias of
// user_principal_name on Entra. Both ways of writing it validate, and the
// unique identifier is the name the step writes.
func TestEntraUserNameAlias(t *testing.T) {
	for _, tc := range []struct{ name, uid, attr string }{
		{"default identifier, attribute user_principal_name", "", "user_principal_name"},
		{"identifier user_principal_name, attribute user_name", "user_principal_name", "user_name"},
		{"identifier user_name, attribute user_principal_name", "user_name", "user_principal_name"},
		{"default identifier, attribute user_name", "", "user_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := ""
			if tc.uid != "" {
				uid = "\n        unique_identifier: " + tc.uid
			}
			src := `targets:
  entra: {type: entra, tenant: contoso.com, client_id_env: ENTRA_ID, client_secret_env: ENTRA_SECRET}
joiner:
  steps:
    - sync_identity:
        target: entra
        create_allowed: true` + uid + `
        attributes:
          ` + tc.attr + `: '{email}'
          display_name: '{first_name}'
`
			p, err := Parse("p.yaml", []byte(src))
			require.NoError(t, err)
			assert.Equal(t, tc.attr, p.UniqueIdentifier(*p.Joiner.Steps[0].SyncIdentity))
		})
	}
}
