package sources

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// guard keeps an Okta source from reading back what jml wrote: a change
// is compared with the identity's last known attributes (the Identity
// workflow's record), and a field that holds exactly what the policy's
// sync_identity steps write to the same Okta org is jml's own write, not
// HR's word.
type guard struct {
	pol    *policy.Policy
	dir    activities.Directory
	tables map[string]*transform.Table
	steps  []policy.SyncIdentity // writing to the source's org
}

func (p *Poller) guard(src policy.Source) *guard {
	if p.cfg.Directory == nil {
		return nil
	}
	tables, _ := p.cfg.Policy.Tables()
	g := &guard{pol: p.cfg.Policy, dir: p.cfg.Directory, tables: tables}
	for _, f := range p.cfg.Policy.GrantingFlows() {
		for _, s := range f.Steps {
			si := s.SyncIdentity
			if si == nil {
				continue
			}
			if t := p.cfg.Policy.Targets[si.Target]; t.Type == "okta" && sameOrg(t.OrgURL, src.OrgURL) {
				g.steps = append(g.steps, *si)
			}
		}
	}
	return g
}

func sameOrg(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host)
}

// errDefer is a user whose identity is in its first run: it has
// published no attributes yet, so jml's writes cannot be told from HR's.
var errDefer = errors.New("identity not published yet")

// check returns c with jml's own writes taken out: its Type is "" when
// nothing is left for HR to say (the state still moves). errDefer: look
// at this user again at the next poll.
func (g *guard) check(ctx context.Context, m *mapper, raw map[string]string, c change, old entry) (change, error) {
	rec, err := g.dir.Identity(ctx, c.EmployeeID)
	if errors.Is(err, connectors.ErrNotFound) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if len(rec.Attributes) == 0 && rec.Status == "" {
		return c, errDefer
	}
	left := rec.Status == contract.StatusDeprovisioned
	if c.Type == hr.Terminate {
		if left {
			c.Type = "" // jml's leaver disabled the account
		}
		return c, nil
	}
	// Fields holding what jml writes for this identity carry no news.
	written := map[string]string{}
	for _, s := range g.steps {
		vals, err := policy.RenderAttributes(g.pol, s, &transform.Env{Attrs: rec.Attributes, Lookups: g.tables})
		if err != nil {
			continue // not renderable without a run's outputs: no guard from it
		}
		for k, v := range vals {
			written[okta.ProfileName(k)] = v
		}
	}
	eff := maps.Clone(c.Attrs)
	names := slices.Collect(maps.Keys(c.Attrs))
	if m.attrs != nil {
		names = slices.Collect(maps.Keys(m.attrs))
	}
	for _, attr := range names {
		fs := m.fields(attr)
		if m.attrs == nil {
			fs = []string{okta.ProfileName(attr)}
		}
		ours, all := false, len(fs) > 0
		for _, f := range fs {
			if v, ok := written[f]; ok {
				ours = true
				all = all && activities.AttrEqual(attr, v, raw[f])
			}
		}
		if ours && all {
			if v := rec.Attributes[attr]; v != "" {
				eff[attr] = v
			} else {
				delete(eff, attr)
			}
		}
	}
	c.Attrs, c.Entry.Digest = eff, digest(eff)
	if left {
		return c, nil // a hire or rehire of someone who left
	}
	same := true
	for _, k := range append(names, "employee_id") {
		same = same && activities.AttrEqual(k, rec.Attributes[k], eff[k])
	}
	switch {
	case same:
		c.Type = "" // the identity has this already (often: jml wrote it)
	case c.Type == hr.Rehire:
		c.Type = hr.Change // active in jml already: jml reactivated the account
	case c.Type == hr.Change && c.Entry.Digest == old.Digest:
		c.Type = ""
	}
	return c, nil
}
