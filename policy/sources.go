package policy

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

var (
	sourceTypes     = []string{"okta", "report"}
	sourceAuthTypes = []string{"none", "bearer", "basic", "header"}
)

// DefaultSourceEvery is a source's poll interval when it sets none.
const DefaultSourceEvery = 15 * time.Minute

// DefaultMaxTerminatePercent is the share of known people one poll may
// terminate before the source waits for an operator.
const DefaultMaxTerminatePercent = 5.0

// PollEvery is the source's poll interval.
func (s Source) PollEvery() time.Duration {
	if d, err := ParseDuration(s.Every); err == nil && d > 0 {
		return d
	}
	return DefaultSourceEvery
}

// TerminateLimit is the share (percent) of known people one poll may
// terminate without an operator's release.
func (s Source) TerminateLimit() float64 {
	if s.MaxTerminatePercent > 0 {
		return s.MaxTerminatePercent
	}
	return DefaultMaxTerminatePercent
}

func (c *checker) validateSources(p *Policy, tables map[string]bool) {
	for _, name := range slices.Sorted(maps.Keys(p.Sources)) {
		s := p.Sources[name]
		path := "sources." + name
		if !nameRE.MatchString(name) {
			c.at(path+"#key", "source name %q: use letters, digits, - and _", name)
		}
		switch s.Type {
		case "okta":
			if s.OrgURL == "" {
				c.at(path, "okta sources need org_url (https://acme.okta.com)")
			}
			c.url(path+".org_url", s.OrgURL, false)
			c.envName(path+".token_env", s.TokenEnv, true)
			for _, f := range []struct{ name, v string }{{"url", s.URL}, {"file", s.File}, {"format", s.Format}, {"records", s.Records}, {"active", s.Active}} {
				if f.v != "" {
					c.at(path+"."+f.name, "%s is for report sources", f.name)
				}
			}
		case "report":
			switch {
			case s.URL != "" && s.File != "":
				c.at(path, "set url or file, not both")
			case s.URL == "" && s.File == "":
				c.at(path, "report sources need url (https://…) or file")
			case s.URL != "":
				c.url(path+".url", s.URL, true)
			default:
				if !filepath.IsAbs(s.File) {
					s.File = filepath.Join(c.dir, s.File)
				}
			}
			if !slices.Contains([]string{"", "json", "csv"}, s.Format) {
				c.at(path+".format", "format %q: want json or csv", s.Format)
			}
			if s.Auth.Type != "" && !slices.Contains(sourceAuthTypes, s.Auth.Type) {
				c.at(path+".auth.type", "type %q: want one of %s", s.Auth.Type, strings.Join(sourceAuthTypes, ", "))
			} else {
				c.validateAuth(path+".auth", s.Auth)
			}
			if s.Active != "" {
				if _, err := CompileCondition(s.Active); err != nil {
					c.at(path+".active", "%v", err)
				}
			}
			if s.OrgURL != "" {
				c.at(path+".org_url", "org_url is for okta sources")
			}
		default:
			c.at(path+".type", "type %q: want one of %s%s", s.Type, strings.Join(sourceTypes, ", "), didYouMean(s.Type, sourceTypes))
		}
		if s.Every != "" {
			if d := c.duration(path+".every", s.Every, false); d != 0 && d < time.Minute {
				c.at(path+".every", "must be at least 1m")
			}
		}
		if s.EmployeeID == "" {
			c.at(path, "employee_id: required (a template over the source's fields, e.g. '{employeeNumber}')")
		} else {
			c.template(p, tables, path+".employee_id", s.EmployeeID, scope{})
		}
		for _, attr := range slices.Sorted(maps.Keys(s.Attributes)) {
			if !identRE.MatchString(attr) {
				c.at(path+".attributes."+attr, "attribute name %q: use letters, digits and _", attr)
			}
			c.template(p, tables, path+".attributes."+attr, s.Attributes[attr], scope{})
		}
		if v := s.MaxTerminatePercent; v < 0 || v > 100 {
			c.at(path+".max_terminate_percent", "must be 0 (default 5) to 100")
		}
		if !slices.Contains([]string{"", InitialHire, InitialBaseline}, s.Initial) {
			c.at(path+".initial", "initial %q: want hire or baseline", s.Initial)
		}
		p.Sources[name] = s
	}
}
