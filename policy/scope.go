package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jml-dev/jml/hr"
)

// ProvidedAttributes are the employee attributes an HR event can carry
// for this policy, sorted: the HR parsers' (hr.Attributes), the
// required_attributes, the import columns' and sources' attribute names,
// and the ones declared optional. A condition or template reading another
// name reads a typo.
func (p *Policy) ProvidedAttributes() []string {
	set := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			set[n] = true
		}
	}
	add(hr.Attributes()...)
	add(p.RequiredAttributes.List...)
	for _, l := range p.RequiredAttributes.ByType {
		add(l...)
	}
	add(slices.Collect(maps.Values(p.Import.Columns))...)
	for _, s := range p.Sources {
		add(slices.Collect(maps.Keys(s.Attributes))...)
	}
	add(p.Optional...)
	return slices.Sorted(maps.Keys(set))
}

// attribute reports an employee attribute nothing provides, read as what.
func (c *checker) attribute(path, what, name string) {
	if _, found := slices.BinarySearch(c.known, name); found {
		return
	}
	c.at(path, "%s: no HR field, required_attributes, import column or source provides attribute %s%s; "+
		"if your HR system sends it, declare it: optional: [%s]", what, name, didYouMean(name, c.known), name)
}

// grantsGroups names what a step grants that must follow its condition
// ("manage_relationships add", "sync_identity groups"), "" for none.
func grantsGroups(s Step) string {
	switch {
	case s.ManageRelationships != nil && len(s.ManageRelationships.Add) > 0:
		return "manage_relationships add"
	case s.SyncIdentity != nil && len(s.SyncIdentity.Groups) > 0:
		return "sync_identity groups"
	}
	return ""
}

// condition checks a when or scope of a flow of kind: it compiles, reads
// attributes something provides, and reads the change (changed(x),
// previous.x) only where there is one: a mover, and not on a step that
// grants (grants names it), whose grant must follow a state.
func (c *checker) condition(path, when, kind, grants string) {
	if when == "" {
		return
	}
	cc, err := CompileCondition(when)
	if err != nil {
		c.at(path, "%v", err)
		return
	}
	for _, a := range cc.Attributes() {
		c.attribute(path, strings.TrimSpace(when), a)
	}
	switch {
	case !cc.ReadsChange():
	case kind != KindMover:
		c.at(path, "changed() and previous.* read the attributes before a change: only mover flows have one (a %s has no earlier values)", kind)
	case grants != "":
		c.at(path, "%s follows its condition (the mover takes the group back when it turns false, reconciliation keeps it in line), "+
			"so the condition must describe a state, not a change: drop changed()/previous.* here (department eq \"Sales\")", grants)
	}
}

// validateScopedFlows checks the flows: entries' names and kinds.
func (c *checker) validateScopedFlows(p *Policy) {
	kinds := []string{KindJoiner, KindMover, KindLeaver, KindRehire}
	seen := map[string]string{}
	for i, f := range p.ScopedFlows {
		path := fmt.Sprintf("flows[%d]", i)
		switch {
		case f.Name == "":
			c.at(path, "name: required (the name shows in the step table, the preview and the dry run)")
		case !nameRE.MatchString(f.Name):
			c.at(path+".name", "flow name %q: use letters, digits, - and _", f.Name)
		case slices.Contains(kinds, f.Name):
			c.at(path+".name", "flow name %q is a kind's own flow: pick another", f.Name)
		case seen[f.Name] != "":
			c.at(path+".name", "flow name %q is also %s's", f.Name, seen[f.Name])
		default:
			seen[f.Name] = path
		}
		if !slices.Contains(kinds, f.Kind) {
			c.at(path+".kind", "kind %q: want one of %s%s", f.Kind, strings.Join(kinds, ", "), didYouMean(f.Kind, kinds))
		}
	}
	for _, f := range p.ownFlows() {
		if f.Flow.Name != "" || f.Flow.Kind != "" {
			c.at(f.Kind, "name and kind are for the entries of flows:; %s: is the %s flow", f.Kind, f.Kind)
		}
	}
}
