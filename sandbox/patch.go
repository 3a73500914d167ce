package sandbox

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// patchOp is one RFC 7644 §3.5.2 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// patchPath is attr[filter].sub, URN-qualified or not.
type patchPath struct {
	attrPath
	filter filter
}

func parsePatchPath(s string) (patchPath, error) {
	var p patchPath
	open := strings.IndexByte(s, '[')
	if open < 0 {
		p.attrPath = parsePath(s)
		return p, nil
	}
	closing := strings.LastIndexByte(s, ']')
	if closing < open {
		return p, errorf(http.StatusBadRequest, "invalidPath", "path %q: unbalanced [", s)
	}
	p.attrPath = parsePath(s[:open])
	if p.sub != "" {
		return p, errorf(http.StatusBadRequest, "invalidPath", "path %q: a filter applies to a multi-valued attribute", s)
	}
	f, err := parseFilter(s[open+1 : closing])
	if err != nil {
		return p, errorf(http.StatusBadRequest, "invalidFilter", "path %q: %v", s, err)
	}
	p.filter = f
	if rest := s[closing+1:]; rest != "" {
		if !strings.HasPrefix(rest, ".") || len(rest) < 2 {
			return p, errorf(http.StatusBadRequest, "invalidPath", "path %q: expected .subAttribute after ]", s)
		}
		p.sub = rest[1:]
	}
	return p, nil
}

// applyPatch applies ops to o in order. A password (writeOnly, never
// stored in o) is returned instead of being written. Path-less add and
// replace treat each key of the value object as a path, so both the RFC
// form ({"name": {...}}) and the one some clients send
// ({"urn:…:User:department": "x"}) work.
func applyPatch(o object, ops []patchOp, core []attr, ext map[string][]attr) (*string, error) {
	var pw *string
	if len(ops) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalidSyntax", "Operations: empty")
	}
	for i, op := range ops {
		kind := strings.ToLower(op.Op)
		if kind != "add" && kind != "replace" && kind != "remove" {
			return nil, errorf(http.StatusBadRequest, "invalidSyntax", "Operations[%d].op: %q is not add, replace or remove", i, op.Op)
		}
		if op.Path == "" {
			if kind == "remove" {
				return nil, errorf(http.StatusBadRequest, "noTarget", "Operations[%d]: remove needs a path", i)
			}
			m, ok := op.Value.(map[string]any)
			if !ok {
				return nil, errorf(http.StatusBadRequest, "invalidValue", "Operations[%d].value: must be an object when there is no path", i)
			}
			for _, k := range sortedKeys(m) {
				v := m[k]
				if sub, ok := v.(map[string]any); ok && ext[urnKey(ext, k)] != nil {
					for _, sk := range sortedKeys(sub) {
						if err := applyOne(o, kind, urnKey(ext, k)+":"+sk, sub[sk], core, ext, &pw); err != nil {
							return nil, err
						}
					}
					continue
				}
				if err := applyOne(o, kind, k, v, core, ext, &pw); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := applyOne(o, kind, op.Path, op.Value, core, ext, &pw); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// urnKey is the declared spelling of an extension URN, or "".
func urnKey(ext map[string][]attr, s string) string {
	for k := range ext {
		if strings.EqualFold(k, s) {
			return k
		}
	}
	return ""
}

func applyOne(o object, kind, path string, value any, core []attr, ext map[string][]attr, pw **string) error {
	p, err := parsePatchPath(path)
	if err != nil {
		return err
	}
	schema := core
	if p.urn != "" {
		urn := urnKey(ext, p.urn)
		if urn == "" {
			return errorf(http.StatusBadRequest, "invalidPath", "path %q: unknown schema %s", path, p.urn)
		}
		p.urn, schema = urn, ext[urn]
	}
	def := known(schema, p.attr)
	switch {
	case def == nil:
		return errorf(http.StatusBadRequest, "invalidPath", "path %q: %s is not an attribute of the schema", path, p.attr)
	case def.Mutability == "readOnly" || strings.EqualFold(p.attr, "id") || strings.EqualFold(p.attr, "meta"):
		return errorf(http.StatusBadRequest, "mutability", "path %q: %s is read-only", path, p.attr)
	case def.Name == "password":
		if kind == "remove" {
			return errorf(http.StatusBadRequest, "mutability", "path %q: a password cannot be removed", path)
		}
		s, ok := value.(string)
		if !ok {
			return errorf(http.StatusBadRequest, "invalidValue", "password: must be a string")
		}
		*pw = &s
		return nil
	}
	c := o
	if p.urn != "" {
		m, _ := o[keyOf(o, p.urn)].(map[string]any)
		if m == nil {
			if kind == "remove" {
				return nil
			}
			m = object{}
			o[p.urn] = m
		}
		c = m
	}
	key := keyOf(c, def.Name)
	if key != def.Name { // canonical spelling from now on
		c[def.Name] = c[key]
		delete(c, key)
	}
	key = def.Name
	cur := c[key]

	switch {
	case p.filter != nil:
		list, _ := cur.([]any)
		hits := 0
		var kept []any
		for _, it := range list {
			m, ok := it.(map[string]any)
			if !ok || !p.filter(m) {
				kept = append(kept, it)
				continue
			}
			hits++
			switch {
			case kind == "remove" && p.sub == "":
				continue // dropped
			case kind == "remove":
				delete(m, keyOf(m, p.sub))
			case p.sub != "":
				m[keyOf(m, p.sub)] = value
			default:
				vm, ok := value.(map[string]any)
				if !ok {
					return errorf(http.StatusBadRequest, "invalidValue", "path %q: value must be an object", path)
				}
				for k, v := range vm {
					m[keyOf(m, k)] = v
				}
			}
			kept = append(kept, m)
		}
		if hits == 0 && kind == "replace" {
			return errorf(http.StatusBadRequest, "noTarget", "path %q: no value matches the filter", path)
		}
		setOrDelete(c, key, kept)
	case p.sub != "":
		switch x := cur.(type) {
		case []any: // every item of a multi-valued attribute
			for _, it := range x {
				if m, ok := it.(map[string]any); ok {
					subSet(m, kind, p.sub, value)
				}
			}
		case map[string]any:
			subSet(x, kind, p.sub, value)
			if len(x) == 0 {
				delete(c, key)
			}
		case nil:
			if kind != "remove" {
				c[key] = object{p.sub: value}
			}
		}
	case kind == "remove":
		if list, ok := cur.([]any); ok && value != nil {
			// remove members with a value list (Entra's form): drop those items
			vals, _ := value.([]any)
			list = slices.DeleteFunc(list, func(it any) bool {
				return slices.ContainsFunc(vals, func(v any) bool { return sameItem(it, v) })
			})
			setOrDelete(c, key, list)
			break
		}
		delete(c, key)
	case def.MultiValued:
		items, ok := value.([]any)
		if !ok {
			items = []any{value}
		}
		if kind == "replace" {
			setOrDelete(c, key, items)
			break
		}
		list, _ := cur.([]any)
		for _, it := range items {
			if !slices.ContainsFunc(list, func(x any) bool { return sameItem(x, it) }) {
				list = append(list, it)
			}
		}
		setOrDelete(c, key, list)
	default:
		vm, vok := value.(map[string]any)
		cm, cok := cur.(map[string]any)
		if vok && cok {
			for k, v := range vm {
				cm[keyOf(cm, k)] = v
			}
			break
		}
		c[key] = value
	}
	if p.urn != "" && len(c) == 0 {
		delete(o, p.urn)
	}
	return nil
}

func subSet(m map[string]any, kind, sub string, value any) {
	if kind == "remove" {
		delete(m, keyOf(m, sub))
		return
	}
	m[keyOf(m, sub)] = value
}

func setOrDelete(c object, key string, list []any) {
	if len(list) == 0 {
		delete(c, key)
		return
	}
	c[key] = list
}

// sameItem compares multi-valued items: by value when both have one
// (members), else entirely.
func sameItem(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if av, bv := get(am, "value"), get(bm, "value"); av != nil && bv != nil {
			if ta, tb := get(am, "type"), get(bm, "type"); ta != nil && tb != nil && ta != tb {
				return false
			}
			return av == bv
		}
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return reflect.DeepEqual(ja, jb)
}
