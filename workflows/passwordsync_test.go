package workflows_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/proto"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// TestPasswordSyncGroup changes one user's password across a group whose
// auth target is a SCIM app, with a second SCIM app (two accounts) and the
// Okta stand-in as members, through the real connectors.
func TestPasswordSyncGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	corp, wiki, oktaPeer := scimtest.Start(t), scimtest.Start(t), oktatest.Start(t)
	corpC, err := scim.New(ctx, scim.Config{BaseURL: corp.BaseURL, Auth: scim.Auth{BearerToken: corp.Token}})
	require.NoError(t, err)
	wikiC, err := scim.New(ctx, scim.Config{BaseURL: wiki.BaseURL, Auth: scim.Auth{BearerToken: wiki.Token}})
	require.NoError(t, err)
	oktaC, err := okta.New(ctx, okta.Config{OrgURL: oktaPeer.OrgURL, Token: secret.New(oktaPeer.Token), AllowInsecure: true})
	require.NoError(t, err)

	create := func(c connectors.AccountSyncer, attrs connectors.Attributes) string {
		a, err := c.CreateAccount(ctx, attrs, connectors.CreateOptions{Activate: true})
		require.NoError(t, err)
		return a.ID
	}
	corpID := create(corpC, connectors.Attributes{"user_name": "jane.doe"})
	wikiID := create(wikiC, connectors.Attributes{"user_name": "jane.doe"})
	wikiAdmin := create(wikiC, connectors.Attributes{"user_name": "jane.doe-admin"})
	oktaID := create(oktaC, connectors.Attributes{"login": "jane.doe@acme.test", "email": "jane.doe@acme.test", "first_name": "Jane", "last_name": "Doe"})

	pol := &policy.Policy{
		Targets: map[string]policy.Target{
			"corp": {Type: "scim", BaseURL: corp.BaseURL}, "wiki": {Type: "scim", BaseURL: wiki.BaseURL}, "okta": {Type: "okta", OrgURL: oktaPeer.OrgURL},
		},
		PasswordSyncGroups: []policy.PasswordSyncGroup{{
			Name: "corp", Auth: "corp", Members: []string{"wiki", "okta"},
			Rules: policy.PasswordRules{MinLength: 12, RequireLower: true, RequireUpper: true, RequireDigit: true, ForbiddenWords: []string{"{first_name}"}},
		}},
	}
	require.Empty(t, policy.PasswordGroupProblems(pol, pol.PasswordSyncGroups[0]))
	// The person's links are the identity's: the directory a test edits.
	jane := activities.IdentityRecord{EmployeeID: "E1", Status: contract.StatusActive,
		Attributes: map[string]string{"first_name": "Jane"},
		Accounts:   map[string]string{"corp": corpID, "wiki": wikiID, "okta": oktaID}}
	dir := &editableDirectory{recs: map[string]activities.IdentityRecord{"E1": jane}}
	link := func(accounts map[string]string) {
		rec := jane
		rec.Accounts = maps.Clone(jane.Accounts)
		maps.Copy(rec.Accounts, accounts)
		dir.set(rec)
	}
	vault := secret.NewVault(time.Hour)
	acts := activities.New(activities.Config{Policy: pol, Vault: vault, Directory: dir,
		Targets: map[string]any{"corp": corpC, "wiki": wikiC, "okta": oktaC}})

	c := temporalServer(t).GetDefaultClient()
	host := contract.HostTaskQueue("test-host")
	for _, q := range []string{contract.TaskQueue, host} {
		w := worker.New(c, q, worker.Options{EnableSessionWorker: true})
		workflows.Register(w, acts)
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}

	var passwords []string
	var changeID func(pw string, accounts map[string]string) (workflows.PasswordSyncResult, string)
	change := func(pw string, accounts map[string]string) workflows.PasswordSyncResult {
		t.Helper()
		res, _ := changeID(pw, accounts)
		return res
	}
	changeID = func(pw string, accounts map[string]string) (workflows.PasswordSyncResult, string) {
		t.Helper()
		link(accounts)
		passwords = append(passwords, pw)
		corp.Reset()
		wiki.Reset()
		oktaPeer.Reset()
		run, err := workflows.StartPasswordSync(ctx, c, vault, host,
			activities.PasswordSyncRequest{Group: "corp", EmployeeID: "E1"}, secret.New(pw))
		require.NoError(t, err)
		var res workflows.PasswordSyncResult
		require.NoError(t, run.Get(ctx, &res))
		assert.Zero(t, vault.Len(), "the password is wiped when the run ends")
		return res, run.GetID()
	}
	sum := func(pw string) string { s := sha256.Sum256([]byte(pw)); return hex.EncodeToString(s[:]) }
	noWrites := func() {
		t.Helper()
		assert.Empty(t, corp.Writes())
		assert.Empty(t, wiki.Writes())
		for _, r := range oktaPeer.Log() {
			assert.True(t, strings.HasPrefix(r, "GET "), r)
		}
	}

	t.Run("policy rejection writes nothing", func(t *testing.T) {
		for pw, rule := range map[string]string{"Sh0rt-pass": "min_length", "no-upper-case-1": "require_upper", "JANE-is-great-2026": "forbidden_words"} {
			res := change(pw, nil)
			assert.Equal(t, workflows.PasswordRejected, res.State)
			assert.Equal(t, rule, res.Rule)
			assert.Equal(t, activities.RefusedRules, res.Refusal)
			require.NotEmpty(t, res.Failures)
			assert.Equal(t, rule, res.Failures[0].Rule)
			assert.Empty(t, res.Targets)
			noWrites()
		}
	})

	t.Run("every member changed", func(t *testing.T) {
		pw := "Correct-Horse-42"
		res, id := changeID(pw, nil)
		saveHistory(t, c, id, "passwordsync.json")
		require.Equal(t, workflows.PasswordChanged, res.State, "%+v", res)
		assert.Equal(t, []workflows.PasswordOutcome{
			{Target: "corp", AccountID: corpID, Auth: true, Outcome: workflows.AccountChanged},
			{Target: "wiki", AccountID: wikiID, Outcome: workflows.AccountChanged},
			{Target: "okta", AccountID: oktaID, Outcome: workflows.AccountChanged},
		}, res.Targets)
		assert.Equal(t, "E1", res.EmployeeID)
		for _, h := range []string{corp.PasswordSHA256(corpID), wiki.PasswordSHA256(wikiID)} {
			assert.Equal(t, sum(pw), h)
		}
		assert.Contains(t, oktaPeer.Log(), "POST /api/v1/users/"+oktaID)
	})

	t.Run("a disabled account is read back and left unchanged", func(t *testing.T) {
		require.NoError(t, wikiC.Deprovision(ctx, wikiAdmin, connectors.DeprovisionOptions{}))
		before := wiki.PasswordSHA256(wikiAdmin)
		res := change("Disabled-Stays-7", map[string]string{"wiki": wikiAdmin})
		require.Equal(t, workflows.PasswordPartlyFailed, res.State, "%+v", res)
		require.Len(t, res.Targets, 3)
		assert.Equal(t, workflows.AccountChanged, res.Targets[0].Outcome)
		assert.Equal(t, workflows.AccountDisabled, res.Targets[1].Outcome)
		assert.Contains(t, res.Targets[1].Error, "disabled")
		assert.Equal(t, workflows.AccountChanged, res.Targets[2].Outcome)
		assert.Equal(t, before, wiki.PasswordSHA256(wikiAdmin), "the disabled account's password is unchanged")
		assert.Empty(t, wiki.Writes())
	})

	t.Run("auth failure stops the rest", func(t *testing.T) {
		before := wiki.PasswordSHA256(wikiID)
		res := change("Battery-Staple-77", map[string]string{"corp": "no-such-account"})
		assert.Equal(t, workflows.PasswordAuthFailed, res.State)
		require.Len(t, res.Targets, 3)
		assert.Equal(t, workflows.AccountFailed, res.Targets[0].Outcome)
		assert.Equal(t, workflows.AccountNotAttempted, res.Targets[1].Outcome)
		assert.Equal(t, workflows.AccountNotAttempted, res.Targets[2].Outcome)
		assert.Empty(t, wiki.Writes())
		assert.Empty(t, oktaPeer.Log())
		assert.Equal(t, before, wiki.PasswordSHA256(wikiID))
	})

	t.Run("one member failing leaves the others changed", func(t *testing.T) {
		pw := "Tr0ubadour-Sync"
		res := change(pw, map[string]string{"okta": "00unosuchuser"})
		assert.Equal(t, workflows.PasswordPartlyFailed, res.State)
		require.Len(t, res.Targets, 3)
		assert.Equal(t, workflows.AccountChanged, res.Targets[0].Outcome)
		assert.Equal(t, workflows.AccountChanged, res.Targets[1].Outcome)
		assert.Equal(t, workflows.AccountFailed, res.Targets[2].Outcome)
		assert.NotContains(t, res.Targets[2].Error, pw)
		assert.Equal(t, sum(pw), corp.PasswordSHA256(corpID))
		assert.Equal(t, sum(pw), wiki.PasswordSHA256(wikiID))
	})

	t.Run("history scan finds no password", func(t *testing.T) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'PasswordSync'"})
		require.NoError(t, err)
		require.Len(t, resp.GetExecutions(), 7)
		for _, e := range resp.GetExecutions() {
			it := c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				raw, err := proto.Marshal(ev)
				require.NoError(t, err)
				for _, pw := range passwords {
					for _, form := range []string{pw, base64.StdEncoding.EncodeToString([]byte(pw))} {
						assert.False(t, bytes.Contains(raw, []byte(form)), "password in history of %s", e.GetExecution().GetWorkflowId())
					}
				}
			}
		}
	})
}

// TestStartPasswordSyncRefusesBadInput changes nothing on bad input.
func TestStartPasswordSyncRefusesBadInput(t *testing.T) {
	vault := secret.NewVault(time.Hour)
	var c client.Client // never reached
	_, err := workflows.StartPasswordSync(context.Background(), c, vault, "q", activities.PasswordSyncRequest{Group: "g"}, secret.New("x"))
	assert.ErrorContains(t, err, "employee_id")
	_, err = workflows.StartPasswordSync(context.Background(), c, vault, "q", activities.PasswordSyncRequest{Group: "g", EmployeeID: "E1"}, secret.Secret{})
	assert.ErrorContains(t, err, "empty")
	assert.Zero(t, vault.Len())
}

// editableDirectory is a Directory whose records a test changes.
type editableDirectory struct {
	mu   sync.Mutex
	recs map[string]activities.IdentityRecord
}

func (d *editableDirectory) set(rec activities.IdentityRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs[rec.EmployeeID] = rec
}

func (d *editableDirectory) Identity(_ context.Context, id string) (activities.IdentityRecord, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.recs[id]
	if !ok {
		return rec, connectors.ErrNotFound
	}
	return rec, nil
}

func (d *editableDirectory) ListIdentities(context.Context, []byte, int) ([]activities.IdentityRecord, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Values(d.recs)), nil, nil
}
