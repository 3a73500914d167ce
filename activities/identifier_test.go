package activities

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
)

// A name ASCII empties must never become the account ".@example.com": the
// step fails as InvalidIdentifier naming the person and the attribute,
// nothing is written; with a fallback formatter the login is built from
// the employee ID instead.
func TestSyncIdentityRefusesInvalidIdentifier(t *testing.T) {
	ctx := t.Context()
	spec := func(fallbacks ...string) *policy.SyncIdentity {
		s := &policy.SyncIdentity{Target: "app", CreateAllowed: true,
			Attributes: map[string]string{
				"user_name":   "{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@example.com",
				"employee_id": "{employee_id}",
			}}
		if len(fallbacks) > 0 {
			s.Fallbacks = map[string][]string{"user_name": fallbacks}
		}
		return s
	}
	run := func(s *policy.SyncIdentity, attrs map[string]string) (*memtarget.Target, StepResult, error) {
		target := memtarget.New()
		a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}, Targets: map[string]any{"app": target}})
		res, err := a.SyncIdentity(ctx, StepInput{Owner: "joiner/E1/h1", Kind: policy.KindJoiner,
			Step:       PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: s}},
			Attributes: attrs})
		return target, res, err
	}
	cjk := map[string]string{"employee_id": "10042", "first_name": "小明", "last_name": "王"}

	for name, attrs := range map[string]map[string]string{
		"cjk name":  cjk,
		"quote":     {"employee_id": "10043", "first_name": "Sean", "last_name": `O"Brien`},
		"backslash": {"employee_id": "10044", "first_name": `Ann\`, "last_name": "Lee"},
		"control":   {"employee_id": "10045", "first_name": "Ann\x01", "last_name": "Lee"},
	} {
		t.Run(name, func(t *testing.T) {
			target, _, err := run(spec(), attrs)
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, ErrTypeInvalidIdentifier, app.Type())
			assert.True(t, app.NonRetryable())
			assert.Contains(t, app.Error(), "employee "+attrs["employee_id"])
			assert.Contains(t, app.Error(), "unique identifier user_name")
			assert.Empty(t, target.Accounts(), "nothing is created")
		})
	}

	t.Run("fallback formatter builds the login", func(t *testing.T) {
		target, res, err := run(spec("{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | NEXT_NUMBER}@example.com",
			"e{employee_id}@example.com"), cjk)
		require.NoError(t, err)
		assert.Equal(t, NoteCreated, res.Note)
		assert.Equal(t, "e10042@example.com", res.Identifier)
		require.Len(t, target.Accounts(), 1)
	})
}

// Zoë: zoe.smith@ is another person's account. The step creates
// zoe.smith2@ from its fallbacks, and every attribute that reads
// {$target.user_name} carries that identifier, not the first choice (the
// server refused the old rendering with 409).
func TestSyncIdentityFallbackFeedsTargetRefs(t *testing.T) {
	target := memtarget.New()
	_, err := target.CreateAccount(t.Context(), map[string]string{"user_name": "zoe.smith@example.com", "email": "zoe.smith@example.com", "employee_id": "E9"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	spec := &policy.SyncIdentity{Target: "app", CreateAllowed: true,
		Attributes: map[string]string{"user_name": "{first_name | LOWER}.{last_name | LOWER}@example.com", "email": "{$target.user_name}", "employee_id": "{employee_id}"},
		Fallbacks:  map[string][]string{"user_name": {"{first_name | LOWER}.{last_name | LOWER | NEXT_NUMBER}@example.com"}}}
	a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}, Targets: map[string]any{"app": target}})
	res, err := a.SyncIdentity(t.Context(), StepInput{Owner: "joiner/E2/h1", Kind: policy.KindJoiner,
		Step:       PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: spec}},
		Attributes: map[string]string{"employee_id": "E2", "first_name": "Zoe", "last_name": "Smith"}})
	require.NoError(t, err)
	assert.Equal(t, Created, res.Correlation)
	assert.Equal(t, "zoe.smith2@example.com", res.Identifier)
	got, ok := target.Find("user_name", "zoe.smith2@example.com")
	require.True(t, ok)
	assert.Equal(t, "zoe.smith2@example.com", got.Attrs["email"])
	assert.Equal(t, "zoe.smith2@example.com", res.Outputs["email"])
}
