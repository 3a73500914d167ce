package activities_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// An attribute sync that may rename (rename: allowed) never renames an
// account to an identifier no account can have; with a fallback it takes
// the fallback instead.
func TestAttrSyncNeverRenamesToInvalidIdentifier(t *testing.T) {
	for _, tt := range []struct {
		name      string
		fallbacks []string
		want      string
		problem   string
	}{
		{"no fallback", nil, "ann.lee", `employee E1: app: unique identifier user_name renders "."`},
		{"fallback", []string{"e{employee_id | LOWER}"}, "ee1", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := &stubborn{accts: map[string]connectors.Attributes{"a1": {"user_name": "ann.lee", "title": "Old"}}}
			step := &policy.SyncIdentity{Target: "app", Rename: policy.RenameAllowed,
				Attributes: map[string]string{"user_name": "{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}", "title": "{title}"}}
			if tt.fallbacks != nil {
				step.Fallbacks = map[string][]string{"user_name": tt.fallbacks}
			}
			acts := activities.New(activities.Config{
				Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}},
					Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: step}}}},
				Targets: map[string]any{"app": target},
				Directory: activities.StaticDirectory{{EmployeeID: "E1",
					Attributes:  map[string]string{"employee_id": "E1", "first_name": "安", "last_name": "李", "title": "New"},
					Accounts:    map[string]string{"app": "a1"},
					Identifiers: map[string]string{"app": "ann.lee"}}},
			})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(acts)
			v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{Snapshot: "s", Target: "app"})
			require.NoError(t, err)
			var res activities.AttrSyncPageResult
			require.NoError(t, v.Get(&res))
			got := target.accts["a1"]
			assert.Equal(t, tt.want, got["user_name"])
			if tt.problem != "" {
				require.Len(t, res.Problems, 1)
				assert.Contains(t, res.Problems[0].Error, tt.problem)
				assert.Equal(t, "Old", got["title"], "nothing written for that person")
				return
			}
			assert.Empty(t, res.Problems)
			assert.Equal(t, "New", got["title"])
		})
	}
}

// A linked account keeps the identifier it was created with (a fallback:
// jsmith2), and an attribute that reads {$target.<uid>} is compared with
// what it renders from that identifier, not from the first choice: the
// sync writes nothing (it used to write jsmith@ over jsmith2@).
func TestAttrSyncRendersTargetReferencesFromTheLinkedIdentifier(t *testing.T) {
	target := &stubborn{accts: map[string]connectors.Attributes{"a2": {"user_name": "jsmith2", "email": "jsmith2@corp.example"}}}
	step := &policy.SyncIdentity{Target: "app", Attributes: map[string]string{
		"user_name": "{first_name | FIRST_N, 1 | LOWER}{last_name | LOWER}", "email": "{$target.user_name}@corp.example"}}
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: step}}}},
		Targets: map[string]any{"app": target},
		Directory: activities.StaticDirectory{{EmployeeID: "E2",
			Attributes:  map[string]string{"employee_id": "E2", "first_name": "John", "last_name": "Smith"},
			Accounts:    map[string]string{"app": "a2"},
			Identifiers: map[string]string{"app": "jsmith2"}}},
	})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{Snapshot: "s", Target: "app"})
	require.NoError(t, err)
	var res activities.AttrSyncPageResult
	require.NoError(t, v.Get(&res))
	assert.Empty(t, res.Problems)
	assert.Zero(t, target.updates)
	assert.Equal(t, "jsmith2@corp.example", target.accts["a2"]["email"])
}
