package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/jml-dev/jml/hr"
)

// eventTypes are the HR event types, in documented order.
var eventTypes = []string{hr.Hire, hr.Change, hr.Terminate, hr.Rehire}

// RequiredAttributes are the employee attributes (beyond employee_id) an HR
// event must carry. The policy file gives either a list, required for hire
// and rehire (the events that create accounts):
//
//	required_attributes: [first_name, last_name]
//
// or a mapping by event type (a type left out requires nothing):
//
//	required_attributes:
//	  hire: [first_name, last_name]
//	  rehire: [first_name, last_name]
//	  change: []
//	  terminate: [termination_reason]
//
// RequiredFor is the one rule that reads it: the intake, `starter import`
// and CheckEvent (Plan) all ask it.
type RequiredAttributes struct {
	// List is the list form: required for hire and rehire.
	List []string
	// ByType is the mapping form, by event type.
	ByType map[string][]string
}

// RequiredFor lists the employee attributes an event of eventType must
// carry (nil for a nil policy, an unknown type, or a type nothing is
// required for).
func (p *Policy) RequiredFor(eventType string) []string {
	if p == nil {
		return nil
	}
	return p.RequiredAttributes.For(eventType)
}

// For is RequiredFor of a policy with these required attributes.
func (r RequiredAttributes) For(eventType string) []string {
	if r.ByType != nil {
		return r.ByType[eventType]
	}
	if eventType == hr.Hire || eventType == hr.Rehire {
		return r.List
	}
	return nil
}

// IsZero reports whether nothing is required.
func (r RequiredAttributes) IsZero() bool { return len(r.List) == 0 && len(r.ByType) == 0 }

// UnmarshalYAML accepts the list form and the mapping form.
func (r *RequiredAttributes) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode(&r.List)
	case yaml.MappingNode:
		r.ByType = map[string][]string{}
		return n.Decode(&r.ByType)
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
	}
	return fmt.Errorf("line %d: required_attributes: expected a list or a mapping by event type", n.Line)
}

// MarshalJSON writes the form the policy file used.
func (r RequiredAttributes) MarshalJSON() ([]byte, error) {
	if r.ByType != nil {
		return json.Marshal(r.ByType)
	}
	if r.List == nil {
		return []byte("null"), nil
	}
	return json.Marshal(r.List)
}

// UnmarshalJSON reads either form.
func (r *RequiredAttributes) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "null":
		return nil
	case strings.HasPrefix(s, "{"):
		return json.Unmarshal(b, &r.ByType)
	}
	return json.Unmarshal(b, &r.List)
}

var requiredType = typeOf[RequiredAttributes]()

// walkRequired checks the shape of required_attributes: a list of names,
// or a mapping from event types to lists of names.
func (c *checker) walkRequired(n *yaml.Node, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c.nodes[path] = n
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
	case n.Kind == yaml.SequenceNode:
		c.walk(n, typeOf[[]string](), path)
	case n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			c.nodes[p+"#key"] = k
			if !slices.Contains(eventTypes, k.Value) {
				msg := fmt.Sprintf("unknown event type %q (want hire, change, terminate or rehire)", k.Value)
				if s := closest(k.Value, eventTypes); s != "" {
					msg = fmt.Sprintf("unknown event type %q (did you mean %s?)", k.Value, s)
				}
				c.add(k.Line, k.Column, p, msg)
				continue
			}
			c.walk(v, typeOf[[]string](), p)
		}
	default:
		c.at(path, "expected a list of attribute names (required for hire and rehire) or a mapping by event type (hire, change, terminate, rehire), found %s", kindName(n))
	}
}

// validateRequired checks every required attribute is an attribute name.
func (c *checker) validateRequired(p *Policy) {
	r := p.RequiredAttributes
	check := func(path string, attrs []string) {
		for i, a := range attrs {
			if !identRE.MatchString(a) {
				c.at(fmt.Sprintf("%s[%d]", path, i), "%q is not an attribute name (snake_case)", a)
			}
		}
	}
	check("required_attributes", r.List)
	for _, t := range eventTypes {
		check("required_attributes."+t, r.ByType[t])
	}
}
