package graphtest

import (
	"strings"
)

// cond is one "property eq literal" clause of a $filter.
type cond struct {
	prop  string
	value any // string, bool or nil
}

// parseFilter parses the subset of OData $filter the connector sends:
// clauses "prop eq 'string'" / "prop eq true|false|null" joined by "and".
// String literals escape a single quote by doubling it.
func parseFilter(f string) ([]cond, error) {
	var out []cond
	rest := strings.TrimSpace(f)
	for {
		prop, after, ok := strings.Cut(rest, " ")
		if !ok || prop == "" {
			return nil, errorf("Invalid filter clause: syntax error at position %d in '%s'.", len(f)-len(rest), f)
		}
		after = strings.TrimLeft(after, " ")
		op, after, ok := strings.Cut(after, " ")
		if !ok || !strings.EqualFold(op, "eq") {
			return nil, errorf("Invalid filter clause: syntax error at position %d in '%s'.", len(f)-len(after), f)
		}
		after = strings.TrimLeft(after, " ")
		var value any
		switch {
		case strings.HasPrefix(after, "'"):
			var b strings.Builder
			i := 1
			for {
				if i >= len(after) {
					return nil, errorf("Invalid filter clause: there is an unterminated string literal at position %d in '%s'.", len(f), f)
				}
				if after[i] == '\'' {
					if i+1 < len(after) && after[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(after[i])
				i++
			}
			value, after = b.String(), after[i:]
		default:
			lit, tail, _ := strings.Cut(after, " ")
			switch lit {
			case "true":
				value = true
			case "false":
				value = false
			case "null":
				value = nil
			default:
				return nil, errorf("Invalid filter clause: syntax error at position %d in '%s'.", len(f)-len(after), f)
			}
			after = " " + tail
			if tail == "" {
				after = ""
			}
		}
		out = append(out, cond{prop: prop, value: value})
		after = strings.TrimSpace(after)
		if after == "" {
			return out, nil
		}
		kw, tail, _ := strings.Cut(after, " ")
		if !strings.EqualFold(kw, "and") {
			return nil, errorf("Invalid filter clause: syntax error at position %d in '%s'.", len(f)-len(after), f)
		}
		rest = strings.TrimSpace(tail)
	}
}

// matches applies conditions to an object; strings compare without case,
// as directory string properties do.
func matches(props map[string]any, conds []cond) bool {
	for _, c := range conds {
		v := props[c.prop]
		switch want := c.value.(type) {
		case string:
			got, ok := v.(string)
			if !ok || !strings.EqualFold(got, want) {
				return false
			}
		default:
			if v != want {
				return false
			}
		}
	}
	return true
}
