// Package transform is jml's Veza-compatible attribute transformer language:
//
//	{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com
//	{FIRST_N, "world", 4}
//	{first_name | FIRST_N, 1}{last_name | LOWER | NEXT_NUMBER}
//
// A template is parsed once into a tree (Parse) and evaluated many times
// (Eval). Evaluation is pure: everything it reads is in Env, including the
// random source of the RANDOM_* and UUID functions. A missing attribute and
// an empty one are the same value. See docs/policy.md for the language.
package transform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	// Now is the evaluation time (NOW, DATE_FORMAT of "now").
	Now time.Time
	// Escape, when set, is applied to every substituted value (JSON bodies).
	// It is not applied to literal text nor to values inside arguments.
	Escape func(string) string
	// Counter is the NEXT_NUMBER attempt for fallback formatters: 0 is the
	// first attempt (NEXT_NUMBER adds nothing), k ≥ 1 adds start+k-1.
	Counter int
	// Strict makes a reference to an identity attribute that is absent from
	// Attrs an error ("unknown attribute") instead of an empty value.
	Strict bool
}

// Table is a lookup table (rows by key column).
type Table struct {
	Columns []string
	// Key is the key column's name (default: the first column).
	Key  string
	Rows map[string]map[string]string
}

// Ref is one reference a template makes: Entity is "" for identity
// attributes, "$target" for destination attributes, else the entity type.
type Ref struct {
	Entity string
	Attr   string
}

// TargetEntity is Ref.Entity of a $target reference.
const TargetEntity = "$target"

// String returns the reference as written in a template.
func (r Ref) String() string {
	if r.Entity == "" {
		return r.Attr
	}
	return r.Entity + "." + r.Attr
}

// Error is a parse or evaluation error at a column (1-based, in runes) of
// the template source.
type Error struct {
	Col int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// Template is a parsed transformer expression.
type Template struct {
	src   string
	parts []part
	refs  []Ref
	calls []Call
	// next is the most NEXT_NUMBER attempts any NEXT_NUMBER allows
	// (0: the template has no NEXT_NUMBER).
	next int
}

// Call is one function call in a template, for static checks (e.g. that a
// LOOKUP table exists). Args holds the constant arguments as written; an
// argument with placeholders is "".
type Call struct {
	Func string
	Args []string
	Col  int
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

// Refs lists every attribute reference, including those inside arguments,
// in source order (duplicates removed).
func (t *Template) Refs() []Ref { return t.refs }

// Calls lists every function call, including those inside arguments.
func (t *Template) Calls() []Call { return t.calls }

// EmptyAttrs lists the person's attributes the template src refers to
// when it refers to some and every one is empty in attrs (nil for a
// template with a step output, with no reference, or that does not parse:
// rendering reports that). A group template such as "dept-{department}"
// then names no group: "dept-" would be one group for everyone without one.
func EmptyAttrs(src string, attrs map[string]string) []string {
	t, err := Parse(src)
	if err != nil {
		return nil
	}
	var empty []string
	for _, r := range t.refs {
		if r.Entity != "" || strings.TrimSpace(attrs[r.Attr]) != "" {
			return nil
		}
		if !slices.Contains(empty, r.Attr) {
			empty = append(empty, r.Attr)
		}
	}
	return empty
}

// IsConstant reports whether the template has no placeholders.
func (t *Template) IsConstant() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Attempts is how many values EvalUnique may try with this template: 1, or
// 1 + the NEXT_NUMBER count when it uses NEXT_NUMBER.
func (t *Template) Attempts() int { return 1 + t.next }

// Eval renders the template against env.
func (t *Template) Eval(env *Env) (string, error) {
	if env == nil {
		env = &Env{}
	}
	return t.eval(env, env.Escape)
}

// ErrNoUniqueValue is returned by EvalUnique when every candidate is taken.
var ErrNoUniqueValue = errors.New("transform: no unique value left")

// EvalUnique tries the fallback formatters in order and returns the first
// value that valid accepts (nil: CheckIdentifier; a policy passes its
// target's rule, policy.Policy.IdentifierRule) and that taken reports as
// free. A template with NEXT_NUMBER is tried once per number (jsmith,
// jsmith2, jsmith3, …) before the next template. A value no identifier can
// be (".@example.com" from a name ASCII empties) is skipped without asking
// taken, and so is the whole template when its value without a number is
// one ("2@example.com" is no name); a fallback such as "e{employee_id}"
// then serves those names.
// env is not modified.
func EvalUnique(ctx context.Context, candidates []*Template, env *Env, valid func(string) error,
	taken func(ctx context.Context, value string) (bool, error)) (string, error) {
	if valid == nil {
		valid = CheckIdentifier
	}
	e := Env{}
	if env != nil {
		e = *env
	}
	var tried []string
	for _, t := range candidates {
		for k := range t.Attempts() {
			e.Counter = k
			v, err := t.Eval(&e)
			if err != nil {
				return "", fmt.Errorf("transform: %s: %w", t.src, err)
			}
			if valid(v) != nil {
				if k == 0 {
					break // the number only tells names apart: "2@example.com" is no name
				}
				continue
			}
			if slices.Contains(tried, v) {
				continue
			}
			tried = append(tried, v)
			busy, err := taken(ctx, v)
			if err != nil {
				return "", fmt.Errorf("transform: uniqueness check: %w", err)
			}
			if !busy {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%w after %d candidates", ErrNoUniqueValue, len(tried))
}

// EscapeJSON escapes s for use inside a JSON string literal (Env.Escape of
// REST bodies).
func EscapeJSON(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' || r == 0x2028 || r == 0x2029 })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}
