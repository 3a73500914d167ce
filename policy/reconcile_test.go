package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const reconcilePolicy = goodPolicy + `
mover:
  - when: 'department eq "Sales"'
    manage_relationships: {target: jira, add: ['sales', '{team}']}
reconcile:
  leftovers: disable
  max_group_removal_percent: 30
  targets:
    okta: {managed_groups: ['app-*', vpn], never_touch: [breakglass@acme.com, 00u1service]}
`

func TestReconcilePolicy(t *testing.T) {
	p, err := Parse("p.yaml", []byte(reconcilePolicy))
	require.NoError(t, err)
	assert.True(t, p.Reconcile.Enabled())
	assert.Equal(t, []string{"everyone", "dept-*", "app-*", "vpn"}, p.ManagedGroupPatterns("okta"))
	// A rule that can produce any name ({team}) manages nothing by itself.
	assert.Equal(t, []string{"sales"}, p.ManagedGroupPatterns("jira"))
	assert.Equal(t, []GroupRule{{When: `department eq "Sales"`, Group: "sales"}, {When: `department eq "Sales"`, Group: "{team}"}}, p.GroupRules("jira"))
	assert.InDelta(t, 30, p.GroupRemovalPercent(), 0)

	off, err := Parse("p.yaml", []byte(goodPolicy))
	require.NoError(t, err)
	assert.False(t, off.Reconcile.Enabled())
	assert.InDelta(t, DefaultGroupRemovalPercent, off.GroupRemovalPercent(), 0)
	off.Safety.MaxDestructivePercent = 5
	assert.InDelta(t, 5, off.GroupRemovalPercent(), 0)
}

func TestReconcilePolicyInvalid(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"reconcile: {orphans: delete}", `reconcile.orphans: "delete": want report or disable`},
		{"reconcile: {leftovers: Disable}", `reconcile.leftovers: "Disable": want report or disable`},
		{"reconcile: {max_group_removal_percent: 150}", "reconcile.max_group_removal_percent"},
		{"reconcile: {targets: {oktaa: {}}}", `unknown target "oktaa"`},
		{"reconcile: {targets: {okta: {managed_groups: ['*']}}}", "reconcile.targets.okta.managed_groups[0]"},
		{"reconcile: {targets: {okta: {never_touch: ['']}}}", "reconcile.targets.okta.never_touch[0]"},
	} {
		_, err := Parse("p.yaml", []byte(goodPolicy+tc.yaml+"\n"))
		require.Error(t, err, tc.yaml)
		assert.Contains(t, err.Error(), tc.want, tc.yaml)
	}
}

func TestMatchGroup(t *testing.T) {
	pats := []string{"dept-*", "all-staff", "app-*-users", "*-admins"}
	for name, want := range map[string]bool{
		"dept-sales": true, "DEPT-Sales": true, "dept-": true, "department": false,
		"all-staff": true, "All-Staff": true, "all-staff2": false,
		"app-jira-users": true, "app--users": true, "app-jira": false,
		"db-admins": true, "admins": false, "wiki": false,
	} {
		assert.Equal(t, want, MatchGroup(pats, name), name)
	}
}
