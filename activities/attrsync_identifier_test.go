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
