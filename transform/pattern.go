package transform

import "strings"

// Pattern is the set of values the template can render as a glob: its
// literal text with "*" for each placeholder ("dept-{department | LOWER}"
// is "dept-*"). Reconciliation uses it to know which group names a rule
// can produce.
func (t *Template) Pattern() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr != nil {
			if !strings.HasSuffix(b.String(), "*") {
				b.WriteByte('*')
			}
			continue
		}
		b.WriteString(p.lit)
	}
	return b.String()
}
