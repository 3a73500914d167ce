package activities_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

func TestAttrEqual(t *testing.T) {
	tests := []struct {
		name, want, got string
		equal           bool
	}{
		{"title", "", "", true},
		{"title", "  ", "", true}, // null == empty
		{"title", "Boss", "boss", false},
		{"user_name", "JDoe", "jdoe", true},
		{"email", "J.Doe@Example.com", "j.doe@example.com", true},
		{"emails.home", "A@x.io", "a@X.IO", true},
		{"active", "True", "true", true},
		{"department", "Sales", "Sales ", true},
		{"department", "Sales", "", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.equal, activities.AttrEqual(tt.name, tt.want, tt.got), "%s: %q vs %q", tt.name, tt.want, tt.got)
	}
}

// stubborn is a target that accepts writes of every attribute but
// ignores those in ignore: the loop guard's case. Unit test of jml's own
// logic; the SCIM connector is proven against SCIMMY elsewhere.
type stubborn struct {
	mu      sync.Mutex
	accts   map[string]connectors.Attributes
	ignore  map[string]bool
	updates int
}

func (s *stubborn) ListAccounts(_ context.Context, cursor string, _ int) ([]connectors.Account, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []connectors.Account
	for id, a := range s.accts {
		out = append(out, connectors.Account{ID: id, Active: true, Attributes: maps.Clone(a)})
	}
	return out, "", nil
}

func (s *stubborn) FindAccount(context.Context, connectors.Key) (*connectors.Account, error) {
	return nil, connectors.ErrNotFound
}

func (s *stubborn) CreateAccount(context.Context, connectors.Attributes, connectors.CreateOptions) (*connectors.Account, error) {
	return nil, fmt.Errorf("not here")
}

func (s *stubborn) UpdateAccount(_ context.Context, id string, d connectors.Diff) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates++
	for k, v := range d {
		if !s.ignore[k] {
			s.accts[id][k] = v
		}
	}
	return nil
}

// syncEnv is an activity environment whose policy syncs user_name and
// title of target "app" from the directory's username and title.
func syncEnv(target any, dir activities.StaticDirectory) (*activities.Activities, *testsuite.TestActivityEnvironment) {
	acts := activities.New(activities.Config{
		Policy: &policy.Policy{
			Targets: map[string]policy.Target{"app": {Type: "scim"}},
			Joiner: policy.Flow{Steps: []policy.Step{{SyncIdentity: &policy.SyncIdentity{Target: "app",
				Attributes: map[string]string{"user_name": "{username}", "title": "{title}"}}}}},
		},
		Targets: map[string]any{"app": target}, Directory: dir,
	})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return acts, env
}

func TestLoopGuard(t *testing.T) {
	target := &stubborn{accts: map[string]connectors.Attributes{"a1": {"user_name": "u1"}}, ignore: map[string]bool{"title": true}}
	dir := activities.StaticDirectory{{EmployeeID: "E1", Attributes: map[string]string{"username": "u1", "title": "Boss"}}}
	acts, env := syncEnv(target, dir)

	var guard []activities.GuardEntry
	run := func(n int) activities.AttrSyncPageResult {
		t.Helper()
		v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{
			Snapshot: fmt.Sprint("run-", n), Target: "app", Guard: guard})
		require.NoError(t, err)
		var res activities.AttrSyncPageResult
		require.NoError(t, v.Get(&res))
		// What the workflow does between runs: drop cleared, keep the rest.
		next := map[string]activities.GuardEntry{}
		for _, g := range guard {
			next[g.Key()] = g
		}
		for _, k := range res.Cleared {
			delete(next, k)
		}
		for _, g := range res.Guard {
			next[g.Key()] = g
		}
		guard = nil
		for _, g := range next {
			guard = append(guard, g)
		}
		return res
	}

	for i, want := range []struct{ written, stuck, problems int }{
		{1, 0, 0}, // first write
		{1, 0, 0}, // read back different once: written again
		{0, 1, 1}, // read back different twice in a row: reported, not written
		{0, 0, 0}, // reported once only, still not written
		{0, 0, 0},
	} {
		res := run(i)
		assert.Equal(t, want.written, res.Counts.AttributesWritten, "run %d", i)
		assert.Equal(t, want.stuck, res.Counts.Stuck, "run %d", i)
		assert.Len(t, res.Problems, want.problems, "run %d", i)
		assert.Equal(t, 1, res.Counts.IdentitiesChecked)
	}
	assert.Equal(t, 2, target.updates)
	for _, p := range run(9).Problems {
		assert.NotContains(t, p.Error, "Boss", "values never appear in problems")
	}

	// A new desired value is tried again; once the target takes it, the
	// guard forgets the attribute.
	dir[0].Attributes["title"] = "Chief"
	delete(target.ignore, "title")
	res := run(10)
	assert.Equal(t, 1, res.Counts.AttributesWritten)
	res = run(11)
	assert.Zero(t, res.Counts.AttributesWritten)
	assert.NotEmpty(t, res.Cleared)
	assert.Empty(t, guard)
}

func TestSharedIdentifierIsNotSynced(t *testing.T) {
	target := &stubborn{accts: map[string]connectors.Attributes{"a1": {"user_name": "jdoe", "title": "Old"}}}
	dir := activities.StaticDirectory{
		{EmployeeID: "E1", Attributes: map[string]string{"username": "jdoe", "title": "Boss"}},
		{EmployeeID: "E2", Attributes: map[string]string{"username": "JDoe", "title": "Intern"}},
		{EmployeeID: "E3", Status: contract.StatusDeprovisioned, Attributes: map[string]string{"username": "jdoe", "title": "Gone"}},
	}
	acts, env := syncEnv(target, dir)
	v, err := env.ExecuteActivity(acts.SyncAttributesPage, activities.AttrSyncPageInput{Snapshot: "s", Target: "app"})
	require.NoError(t, err)
	var res activities.AttrSyncPageResult
	require.NoError(t, v.Get(&res))
	assert.Zero(t, target.updates, "neither person's title lands on the shared account")
	assert.Equal(t, 2, res.Counts.Failures)
	assert.Zero(t, res.Counts.Unmatched)
	require.Len(t, res.Problems, 2)
	assert.Contains(t, res.Problems[0].Error, "shared with another identity")
}
