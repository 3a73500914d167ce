package policy

import (
	"strings"
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

func TestCheckSyncedPassword(t *testing.T) {
	p := &Policy{Targets: map[string]Target{"okta": {Type: "okta"}, "entra": {Type: "entra"}, "jira": {Type: "scim"}}}
	group := PasswordSyncGroup{Name: "corp", Auth: "jira", Members: []string{"okta", "entra"},
		Rules: PasswordRules{MinLength: 10, MaxLength: 20, RequireLower: true, RequireUpper: true, RequireDigit: true, RequireSymbol: true}}
	type failure struct{ rule, target string }
	tests := []struct {
		pw   string
		want []failure
	}{
		{"Valid-Passw0rd!", nil},
		{"Sh0rt!a", []failure{{"min_length", ""}}},
		{"", []failure{{"min_length", ""}, {"require_lower", ""}, {"require_upper", ""}, {"require_digit", ""}, {"require_symbol", ""}, {"min_classes", "entra"}}},
		{"Way-Too-Long-Passw0rd-Here", []failure{{"max_length", ""}}},
		{"NOLOWER-PASS0RD", []failure{{"require_lower", ""}}},
		{"noupper-passw0rd", []failure{{"require_upper", ""}}},
		{"No-Digits-Here!", []failure{{"require_digit", ""}}},
		{"NoSymbols1234a", []failure{{"require_symbol", ""}}},
		{"short", []failure{{"min_length", ""}, {"require_upper", ""}, {"require_digit", ""}, {"require_symbol", ""}, {"min_classes", "entra"}}},
		{"Jane-Doe-2026!x", []failure{{"forbidden_words", ""}}},
		{"x-JDOE-2026!xA", []failure{{"forbidden_words", ""}}},
		// Entra's own rule: the group's rules have no word on Unicode.
		{"Grüße-aus-Köln-1", []failure{{"ascii_only", "entra"}}},
		{"Passw0rd-🔑-long", []failure{{"ascii_only", "entra"}}},
	}
	for _, tt := range tests {
		t.Run(tt.pw, func(t *testing.T) {
			var got []failure
			for _, f := range CheckSyncedPassword(p, group, tt.pw, []string{"jane", "jdoe", "ab"}) {
				got = append(got, failure{f.Rule, f.Target})
				if tt.pw != "" {
					assert.NotContains(t, f.Message, tt.pw)
				}
				assert.NotContains(t, strings.ToLower(f.Message), "jane")
				if f.Target != "" {
					assert.Contains(t, f.Message, "target "+f.Target)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
