package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const groupTargets = `targets:
  okta: {type: okta, org_url: "https://o.example", token_env: T}
  jira: {type: scim, base_url: "https://j.example", token_env: T}
  wiki: {type: scim, base_url: "https://w.example", token_env: T, entity_type: WikiUser}
  hook: {type: rest, base_url: "https://h.example"}
`

func TestPasswordSyncGroupValidation(t *testing.T) {
	tests := []struct {
		name, group, want string // want "" means valid
	}{
		{"meets okta's rules", `{name: corp, auth: okta, members: [jira, wiki], rules: {min_length: 12, require_lower: true, require_upper: true, require_digit: true, forbidden_words: ["{first_name}"]}}`, ""},
		{"too short for okta", `{name: corp, auth: okta, members: [jira], rules: {min_length: 6, require_lower: true, require_upper: true, require_digit: true}}`, "min_length 6 is below the 8 characters okta target okta requires"},
		{"okta needs a digit", `{name: corp, auth: okta, members: [jira], rules: {min_length: 10, require_lower: true, require_upper: true}}`, "require_digit must be set: okta target okta requires it"},
		{"one target", `{name: corp, auth: jira, members: [jira], rules: {min_length: 10}}`, "at least two targets"},
		{"rest cannot set passwords", `{name: corp, auth: jira, members: [hook], rules: {min_length: 10}}`, "target hook (rest) cannot set passwords"},
		{"impossible rules", `{name: corp, auth: jira, members: [wiki], rules: {min_length: 4, max_length: 3, require_lower: true, require_upper: true, require_digit: true, require_symbol: true}}`, "max_length 3 leaves no valid password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(groupTargets+"password_sync_groups:\n  - "+tt.group+"\n"))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestCheckPassword(t *testing.T) {
	rules := PasswordRules{MinLength: 10, MaxLength: 20, RequireLower: true, RequireUpper: true, RequireDigit: true, RequireSymbol: true}
	tests := []struct {
		pw, rule string
	}{
		{"Valid-Passw0rd!", ""},
		{"Sh0rt!a", "min_length"},
		{"", "min_length"},
		{"Way-Too-Long-Passw0rd-Here", "max_length"},
		{"NOLOWER-PASS0RD", "require_lower"},
		{"noupper-passw0rd", "require_upper"},
		{"No-Digits-Here!", "require_digit"},
		{"NoSymbols1234a", "require_symbol"},
		{"Jane-Doe-2026!x", "forbidden_words"},
		{"x-JDOE-2026!xA", "forbidden_words"},
	}
	for _, tt := range tests {
		rule, msg := CheckPassword(rules, tt.pw, []string{"jane", "jdoe", "ab"})
		assert.Equal(t, tt.rule, rule, tt.pw)
		if tt.pw != "" {
			assert.NotContains(t, msg, tt.pw)
		}
		assert.NotContains(t, msg, "jane")
	}
}
