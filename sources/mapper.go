package sources

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// mapper turns a source's row (its own field names) into identity
// attributes with the source's transformer templates.
type mapper struct {
	id     *transform.Template
	attrs  map[string]*transform.Template // nil: every field, named by rename
	rename func(field string) string
	active *policy.Condition
	tables map[string]*transform.Table
}

func newMapper(s policy.Source, tables map[string]*transform.Table, rename func(string) string) (*mapper, error) {
	m := &mapper{tables: tables, rename: rename}
	var err error
	if m.id, err = transform.Parse(s.EmployeeID); err != nil {
		return nil, fmt.Errorf("employee_id: %w", err)
	}
	if len(s.Attributes) > 0 {
		m.attrs = map[string]*transform.Template{}
		for name, src := range s.Attributes {
			if m.attrs[name], err = transform.Parse(src); err != nil {
				return nil, fmt.Errorf("attributes.%s: %w", name, err)
			}
		}
	}
	if s.Active != "" {
		if m.active, err = policy.CompileCondition(s.Active); err != nil {
			return nil, fmt.Errorf("active: %w", err)
		}
	}
	return m, nil
}

var errNoEmployeeID = errors.New("no employee ID")

// apply maps one row: the employee ID and the normalized attributes (with
// employee_id; empty values dropped, as events carry them).
func (m *mapper) apply(fields map[string]string) (string, map[string]string, error) {
	// A column "Employee ID" is also {employee_id}: templates cannot name
	// a field with spaces.
	named := maps.Clone(fields)
	for k, v := range fields {
		if sn := hr.SnakeCase(k); sn != k {
			if _, taken := named[sn]; !taken {
				named[sn] = v
			}
		}
	}
	env := &transform.Env{Attrs: named, Lookups: m.tables}
	id, err := m.id.Eval(env)
	if err != nil {
		return "", nil, fmt.Errorf("employee_id %s: %w", m.id, err)
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return "", nil, fmt.Errorf("%w (employee_id %s is empty)", errNoEmployeeID, m.id)
	}
	out := map[string]string{}
	if m.attrs == nil {
		for k, v := range fields {
			out[m.rename(k)] = v
		}
	} else {
		for _, name := range slices.Sorted(maps.Keys(m.attrs)) {
			v, err := m.attrs[name].Eval(env)
			if err != nil {
				return id, nil, fmt.Errorf("attributes.%s: %w", name, err)
			}
			out[name] = v
		}
	}
	out["employee_id"] = id
	for k, v := range out {
		if v = strings.TrimSpace(v); v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return id, out, nil
}

// isActive tells an employed person by the source's active condition.
func (m *mapper) isActive(attrs map[string]string) bool {
	return m.active == nil || m.active.Eval(attrs)
}

// fields lists the source fields an identity attribute reads (nil when
// attributes are not mapped by templates).
func (m *mapper) fields(attr string) []string {
	t := m.attrs[attr]
	if t == nil {
		return nil
	}
	var out []string
	for _, r := range t.Refs() {
		if r.Entity == "" {
			out = append(out, r.Attr)
		}
	}
	return out
}
