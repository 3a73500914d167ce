// Package transform is jml's Veza-compatible attribute transformer language:
// "{first_name | ASCII | LOWER}.{last_name | LOWER}@acme.com".
//
// PLACEHOLDER: this file is a minimal stand-in (plain {attr} substitution
// only) that fixes the API; the full language replaces it.
package transform

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Env is everything a template may read. Evaluation is pure given Env.
type Env struct {
	// Attrs are the identity's normalized attributes ({first_name}).
	Attrs map[string]string
	// Outputs of earlier steps by entity type ({OktaUser.login}).
	Outputs map[string]map[string]string
	// Target holds the other destination attributes of the same action ($target refs).
	Target map[string]string
	// Lookups are the policy's CSV tables by name.
	Lookups map[string]*Table
	// Rand feeds the RANDOM_* and UUID functions; nil means they error.
	Rand io.Reader
	// Now is the evaluation time (DATE_FORMAT defaults).
	Now time.Time
	// Escape, when set, is applied to every substituted value (JSON bodies).
	Escape func(string) string
	// Counter is the NEXT_NUMBER value for fallback formatters (0: none).
	Counter int
}

// Table is a lookup table (rows by key column).
type Table struct {
	Columns []string
	Rows    map[string]map[string]string
}

// Ref is one reference a template makes: Entity is "" for identity
// attributes, "$target" for destination attributes, else the entity type.
type Ref struct {
	Entity string
	Attr   string
}

// Template is a parsed transformer expression.
type Template struct {
	src  string
	refs []Ref
}

// Parse parses src once.
func Parse(src string) (*Template, error) {
	t := &Template{src: src}
	rest := src
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("column %d: unclosed {", len(src)-len(rest)+i+1)
		}
		name := strings.TrimSpace(rest[i+1 : i+j])
		if ent, attr, ok := strings.Cut(name, "."); ok {
			t.refs = append(t.refs, Ref{Entity: ent, Attr: attr})
		} else {
			t.refs = append(t.refs, Ref{Attr: name})
		}
		rest = rest[i+j+1:]
	}
	return t, nil
}

// MustParse is Parse for constants in tests.
func MustParse(src string) *Template {
	t, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the source.
func (t *Template) String() string { return t.src }

// Refs lists every attribute reference.
func (t *Template) Refs() []Ref { return t.refs }

// Eval renders the template against env.
func (t *Template) Eval(env *Env) (string, error) {
	var b strings.Builder
	rest := t.src
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		name := strings.TrimSpace(rest[i+1 : i+j])
		var v string
		if ent, attr, ok := strings.Cut(name, "."); ok {
			v = env.Outputs[ent][attr]
		} else {
			v = env.Attrs[name]
		}
		if env.Escape != nil {
			v = env.Escape(v)
		}
		b.WriteString(v)
		rest = rest[i+j+1:]
	}
}
