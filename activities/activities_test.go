package activities

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/internal/e2e/memtarget"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

func TestGroupDiff(t *testing.T) {
	add, remove := GroupDiff([]string{"everyone", "dept-eng"}, []string{"everyone", "dept-sales"})
	assert.Equal(t, []string{"dept-sales"}, add)
	assert.Equal(t, []string{"dept-eng"}, remove)
}

func TestGeneratePassword(t *testing.T) {
	pw, err := GeneratePassword(policy.PasswordPolicy{Length: 24, Lower: true, Upper: true, Digits: true, Symbols: true, ExcludeSimilar: true}, nil)
	require.NoError(t, err)
	v := pw.Reveal()
	assert.Len(t, v, 24)
	for _, class := range []string{lowerChars, upperChars, digitChars, symbolChars} {
		assert.True(t, strings.ContainsAny(v, class), "has a character of %q", class)
	}
	assert.False(t, strings.ContainsAny(v, similarChars))
	_, err = GeneratePassword(policy.PasswordPolicy{Length: 2, Lower: true, Upper: true, Digits: true}, nil)
	assert.Error(t, err)
}

func TestToTemporalClassifiesAndRedacts(t *testing.T) {
	pw := secret.New(`p"w/1+x`)
	var app *temporal.ApplicationError

	b64 := base64.StdEncoding.EncodeToString([]byte(pw.Reveal()))
	err := toTemporal(connectors.Permanent("ScimValidation", errors.New(`bad password "p\"w/1+x" and `+b64)), pw)
	require.ErrorAs(t, err, &app)
	assert.True(t, app.NonRetryable())
	assert.Equal(t, "ScimValidation", app.Type())
	assert.NotContains(t, app.Error(), `p\"w/1+x`)
	assert.NotContains(t, app.Error(), b64)

	delays := map[time.Duration]bool{}
	for range 20 {
		err = toTemporal(&connectors.RateLimitedError{RetryAfter: 7 * time.Second, Err: errors.New("429")})
		require.ErrorAs(t, err, &app)
		assert.False(t, app.NonRetryable())
		assert.GreaterOrEqual(t, app.NextRetryDelay(), 7*time.Second, "never before the server's reset")
		assert.LessOrEqual(t, app.NextRetryDelay(), 7*time.Second+3500*time.Millisecond)
		delays[app.NextRetryDelay()] = true
	}
	assert.Greater(t, len(delays), 1, "throttled runs do not retry in lockstep")

	err = toTemporal(connectors.Transient(errors.New("503")))
	require.ErrorAs(t, err, &app)
	assert.False(t, app.NonRetryable())
}

func TestSchedule(t *testing.T) {
	a := New(Config{Policy: &policy.Policy{
		Joiner: policy.Flow{Offset: "-3d"},
		Leaver: policy.Flow{LocalTime: "17:00"},
	}})
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s, err := a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindJoiner, EffectiveAt: start})
	require.NoError(t, err)
	assert.Equal(t, start.Add(-72*time.Hour), s.RunAt)
	assert.Equal(t, start, s.EnableAt)
	s, err = a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindLeaver, EffectiveAt: start.Add(12 * time.Hour), Attributes: map[string]string{"time_zone": "Europe/Paris"}})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC), s.RunAt)
	_, err = a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindLeaver, EffectiveAt: start, Attributes: map[string]string{"time_zone": "Mars/Base"}})
	assert.Error(t, err)
}

func TestSyncIdentityFallbackWhenIdentifierIsAnotherPersons(t *testing.T) {
	target := memtarget.New()
	ctx := t.Context()
	// jsmith belongs to someone else (another employee_id).
	_, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "jsmith", "employee_id": "E9"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	spec := &policy.SyncIdentity{Target: "app", CreateAllowed: true,
		Attributes: map[string]string{"user_name": "{first_name | FIRST_N, 1 | LOWER}{last_name | LOWER}", "employee_id": "{employee_id}"},
		Fallbacks:  map[string][]string{"user_name": {"{first_name | FIRST_N, 1 | LOWER}{last_name | LOWER | NEXT_NUMBER}"}},
	}
	a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}, Targets: map[string]any{"app": target}})
	in := StepInput{Owner: "joiner/E1/h1", Kind: policy.KindJoiner,
		Step:       PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: spec}},
		Attributes: map[string]string{"employee_id": "E1", "first_name": "John", "last_name": "Smith"}}

	res, err := a.SyncIdentity(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, NoteCreated, res.Note)
	assert.Equal(t, "jsmith2", res.Outputs["user_name"])
	// A rerun (result lost) finds its own jsmith2 rather than making jsmith3.
	res2, err := a.SyncIdentity(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, res.AccountID, res2.AccountID)
	assert.Len(t, target.Accounts(), 2)

	// Without fallbacks the step refuses to adopt another person's account.
	spec.Fallbacks = nil
	in.Attributes["employee_id"] = "E3"
	_, err = a.SyncIdentity(ctx, in)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, ErrTypeConflict, app.Type())
	assert.True(t, app.NonRetryable())
}

func TestPlanFromPolicy(t *testing.T) {
	p := &policy.Policy{
		Targets: map[string]policy.Target{"app": {Type: "scim"}},
		Leaver: policy.Flow{Steps: []policy.Step{
			{DeprovisionIdentity: &policy.DeprovisionIdentity{Target: "app"}},
			{When: `department eq "eng"`, DeleteIdentity: &policy.DeleteIdentity{Target: "app", After: "30d"}},
			{Name: "ops", Notify: &policy.RESTRequest{URL: "https://ops.test", On: []string{"needs_attention"}}},
		}},
		Safety: policy.Safety{MaxDestructivePerHour: 25, MaxDestructivePercent: 5},
	}
	a := New(Config{Policy: p})
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(a.Plan)
	for _, dept := range []string{"eng", "sales"} {
		v, err := env.ExecuteActivity(a.Plan, PlanInput{Kind: policy.KindLeaver, EventID: "t1", Attributes: map[string]string{"employee_id": "E1", "department": dept}})
		require.NoError(t, err)
		var plan Plan
		require.NoError(t, v.Get(&plan))
		require.Len(t, plan.Steps, 3)
		assert.True(t, plan.Limited())
		assert.True(t, plan.Steps[0].Destructive)
		assert.Equal(t, 30*24*time.Hour, plan.Steps[1].Delay)
		assert.Equal(t, dept != "eng", plan.Steps[1].SkipReason != "", dept)
		assert.True(t, plan.Steps[2].OnNeedsAttention)
		assert.False(t, plan.Steps[2].OnCompleted)
	}
}

func TestPermitLimit(t *testing.T) {
	for _, tc := range []struct {
		req  PermitRequest
		want int
	}{
		{PermitRequest{MaxPerHour: 25}, 25},
		{PermitRequest{MaxPerHour: 25, MaxPercent: 5, Population: 5000}, 25},
		{PermitRequest{MaxPerHour: 25, MaxPercent: 5, Population: 200}, 10},
		{PermitRequest{MaxPercent: 5, Population: 10}, 1},
		{PermitRequest{MaxPercent: 5}, 0}, // population unknown: no limit from the percentage
	} {
		assert.Equal(t, tc.want, tc.req.Limit(), "%+v", tc.req)
	}
}

func TestJoinerAdoptsWithoutTouchingThePassword(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rerun     bool
		onExist   string
		wantNote  string
		wantReset bool
	}{
		{"adopted keeps its password", false, "", NoteAdopted, false},
		{"policy says set_password", false, policy.SetPassword, NotePasswordSetByPolicy, true},
		{"own earlier attempt may have created it", true, "", NotePasswordSet, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := memtarget.New()
			ctx := t.Context()
			old := secret.New("Old-Passw0rd-that-works")
			_, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "jdoe", "employee_id": "E1"}, connectors.CreateOptions{Activate: true, Password: &old})
			require.NoError(t, err)
			spec := &policy.SyncIdentity{Target: "app", CreateAllowed: true, Password: "generate", OnExistingAccount: tc.onExist,
				Attributes: map[string]string{"user_name": "jdoe", "employee_id": "{employee_id}"}}
			a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}},
				Password: policy.PasswordPolicy{Length: 16, Lower: true, Upper: true, Digits: true}}, Targets: map[string]any{"app": target}})
			res, err := a.SyncIdentity(ctx, StepInput{Owner: "joiner/E1/h1", Kind: policy.KindJoiner, Rerun: tc.rerun,
				Step:       PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: spec}},
				Attributes: map[string]string{"employee_id": "E1"}})
			require.NoError(t, err)
			assert.Equal(t, Adopted, res.Correlation)
			assert.Equal(t, tc.wantNote, res.Note)
			assert.Equal(t, !tc.wantReset, target.CheckPassword("jdoe", old.Reveal()), "the old password still works")
			assert.Equal(t, tc.wantReset, len(res.Secrets) == 1, "a password is handed on only when one was set")
		})
	}
}

func TestLostTemporaryPasswordIsReissuedAsTemporary(t *testing.T) {
	target := memtarget.New()
	ctx := t.Context()
	acct, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "jdoe"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "okta"}},
		Password: policy.PasswordPolicy{Length: 16, Lower: true, Upper: true, Digits: true}}, Targets: map[string]any{"app": target}})
	// The handle names an entry of a worker that died: it resolves nowhere.
	lost := SecretRef{Handle: "vault:gone", Target: "app", AccountID: acct.ID}
	for _, tc := range []struct {
		temporary bool
		want      string
	}{{true, "reset_password"}, {false, "set_password"}} {
		before := len(target.Calls())
		ref := lost
		ref.Temporary = tc.temporary
		s, err := a.reissue(ctx, a.cfg.Targets["app"], ref)
		require.NoError(t, err)
		assert.False(t, s.Empty())
		calls := target.Calls()[before:]
		assert.Equal(t, []string{tc.want}, calls, "temporary=%t", tc.temporary)
	}
}

type groupRecorder struct{ got []connectors.Group }

func (r *groupRecorder) EnsureGroup(_ context.Context, g connectors.Group) (*connectors.Group, error) {
	r.got = append(r.got, g)
	g.ID = "g1"
	return &g, nil
}

// The description is a template like the name: the group says whose it is,
// not "{department}".
func TestCreateEntitlementRendersDescription(t *testing.T) {
	target := &groupRecorder{}
	a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}, Targets: map[string]any{"app": target}})
	spec := &policy.CreateEntitlement{Target: "app", Name: "team-{department}", Description: "Everyone in {department}"}
	_, err := a.CreateEntitlement(t.Context(), StepInput{Owner: "joiner/E1/h1", Kind: policy.KindJoiner,
		Step:       PlannedStep{Name: "app.create_entitlement", Action: policy.ActionCreateEntitlement, Target: "app", Spec: policy.Step{CreateEntitlement: spec}},
		Attributes: map[string]string{"employee_id": "E1", "department": "Sales"}})
	require.NoError(t, err)
	require.Len(t, target.got, 1)
	assert.Equal(t, connectors.Group{Name: "team-Sales", Description: "Everyone in Sales"}, target.got[0])
}

// correlating is a target with its own correlation key (LDAP employeeID).
type correlating struct{ *memtarget.Target }

func (c correlating) Correlate(ctx context.Context, attrs connectors.Attributes) (*connectors.Account, error) {
	a, ok := c.Find("employee_id", attrs["employee_id"])
	if !ok || attrs["employee_id"] == "" {
		return nil, connectors.ErrNotFound
	}
	return c.ReadAccount(ctx, a.ID)
}

// TestSyncIdentityCorrelatesByTheTargetsKeyFirst: an account with the
// person's employee ID is theirs whatever its login (AD: employeeID, then
// sAMAccountName): adopted, not a second account under the new login.
func TestSyncIdentityCorrelatesByTheTargetsKeyFirst(t *testing.T) {
	target := correlating{memtarget.New()}
	ctx := t.Context()
	old, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "john.smith.legacy", "employee_id": "E1"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	spec := &policy.SyncIdentity{Target: "app", CreateAllowed: true,
		Attributes: map[string]string{"user_name": "{first_name | FIRST_N, 1 | LOWER}{last_name | LOWER}", "employee_id": "{employee_id}", "title": "{title}"}}
	a := New(Config{Policy: &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}, Targets: map[string]any{"app": target}})
	res, err := a.SyncIdentity(ctx, StepInput{Owner: "joiner/E1/h1", Kind: policy.KindJoiner,
		Step:       PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: spec}},
		Attributes: map[string]string{"employee_id": "E1", "first_name": "John", "last_name": "Smith", "title": "Rep"}})
	require.NoError(t, err)
	assert.Equal(t, Adopted, res.Correlation)
	assert.Equal(t, old.ID, res.AccountID)
	assert.Equal(t, "john.smith.legacy", res.Outputs["user_name"], "the account keeps its login")
	assert.Len(t, target.Accounts(), 1, "no jsmith created")
	got, _ := target.Find("employee_id", "E1")
	assert.Equal(t, "Rep", got.Attrs["title"])
}

// TestRetriedMoverRecordsTheChangeItFindsMade: a mover's step whose
// earlier attempt made HR's change and lost its result (timed out, its
// worker killed) finds nothing left to write; its effects still name the
// change, once, saying an earlier attempt may have made it. A retry with
// no HR change to find records none.
func TestRetriedMoverRecordsTheChangeItFindsMade(t *testing.T) {
	ctx := t.Context()
	target := memtarget.New()
	acct, err := target.CreateAccount(ctx, connectors.Attributes{"user_name": "jdoe", "department": "eng"}, connectors.CreateOptions{Activate: true})
	require.NoError(t, err)
	for _, g := range []string{"everyone", "dept-eng"} {
		require.NoError(t, target.AddMember(ctx, g, acct.ID))
	}
	p := &policy.Policy{Targets: map[string]policy.Target{"app": {Type: "scim"}}}
	a := New(Config{Policy: p, Targets: map[string]any{"app": target}})
	sync := PlannedStep{Name: "app.sync_identity", Action: policy.ActionSyncIdentity, Target: "app", Spec: policy.Step{SyncIdentity: &policy.SyncIdentity{
		Target: "app", Attributes: map[string]string{"user_name": "jdoe", "department": "{department}"}}}}
	groups := PlannedStep{Name: "app.manage_relationships", Action: policy.ActionManageRelationships, Target: "app", Spec: policy.Step{
		ManageRelationships: &policy.ManageRelationships{Target: "app", Add: []string{"everyone", "dept-{department}"}}}}
	run := func(st PlannedStep, rerun bool, old, now string) []string {
		t.Helper()
		in := StepInput{Owner: "mover/E1/c1", Kind: policy.KindMover, Rerun: rerun, Step: st, Accounts: map[string]string{"app": acct.ID},
			Attributes: map[string]string{"department": now}, OldAttributes: map[string]string{"department": old}}
		var res StepResult
		if st.Action == policy.ActionSyncIdentity {
			res, err = a.SyncIdentity(ctx, in)
		} else {
			res, err = a.ManageRelationships(ctx, in)
		}
		require.NoError(t, err)
		var out []string
		for _, e := range st.AuditEffects(res) {
			if e.Action == audit.AccountLinked {
				continue
			}
			s := e.Action + " " + e.Group
			for k := range e.Attributes {
				s += k
			}
			if strings.Contains(e.Detail, NoteEarlierAttempt) {
				s += " (earlier attempt)"
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	// The first attempt writes and reports.
	assert.Equal(t, []string{"account.updated department"}, run(sync, false, "eng", "sales"))
	assert.Equal(t, []string{"group.added dept-sales", "group.removed dept-eng"}, run(groups, false, "eng", "sales"))
	// Its result lost, the retry finds the change made.
	assert.Equal(t, []string{"account.updated department (earlier attempt)"}, run(sync, true, "eng", "sales"))
	assert.Equal(t, []string{"group.added dept-sales (earlier attempt)", "group.removed dept-eng (earlier attempt)"}, run(groups, true, "eng", "sales"))
	// A retry of a run HR changed nothing for records no change.
	assert.Empty(t, run(sync, true, "sales", "sales"))
	assert.Equal(t, []string{"group.unchanged "}, run(groups, true, "sales", "sales"))
}
