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
	env := &transform.Env{Attrs: named(fields), Lookups: m.tables}
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

// named is a row's fields as templates and the active condition see them:
// a column "Employee ID" is also employee_id (names cannot hold spaces).
func named(fields map[string]string) map[string]string {
	out := maps.Clone(fields)
	for k, v := range fields {
		if sn := hr.SnakeCase(k); sn != k {
			if _, taken := out[sn]; !taken {
				out[sn] = v
			}
		}
	}
	return out
}

// isActive tells an employed person by the source's active condition,
// read over the row's own columns (as the templates are), not over the
// mapped attributes: a status column need not be mapped to be filtered on.
func (m *mapper) isActive(fields map[string]string) bool {
	return m.active == nil || m.active.Eval(named(fields))
}

// missingColumns lists the names the active condition reads that no row
// of the report has: a condition over a column the report lacks is a
// mistake (often a mapped attribute's name), never "nobody is active".
func (m *mapper) missingColumns(rows []row) []string {
	if m.active == nil {
		return nil
	}
	have := map[string]bool{}
	for _, r := range rows {
		for k := range named(r.Fields) {
			have[k] = true
		}
	}
	var out []string
	for _, a := range m.active.Attributes() {
		if !have[a] && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
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
