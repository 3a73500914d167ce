package scim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/jml-dev/jml/connectors"
)

// target is where one normalized attribute lives in a SCIM User.
type target struct {
	name    string // the normalized name, for error messages
	urn     string // "" for the core schema (top level), else the extension URN
	attr    string // SCIM attribute as declared, e.g. "emails"
	sub     string // sub-attribute, e.g. "value", "givenName"; "" for a simple attribute
	typ     string // for multi-valued attributes: the item's type, e.g. "work"
	multi   bool
	primary bool   // the item is the primary one (email)
	kind    string // SCIM type of the leaf: string, boolean, integer, decimal, …
}

func (t target) key() string { return t.urn + "|" + t.attr + "|" + t.typ + "|" + t.sub }

// path is the RFC 7644 attribute path of t for PATCH.
func (t target) path() string {
	p := t.attr
	if t.urn != "" {
		p = t.urn + ":" + t.attr
	}
	if t.multi {
		return fmt.Sprintf("%s[type eq %s].%s", p, quote(t.typ), t.sub)
	}
	if t.sub != "" {
		p += "." + t.sub
	}
	return p
}

// enterpriseAliases are the short names of enterprise extension attributes.
var enterpriseAliases = map[string]string{
	"employee_number": "employeeNumber", "cost_center": "costCenter", "organization": "organization",
	"division": "division", "department": "department",
}

// nameAliases are the short names of name.* sub-attributes.
var nameAliases = map[string]string{
	"given_name": "givenName", "family_name": "familyName", "middle_name": "middleName",
	"formatted_name": "formatted", "honorific_prefix": "honorificPrefix", "honorific_suffix": "honorificSuffix",
}

// resolve maps a normalized attribute name to its place in a SCIM User, or
// fails naming the attribute when the discovered schemas have no such place.
func (ix *schemaIndex) resolve(name string) (target, error) {
	bad := func(format string, args ...any) (target, error) {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q "+format, append([]any{name}, args...)...)
	}
	if a, ok := Describe().Attribute(name); ok {
		name = a.Name // first_name is given_name
	}
	switch name {
	case "id", "meta", "schemas", "groups":
		return bad("is read-only")
	case "password":
		return bad("is a secret: set it with CreateOptions.Password or SetPassword")
	case "external_id":
		return target{name: name, attr: "externalId", kind: "string"}, nil
	case "email":
		t, err := ix.multiValued(name, "emails", "work", "value")
		t.primary = true
		return t, err
	case "manager":
		return ix.complexSub(name, enterpriseURN, "manager", "value")
	}
	if a, ok := enterpriseAliases[name]; ok {
		return ix.simple(name, enterpriseURN, a)
	}
	if s, ok := nameAliases[name]; ok {
		return ix.complexSub(name, coreUserURN, "name", s)
	}
	if parts := strings.Split(name, "."); len(parts) == 2 || len(parts) == 3 {
		sub := "value"
		if len(parts) == 3 {
			sub = camel(parts[2])
		}
		return ix.multiValued(name, camel(parts[0]), parts[1], sub)
	}
	if r, ok := ix.byNorm[name]; ok {
		if r.sub != "" {
			return ix.complexSub(name, r.urn, r.attr, r.sub)
		}
		return ix.simple(name, r.urn, r.attr)
	}
	if a := ix.attr(coreUserURN, camel(name)); a != nil && a.Type != "complex" {
		return ix.simple(name, coreUserURN, a.Name)
	}
	return bad("maps to nothing in the target's SCIM schemas")
}

func writable(a *attrDef) bool { return a.Mutability != "readOnly" && a.Mutability != "immutable" }

func (ix *schemaIndex) simple(name, urn, attr string) (target, error) {
	a := ix.attr(urn, attr)
	if a == nil {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q: the target's schemas have no %s:%s", name, urn, attr)
	}
	if !writable(a) {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q is %s at the target", name, a.Mutability)
	}
	t := target{name: name, attr: a.Name, kind: a.Type}
	if !strings.EqualFold(urn, coreUserURN) {
		t.urn = ix.urns[strings.ToLower(urn)]
	}
	return t, nil
}

func (ix *schemaIndex) complexSub(name, urn, attr, sub string) (target, error) {
	t, err := ix.simple(name, urn, attr)
	if err != nil {
		return t, err
	}
	s := ix.attr(urn, attr).sub(sub)
	if s == nil {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q: %s has no sub-attribute %s", name, attr, sub)
	}
	if !writable(s) {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q is %s at the target", name, s.Mutability)
	}
	t.sub, t.kind = s.Name, s.Type
	return t, nil
}

func (ix *schemaIndex) multiValued(name, attr, typ, sub string) (target, error) {
	a := ix.attr(coreUserURN, attr)
	if a == nil || !a.MultiValued || a.sub("type") == nil {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q maps to nothing in the target's SCIM schemas", name)
	}
	if typ == "" {
		return target{}, connectors.Permanentf("ScimMapping", "scim: attribute %q has an empty type", name)
	}
	t, err := ix.complexSub(name, coreUserURN, a.Name, sub)
	t.multi, t.typ = true, typ
	return t, err
}

// typed converts a normalized string to the JSON value the schema asks for.
func (t target) typed(v string) (any, error) {
	switch t.kind {
	case "boolean":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, connectors.Permanentf("ScimMapping", "scim: attribute %q: %q is not true or false", t.name, v)
		}
		return b, nil
	case "integer":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, connectors.Permanentf("ScimMapping", "scim: attribute %q: %q is not an integer", t.name, v)
		}
		return n, nil
	case "decimal":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, connectors.Permanentf("ScimMapping", "scim: attribute %q: %q is not a number", t.name, v)
		}
		return f, nil
	}
	return v, nil
}

// resource is a SCIM resource as decoded JSON.
type resource map[string]any

func (r resource) container(t target, create bool) map[string]any {
	if t.urn == "" {
		return r
	}
	m, _ := r[t.urn].(map[string]any)
	if m == nil && create {
		m = map[string]any{}
		r[t.urn] = m
		schemas, _ := r["schemas"].([]any)
		r["schemas"] = append(schemas, t.urn)
	}
	return m
}

// item returns the multi-valued item of t's type, or nil.
func (r resource) item(t target) map[string]any {
	c := r.container(t, false)
	if c == nil {
		return nil
	}
	list, _ := c[t.attr].([]any)
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && strings.EqualFold(fmt.Sprint(m["type"]), t.typ) {
			return m
		}
	}
	return nil
}

// set writes v (already typed) at t.
func (r resource) set(t target, v any) {
	c := r.container(t, true)
	switch {
	case t.multi:
		it := r.item(t)
		if it == nil {
			it = map[string]any{"type": t.typ}
			list, _ := c[t.attr].([]any)
			c[t.attr] = append(list, it)
		}
		it[t.sub] = v
		if t.primary {
			it["primary"] = true
		}
	case t.sub != "":
		m, _ := c[t.attr].(map[string]any)
		if m == nil {
			m = map[string]any{}
			c[t.attr] = m
		}
		m[t.sub] = v
	default:
		c[t.attr] = v
	}
}

// unset clears t; clearing the value of a multi-valued item removes the item.
func (r resource) unset(t target) {
	c := r.container(t, false)
	if c == nil {
		return
	}
	switch {
	case t.multi:
		list, _ := c[t.attr].([]any)
		out := list[:0]
		for _, it := range list {
			m, _ := it.(map[string]any)
			if m != nil && strings.EqualFold(fmt.Sprint(m["type"]), t.typ) {
				if t.sub != "value" {
					delete(m, t.sub)
					out = append(out, m)
				}
				continue
			}
			out = append(out, it)
		}
		c[t.attr] = out
	case t.sub != "":
		if m, _ := c[t.attr].(map[string]any); m != nil {
			delete(m, t.sub)
			if len(m) == 0 {
				delete(c, t.attr)
			}
		}
	default:
		delete(c, t.attr)
	}
}

// plan resolves every name in attrs, typed, in a stable order, and refuses
// two names that address the same place with different values.
type planned struct {
	t     target
	value string
	typed any
}

func (ix *schemaIndex) plan(attrs map[string]string) ([]planned, error) {
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[string]planned{}
	out := make([]planned, 0, len(names))
	for _, n := range names {
		t, err := ix.resolve(n)
		if err != nil {
			return nil, err
		}
		p := planned{t: t, value: attrs[n]}
		if p.value != "" {
			if p.typed, err = t.typed(p.value); err != nil {
				return nil, err
			}
		}
		if prev, ok := seen[t.key()]; ok {
			if prev.value != p.value {
				return nil, connectors.Permanentf("ScimMapping", "scim: attributes %q and %q set the same SCIM attribute to different values", prev.t.name, n)
			}
			continue
		}
		seen[t.key()] = p
		out = append(out, p)
	}
	return out, nil
}

// flatten reads a SCIM User into normalized attributes: the inverse of set,
// so that writing a set of attributes and reading them back compares equal.
func (ix *schemaIndex) flatten(r resource) connectors.Attributes {
	out := connectors.Attributes{}
	for k, v := range r {
		switch {
		case k == "schemas" || k == "id" || k == "meta" || k == "groups" || k == "password":
		case strings.Contains(k, ":"):
			ext, _ := v.(map[string]any)
			urn := k
			if u, ok := ix.urns[strings.ToLower(k)]; ok {
				urn = u
			}
			for a, av := range ext {
				// Both spellings resolve on write, so both read back.
				for _, full := range []string{normalize(urn + ":" + a), normalize(urn) + "_" + normalize(snake(a))} {
					if m, ok := av.(map[string]any); ok {
						for s, sv := range m {
							out[full+"_"+normalize(s)] = str(sv)
						}
						if val, ok := m["value"]; ok {
							out[full] = str(val)
						}
					} else if _, isList := av.([]any); !isList {
						out[full] = str(av)
					}
				}
			}
		case k == "name":
			m, _ := v.(map[string]any)
			for s, sv := range m {
				if s == "formatted" {
					out["formatted_name"] = str(sv)
				} else {
					out[snake(s)] = str(sv)
				}
			}
		default:
			switch vv := v.(type) {
			case []any:
				flattenMulti(out, snake(k), vv)
			case map[string]any:
			default:
				out[snake(k)] = str(vv)
			}
		}
	}
	if ent, ok := r[enterpriseURN].(map[string]any); ok {
		for alias, a := range enterpriseAliases {
			if v, ok := ent[a]; ok {
				out[alias] = str(v)
			}
		}
		if m, ok := ent["manager"].(map[string]any); ok && m["value"] != nil {
			out["manager"] = str(m["value"])
		}
	}
	// email is the primary address, else the work one.
	if emails, ok := r["emails"].([]any); ok {
		for _, pass := range []func(map[string]any) bool{
			func(m map[string]any) bool { return m["primary"] == true },
			func(m map[string]any) bool { return strings.EqualFold(fmt.Sprint(m["type"]), "work") },
		} {
			if e := find(emails, pass); e != nil {
				out["email"] = str(e["value"])
				break
			}
		}
	}
	for k, v := range out {
		if v == "" {
			delete(out, k)
		}
	}
	return Describe().WithAliases(out)
}

func find(list []any, pred func(map[string]any) bool) map[string]any {
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && pred(m) {
			return m
		}
	}
	return nil
}

func flattenMulti(out connectors.Attributes, name string, list []any) {
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		typ, _ := m["type"].(string)
		if typ == "" {
			continue
		}
		for s, sv := range m {
			switch s {
			case "type", "primary", "$ref":
			case "value":
				out[name+"."+typ] = str(sv)
			default:
				out[name+"."+typ+"."+snake(s)] = str(sv)
			}
		}
	}
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// snake turns userName into user_name.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// camel turns user_name into userName.
func camel(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quote renders s as a SCIM filter string literal (a JSON string), so a
// value holding `"` or `\` cannot end the literal early.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
