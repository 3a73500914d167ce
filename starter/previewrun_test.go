package main

import (
	"fmt"
	"io"
	"maps"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra/graphtest"
	"github.com/jml-dev/jml/connectors/okta/oktatest"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/internal/hostile"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
	"github.com/jml-dev/jml/workflows"
)

// peerTarget is one connector's test peer as a policy target.
type peerTarget struct {
	name string
	// target is the policy's target line for app; uid and corr the unique
	// identifier and the attribute that ties an account to its person;
	// email the attribute that carries the e-mail address.
	target, uid, corr, email, entity string
	// extra attributes the target needs (Entra: display_name).
	extra string
	env   map[string]string
	// leaver steps beyond deprovision and delete (Okta: reset_password).
	leaver string
	// live reaches the peers (and trusts the portal's test certificate).
	live http.RoundTripper
	// dir is where a run and its preview find other people's links
	// (nil: the run knows none; the preview assumes them).
	dir activities.Directory
}

func scimTarget(t *testing.T, base string, env map[string]string) peerTarget {
	return peerTarget{name: "scim", target: fmt.Sprintf("{type: scim, base_url: %s, token_env: APP_TOKEN}", base),
		uid: "user_name", corr: "external_id", email: "email", entity: "ScimUser", env: env}
}

func peerTargets(t *testing.T) []peerTarget {
	scim, behind := scimtest.Start(t), scimtest.Start(t)
	px := hostile.StartSCIM(t, behind.Root(), hostile.SCIMSwitches{RejectMembersFilter: true, OmitUserGroups: true, Patch204: true})
	strict := scimTarget(t, px.Rewrite(behind.BaseURL), map[string]string{"APP_TOKEN": behind.Token})
	strict.name = "scim-hostile"
	okta := oktatest.Start(t)
	graph := graphtest.New(t, graphtest.Options{Domains: []string{"example.com"}})
	o := graph.Options()
	return []peerTarget{
		scimTarget(t, scim.BaseURL, map[string]string{"APP_TOKEN": scim.Token}),
		strict,
		{name: "okta", target: fmt.Sprintf("{type: okta, org_url: %s, token_env: OKTA_TOKEN}", okta.OrgURL),
			uid: "login", corr: "employee_id", email: "email", entity: "OktaUser", env: map[string]string{"OKTA_TOKEN": okta.Token},
			leaver: "    - reset_password: {target: app}\n"},
		{name: "entra", target: fmt.Sprintf("{type: entra, tenant: %s, client_id_env: ENTRA_ID, client_secret_env: ENTRA_SECRET, base_url: %s, authority_url: %s}",
			o.Tenant, graph.GraphURL(), graph.AuthorityURL()),
			uid: "user_name", corr: "employee_id", email: "mail", entity: "EntraUser", extra: "\n          display_name: '{first_name} {last_name}'",
			env: map[string]string{"ENTRA_ID": o.ClientID, "ENTRA_SECRET": o.ClientSecret}},
	}
}

// runPolicy covers every account action on app, REST on portal (the
// connector the other steps' outputs reach) and a webhook notify.
func runPolicy(pt peerTarget, portal string, fallbacks bool) string {
	fb := ""
	if fallbacks {
		fb = fmt.Sprintf("\n        fallbacks: {%s: ['{first_name | LOWER}.{last_name | LOWER | NEXT_NUMBER}@example.com']}", pt.uid)
	}
	attrs := fmt.Sprintf(`
        attributes:
          %s: '{first_name | LOWER}.{last_name | LOWER}@example.com'
          %s: '{$target.%s}'
          %s: '{employee_id}'
          given_name: '{first_name}'
          family_name: '{last_name}'
          department: '{department}'%s`, pt.uid, pt.email, pt.uid, pt.corr, pt.extra)
	return fmt.Sprintf(`targets:
  app: %s
  portal: {type: rest, base_url: %s, entity_type: Portal, auth: {type: none}}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate%s%s
    - create_entitlement: {target: app, name: 'team-{employee_id}'}
    - manage_relationships: {target: app, add: ['dept-{department}']}
    - {name: app.engineers, when: 'department eq "Engineering"', manage_relationships: {target: app, add: [engineers]}}
    - send_rest_request:
        target: portal
        method: POST
        url: '/accounts'
        body: '{"login":"{%s.%s}","account":"{%s.id}","password":"{%s.password}"}'
    - notify: {url: '%s/notify', body: '{"done":"{employee_id}"}'}
mover:
  steps:
    - sync_identity:
        target: app%s
    - manage_relationships: {target: app, add: ['dept-{department}']}
leaver:
  steps:
%s    - deprovision_identity: {target: app, remove_groups: true}
    - delete_identity: {target: app}
`, pt.target, portal, attrs, fb, pt.entity, pt.uid, pt.entity, pt.entity, portal, attrs, pt.leaver)
}

// stepVerdict is one step's outcome: its name and verdict.
type stepVerdict struct{ Name, Verdict string }

// outcome is what a preview or a run did: every request, normalized, and
// every step's verdict.
type outcome struct {
	calls    []string
	verdicts []stepVerdict
	// created is the ID of the account the sync step created (run: the
	// target's; preview: the recorder's).
	created string
}

// seeded is the password generator shared by a preview and its run, so a
// generated password is the same in both.
func seeded() io.Reader { return rand.New(rand.NewSource(7)) }

func previewOf(t *testing.T, p *policy.Policy, pt peerTarget, ev hr.Event, st known) outcome {
	t.Helper()
	rec := &targets.Recorder{Live: pt.live}
	pv, err := newPreviewer(t.Context(), p, rec, previewOptions{getenv: getenvOf(pt.env), insecure: true, rand: seeded(), dir: pt.dir})
	require.NoError(t, err)
	res, err := pv.run(t.Context(), ev, st)
	require.NoError(t, err)
	var o outcome
	for _, s := range res.Steps {
		for _, c := range s.Calls {
			o.calls = append(o.calls, c.Method+" "+c.URL+"\n"+c.Body)
		}
		if s.Skip || s.Verdict == verdictNotReached {
			continue
		}
		o.verdicts = append(o.verdicts, stepVerdict{s.Name, s.Verdict})
		if s.Action == policy.ActionSyncIdentity && s.Verdict == verdictCreate {
			o.created = s.Outputs["id"]
		}
	}
	return o
}

func getenvOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// runOf runs the real lifecycle workflow (Temporal's test environment)
// with the worker's activities over a recording transport in front of the
// peer, and returns what it sent and what jml then knows of the person.
func runOf(t *testing.T, p *policy.Policy, pt peerTarget, ev hr.Event, st known) (outcome, known) {
	t.Helper()
	rec := &targets.Recorder{Live: pt.live, Wire: true}
	hc := &http.Client{Transport: rec}
	conns, err := targets.Build(t.Context(), p, targets.Options{Getenv: getenvOf(pt.env), HTTPClient: hc, AllowInsecure: true})
	require.NoError(t, err)
	acts := activities.New(activities.Config{Policy: p, Targets: conns, HTTPClient: hc, Getenv: getenvOf(pt.env),
		AllowInsecureLoopback: true, Rand: seeded(), Directory: pt.dir})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	// A busy machine can hold the first workflow task past the default 1 s
	// deadlock window (cold start, local activities): not what this test checks.
	env.SetWorkerOptions(worker.Options{EnableSessionWorker: true, DeadlockDetectionTimeout: time.Minute})
	env.SetTestTimeout(time.Minute) // (wall clock: the peers answer at their pace on a busy machine)
	workflows.Register(env, acts)
	kind, rehire := kindOf(ev, st.Status)
	attrs := maps.Clone(st.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, ev.Employee)
	in := workflows.LifecycleInput{Kind: kind, EmployeeID: ev.Employee["employee_id"], EventID: ev.EventID, Attributes: attrs,
		Accounts: st.Accounts, Identifiers: st.Identifiers, Rehire: rehire, HostQueues: true}
	if kind == policy.KindMover && st.found {
		in.OldAttributes = st.Attributes
	}
	var rows []workflows.StepInfo
	query := func() {
		v, err := env.QueryWorkflow(contract.QuerySteps)
		require.NoError(t, err)
		require.NoError(t, v.Get(&rows))
	}
	// A run that stops waits for an operator: its step table is read
	// then (the test clock moves only while the run waits).
	env.RegisterDelayedCallback(query, time.Minute)
	env.ExecuteWorkflow(workflowName(kind), in)
	if env.IsWorkflowCompleted() && env.GetWorkflowError() == nil {
		query()
	}
	var o outcome
	for _, c := range rec.Calls() {
		o.calls = append(o.calls, c.Method+" "+c.URL+"\n"+strings.TrimSuffix(c.Body, "\n"))
	}
	for _, r := range rows {
		if r.Action == "requests.revoke" {
			continue // the leaver's pseudo-step for access grants: no policy step, nothing a preview shows
		}
		if vd := runVerdict(r); vd != "" {
			o.verdicts = append(o.verdicts, stepVerdict{r.Name, vd})
		}
	}
	after := st
	if env.IsWorkflowCompleted() && env.GetWorkflowError() == nil {
		var res workflows.LifecycleResult
		require.NoError(t, env.GetWorkflowResult(&res))
		after = known{IdentityRecord: activities.IdentityRecord{EmployeeID: in.EmployeeID, Attributes: res.Attributes,
			Accounts: res.Accounts, Identifiers: res.Identifiers}, found: true}
		if kind == policy.KindJoiner && st.Accounts["app"] == "" {
			o.created = res.Accounts["app"]
		}
	}
	return o, after
}

// runVerdict reads a run's step row as a preview verdict.
func runVerdict(r workflows.StepInfo) string {
	switch r.State {
	case workflows.StepFailed:
		if strings.HasPrefix(r.LastError, activities.ErrTypeConflict+":") {
			return verdictConflict
		}
		return verdictFail
	case workflows.StepDone:
		switch {
		case strings.HasPrefix(r.Note, activities.Created+":"):
			return verdictCreate
		case strings.HasPrefix(r.Note, activities.Linked+":"), strings.HasPrefix(r.Note, activities.Adopted+":"):
			return verdictLink
		}
		return verdictRun
	}
	return ""
}

var peerHost = regexp.MustCompile(`https?://127\.0\.0\.1:[0-9]+`)

// wire is o's requests as compared: the peer's host and the created
// account's ID (the target's in a run, the recorder's in a preview) named.
func (o outcome) wire() []string {
	out := make([]string, 0, len(o.calls))
	for _, c := range o.calls {
		if u, err := url.PathUnescape(c); err == nil {
			c = u
		}
		c = peerHost.ReplaceAllString(c, "<peer>")
		if o.created != "" {
			c = strings.ReplaceAll(c, o.created, "<created>")
		}
		out = append(out, c)
	}
	return out
}

func portalPeer(t *testing.T) (string, http.RoundTripper) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"acc-1"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client().Transport
}

// holdIdentifier creates zoe.smith@example.com for another person (E9).
func holdIdentifier(t *testing.T, p *policy.Policy, pt peerTarget) {
	t.Helper()
	c, err := targets.BuildOne(t.Context(), "app", p.Targets["app"], targets.Options{Getenv: getenvOf(pt.env), AllowInsecure: true})
	require.NoError(t, err)
	pw := secret.New("Held-Pa55word!x9")
	attrs := connectors.Attributes{pt.uid: "zoe.smith@example.com", pt.corr: "E9", "given_name": "Zoe", "family_name": "Smith", pt.email: "zoe.smith@example.com"}
	if pt.extra != "" {
		attrs["display_name"] = "Zoe Smith"
	}
	_, err = c.(connectors.AccountSyncer).CreateAccount(t.Context(), attrs, connectors.CreateOptions{Activate: true, Password: &pw})
	require.NoError(t, err)
}

// ensureGroups creates the groups the policy grants (they exist at the
// target before any run).
func ensureGroups(t *testing.T, p *policy.Policy, pt peerTarget, names ...string) {
	t.Helper()
	c, err := targets.BuildOne(t.Context(), "app", p.Targets["app"], targets.Options{Getenv: getenvOf(pt.env), AllowInsecure: true})
	require.NoError(t, err)
	for _, n := range names {
		_, err := c.(connectors.EntitlementCreator).EnsureGroup(t.Context(), connectors.Group{Name: n})
		require.NoError(t, err)
	}
}

// gaps are the cases where a preview cannot equal the run, each with why;
// they are skipped by name so the rest stays proven.
//
// Behind the strict proxy (users' groups omitted, /Schemas still declaring
// them) the run reads back the account it created, finds no groups
// attribute and lists /Groups; a plain SCIMMY returns the new account's
// groups and the run stops there. The preview's account was never created:
// whether the target would show its groups can be seen only on a user that
// has some, and here none has (no user at all for the new person; Zoë has
// no groups, and SCIMMY too omits groups from a user without any). The
// preview's read of the unsent account is answered 404 by the target and
// ends there, which is the run on a target that returns groups.
var gaps = map[string]string{
	"scim-hostile/new person":                 "the run lists /Groups after reading back the account it created, which shows no groups; the preview cannot know that the target omits users' groups (see comment)",
	"scim-hostile/identifier held, fallbacks": "as scim-hostile/new person",
}

// TestPreviewEqualsRun: for every connector and every action, for a new
// person, the same person moved (from what jml stored after the joiner), the
// leaver, and a person whose identifier another person holds (Zoë), the
// preview sends exactly the requests the run sends (writes recorded, never
// sent) and its verdict per step is the run's outcome.
func TestPreviewEqualsRun(t *testing.T) {
	portal, live := portalPeer(t)
	for _, pt := range peerTargets(t) {
		pt.live = live
		t.Run(pt.name, func(t *testing.T) {
			p, err := policy.Parse("run.yaml", []byte(runPolicy(pt, portal, false)))
			require.NoError(t, err)
			ensureGroups(t, p, pt, "dept-Engineering", "dept-Sales", "engineers")
			// compare previews ev and then runs it; ok is false for a known
			// gap, whose assertions are not made (the caller skips).
			compare := func(t *testing.T, ev hr.Event, st known) (pre outcome, after known, ok bool) {
				t.Helper()
				pre = previewOf(t, p, pt, ev, st) // first: the preview writes nothing
				run, after := runOf(t, p, pt, ev, st)
				if why, gap := gaps[pt.name+"/"+strings.ReplaceAll(strings.TrimPrefix(t.Name(), "TestPreviewEqualsRun/"+pt.name+"/"), "_", " ")]; gap {
					t.Log("known gap: " + why)
					return pre, after, false
				}
				require.NotEmpty(t, run.calls)
				assert.Equal(t, run.wire(), pre.wire(), "the preview's requests are the run's, byte for byte")
				assert.Equal(t, run.verdicts, pre.verdicts, "the preview's verdicts are the run's outcomes")
				return pre, after, true
			}
			emp := func(id, dept string) map[string]string {
				return map[string]string{"employee_id": id, "first_name": "Ada", "last_name": "Lovelace", "department": dept}
			}
			now := time.Now().UTC()

			var st known
			t.Run("new person", func(t *testing.T) {
				pre, after, ok := compare(t, hr.Event{EventID: "h1", Type: hr.Hire, EffectiveAt: now, Employee: emp("E1", "Engineering")}, known{})
				st = after
				if !ok {
					t.SkipNow()
				}
				assert.Equal(t, verdictCreate, pre.verdicts[0].Verdict)
			})
			require.True(t, st.found, "the joiner completed")
			t.Run("mover", func(t *testing.T) {
				pre, after, ok := compare(t, hr.Event{EventID: "c1", Type: hr.Change, EffectiveAt: now, Employee: emp("E1", "Sales")}, st)
				st = after
				if !ok {
					t.SkipNow()
				}
				assert.Equal(t, verdictLink, pre.verdicts[0].Verdict)
				assert.Contains(t, strings.Join(pre.wire(), "\n"), "Sales", "the mover's write")
				// Engineering → Sales: the engineers grant followed its
				// condition, in the preview as in the run.
				assert.Contains(t, pre.verdicts, stepVerdict{"app.revoke", verdictRun})
			})
			t.Run("leaver", func(t *testing.T) {
				pre, _, ok := compare(t, hr.Event{EventID: "t1", Type: hr.Terminate, EffectiveAt: now, Employee: emp("E1", "Sales")}, st)
				if !ok {
					t.SkipNow()
				}
				assert.NotEmpty(t, pre.verdicts)
				for _, v := range pre.verdicts {
					assert.Equal(t, verdictRun, v.Verdict, v.Name)
				}
			})

			// Zoë: zoe.smith@ is another person's account (a different
			// external ID). Without fallbacks the run stops with Conflict,
			// and so does the preview.
			zoe := func(id string) hr.Event {
				return hr.Event{EventID: "h-" + id, Type: hr.Hire, EffectiveAt: now,
					Employee: map[string]string{"employee_id": id, "first_name": "Zoe", "last_name": "Smith", "department": "Sales"}}
			}
			holdIdentifier(t, p, pt)
			t.Run("identifier held", func(t *testing.T) {
				pre, _, ok := compare(t, zoe("E2"), known{})
				if !ok {
					t.SkipNow()
				}
				require.NotEmpty(t, pre.verdicts)
				assert.Equal(t, verdictConflict, pre.verdicts[0].Verdict)
			})
			t.Run("identifier held, fallbacks", func(t *testing.T) {
				fp, err := policy.Parse("run.yaml", []byte(runPolicy(pt, portal, true)))
				require.NoError(t, err)
				p = fp
				pre, _, ok := compare(t, zoe("E3"), known{})
				if !ok {
					t.SkipNow()
				}
				require.NotEmpty(t, pre.verdicts)
				assert.Equal(t, verdictCreate, pre.verdicts[0].Verdict)
				create := ""
				for _, c := range pre.wire() {
					if strings.HasPrefix(c, "POST ") && strings.Contains(c, "zoe.smith2@example.com") {
						create = c // the account's create, before the portal's POST
						break
					}
				}
				require.NotEmpty(t, create, "the preview creates zoe.smith2@")
				assert.NotContains(t, create, `"zoe.smith@example.com"`, "the e-mail is the identifier used, not the first choice")
			})
		})
	}
}

// A person jml knows starts from the identity's record (links, identifiers,
// attributes); one it does not know starts from nothing.
func TestPreviewStoredState(t *testing.T) {
	dir := activities.StaticDirectory{{EmployeeID: "E1", Attributes: map[string]string{"department": "Eng"},
		Accounts: map[string]string{"app": "u-1"}, Identifiers: map[string]string{"app": "ada2@example.com"}}}
	st, err := storedState(t.Context(), dir, "E1")
	require.NoError(t, err)
	assert.True(t, st.found)
	assert.Equal(t, "u-1", st.Accounts["app"])
	assert.Equal(t, "ada2@example.com", st.Identifiers["app"])
	st, err = storedState(t.Context(), dir, "E404")
	require.NoError(t, err)
	assert.False(t, st.found)
	assert.Empty(t, st.Accounts)
}
