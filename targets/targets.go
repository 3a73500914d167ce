// Package targets turns the targets of a policy into connectors, each built
// by its own connector from its description (connectors.Description.Build).
// Secrets are read from the environment variables the policy names, never
// from the file.
package targets

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// Options tune Build.
type Options struct {
	Getenv     func(string) string
	HTTPClient *http.Client // nil: each connector's default
	Logger     *zap.Logger
	// AllowInsecure permits plain-http URLs on loopback (dev and tests).
	AllowInsecure bool
	// Mapped are the attribute names the policy writes, by target (Build
	// fills it from the policy).
	Mapped map[string][]string
	// Operations records what connectors that do not speak HTTP (LDAP)
	// send, for a preview; nil in a run.
	Operations connectors.OperationRecorder
}

// Build creates one connector per target of p whose type builds one (okta,
// scim, entra), keyed by target name. rest and smtp targets need none: their
// steps send the requests themselves. Every configuration problem is
// reported at once.
func Build(ctx context.Context, p *policy.Policy, o Options) (map[string]any, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	out := map[string]any{}
	var problems []string
	o.Mapped = mapped(p)
	for _, name := range slices.Sorted(maps.Keys(p.Targets)) {
		c, err := BuildOne(ctx, name, p.Targets[name], o)
		if err != nil {
			problems = append(problems, fmt.Sprintf("target %s: %v", name, err))
			continue
		}
		if c != nil {
			out[name] = c
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("targets: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

// BuildOne builds the connector of one target; nil for a type without one.
func BuildOne(ctx context.Context, name string, t policy.Target, o Options) (any, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	d, ok := policy.Describe(t.Type)
	if !ok {
		if t.Type == "smtp" {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown type %q (want okta, scim, entra, active_directory, ldap, rest or smtp)", t.Type)
	}
	if d.Build == nil {
		return nil, nil
	}
	return d.Build(ctx, connectors.Config{Name: name, Values: t.Values(), Getenv: o.Getenv,
		HTTPClient: o.HTTPClient, Logger: o.Logger, AllowInsecure: o.AllowInsecure, Mapped: o.Mapped[name], Operations: o.Operations})
}

// mapped lists, by target, the attribute names the policy's sync steps
// write there, sorted.
func mapped(p *policy.Policy) map[string][]string {
	out := map[string][]string{}
	for _, f := range p.Flows() {
		for _, s := range f.Flow.Steps {
			if a := s.SyncIdentity; a != nil {
				for k := range a.Attributes {
					if !slices.Contains(out[a.Target], k) {
						out[a.Target] = append(out[a.Target], k)
					}
				}
			}
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}
