package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// SCIMTokenEnv names the variable that carries the SCIM peer's token.
const SCIMTokenEnv = "JML_BENCH_SCIM_TOKEN"

// OktaTokenEnv names the variable that carries the Okta stand-in's token.
const OktaTokenEnv = "JML_BENCH_OKTA_TOKEN"

// SCIMPolicy is the benchmark's joiner against a SCIM target at baseURL:
// find + create with a generated password, membership in "everyone" and
// the department group, then the password hand-off to the portal (skipped
// when portalURL is empty). Movers regroup; leavers deprovision.
func SCIMPolicy(baseURL, portalURL string) string {
	handoff := ""
	if portalURL != "" {
		handoff = fmt.Sprintf(`
    - name: portal.account
      send_rest_request:
        method: POST
        url: %s/accounts
        body: '{"id":"{ScimUser.id}","login":"{ScimUser.user_name}","password":"{ScimUser.password}"}'`, portalURL)
	}
	return fmt.Sprintf(`targets:
  app:
    type: scim
    base_url: %s
    token_env: %s
password: {length: 20, lower: true, upper: true, digits: true, symbols: true}
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        password: generate
        attributes:
          user_name: '{email}'
          given_name: '{first_name}'
          department: '{department}'
    - manage_relationships:
        target: app
        create_missing: true
        add: ['everyone', 'dept-{department}']%s
mover:
  steps:
    - sync_identity:
        target: app
        attributes:
          user_name: '{email}'
          given_name: '{first_name}'
          department: '{department}'
    - manage_relationships:
        target: app
        create_missing: true
        add: ['everyone', 'dept-{department}']
leaver:
  steps:
    - deprovision_identity: {target: app, remove_groups: true}
`, baseURL, SCIMTokenEnv, handoff)
}

// SCIMPolicyLimited is SCIMPolicy with the target's rate_limit set, the way
// an operator stays under a provider's published request rate.
func SCIMPolicyLimited(baseURL, portalURL string, rateLimit float64) string {
	return strings.Replace(SCIMPolicy(baseURL, portalURL), "    type: scim\n",
		fmt.Sprintf("    type: scim\n    rate_limit: %g\n", rateLimit), 1)
}

// OktaPolicy is the joiner against Okta: one lookup by login, one create.
func OktaPolicy(orgURL string) string {
	return fmt.Sprintf(`targets:
  okta:
    type: okta
    org_url: %s
    token_env: %s
joiner:
  steps:
    - sync_identity:
        target: okta
        create_allowed: true
        attributes:
          login: '{email}'
          email: '{email}'
          first_name: '{first_name}'
          last_name: '{last_name}'
`, orgURL, OktaTokenEnv)
}

// InProcess runs the real workflows and activities in this process with
// cfg's connectors (Targets), REST sender (nil: HTTP) and identity
// directory; the harness fills in the policy, vault, client and, after
// Trust, the HTTP client. Like the worker binary it also polls its own
// host task queue (cfg.HostQueue, generated when empty), where the steps
// that read a secret it holds are sent. It is the engine-ceiling worker
// (no-op targets), the worker for targets the binary refuses outside --dev
// (plain-http Okta stand-in) and the reconcile's worker (a static
// directory).
func (c *Cluster) InProcess(policyYAML string, cfg activities.Config) (stop func()) {
	c.TB.Helper()
	path := filepath.Join(c.Dir, fmt.Sprintf("inproc-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(policyYAML), 0o600); err != nil {
		c.TB.Fatalf("harness: %v", err)
	}
	pol, err := policy.Load(path)
	if err != nil {
		c.TB.Fatalf("harness: policy: %v", err)
	}
	o := client.Options{Logger: sdklog.NewStructuredLogger(discardLogger())}
	codec.Apply(&o, c.Codec)
	wc, err := c.Dial(o)
	if err != nil {
		c.TB.Fatalf("harness: dial: %v", err)
	}
	cfg.Policy, cfg.Vault, cfg.Client = pol, secret.NewVault(time.Hour), wc
	cfg.DataConverter = codec.DataConverter(c.Codec)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = c.httpClient
	}
	// Like the worker binary, this process polls its own task queue too:
	// steps that read a secret it holds are sent there.
	if cfg.HostQueue == "" {
		cfg.HostQueue = contract.HostTaskQueue(fmt.Sprintf("bench-inproc-%d", time.Now().UnixNano()))
	}
	a := activities.New(cfg)
	w := worker.New(wc, contract.TaskQueue, worker.Options{EnableSessionWorker: true})
	workflows.Register(w, a)
	if err := w.Start(); err != nil {
		c.TB.Fatalf("harness: start worker: %v", err)
	}
	hw := worker.New(wc, cfg.HostQueue, worker.Options{})
	hw.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	if err := hw.Start(); err != nil {
		w.Stop()
		c.TB.Fatalf("harness: start host worker: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { hw.Stop(); w.Stop(); wc.Close() }) }
	c.TB.Cleanup(stop)
	return stop
}

// ReconcilePolicy is a joiner whose sync_identity renders exactly the users
// the SCIM peer preloads (scimtest.WithUsers) from ReconcileIdentities, and
// an attribute sync of that target.
func ReconcilePolicy(baseURL string) string {
	return fmt.Sprintf(`targets:
  app:
    type: scim
    base_url: %s
    token_env: %s
joiner:
  steps:
    - sync_identity:
        target: app
        create_allowed: true
        attributes:
          user_name: '{username}'
          email: '{email}'
attribute_sync: {every: 15m, targets: [app], page_size: 200}
`, baseURL, SCIMTokenEnv)
}

// ReconcileIdentities are n active identities in sync with the peer's
// preloaded users seed00001 … seedN.
func ReconcileIdentities(n int) activities.StaticDirectory {
	dir := make(activities.StaticDirectory, n)
	for i := range dir {
		dir[i] = activities.IdentityRecord{
			EmployeeID: fmt.Sprintf("E%05d", i+1),
			Status:     contract.StatusActive,
			Attributes: map[string]string{"username": fmt.Sprintf("seed%05d", i+1), "email": fmt.Sprintf("seed%d@example.com", i+1)},
		}
	}
	return dir
}

// Getenv is os.Getenv with extra KEY=VALUE pairs on top.
func Getenv(extra ...string) func(string) string {
	return func(k string) string {
		for _, kv := range extra {
			if key, v, ok := strings.Cut(kv, "="); ok && key == k {
				return v
			}
		}
		return os.Getenv(k)
	}
}

// NoREST is a REST sender that does nothing (engine ceiling).
func NoREST() activities.RESTSender {
	return activities.RESTSenderFunc(func(context.Context, activities.RESTRequest) (map[string]string, error) {
		return map[string]string{}, nil
	})
}

// LoadPolicy parses policy YAML.
func LoadPolicy(dir, yaml string) (*policy.Policy, error) {
	path := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	return policy.Load(path)
}
