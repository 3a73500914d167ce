package transform

import (
	"os"
	"testing"
	"time"
	"unicode/utf8"
)

func readDoc() (string, error) {
	b, err := os.ReadFile("../docs/policy.md")
	return string(b), err
}

// FuzzParse checks that the parser never panics or hangs, that errors
// carry a column inside the input, and that a parsed template evaluates
// without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com`,
		`{FIRST_N, "world", 4}`,
		`{last_name | APPEND, "{first_name | FIRST_N, 1}"}`,
		`{"login":"{OktaUser.login}","password":"{OktaUser.password}"}`,
		`{$target.email | REMOVE_DOMAIN}`,
		`\{literal\} {x | IF, "a", ELSE, 'b'}`,
		`{x | LOOKUP, "t", "k", "v" | NEXT_NUMBER, 2, 3}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Parse(src)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if e.Col < 1 || e.Col > utf8.RuneCountInString(src)+1 {
				t.Fatalf("column %d outside input of %d runes", e.Col, utf8.RuneCountInString(src))
			}
			return
		}
		env := &Env{Attrs: map[string]string{"x": "Ab Cd", "first_name": "Zoë"}, Now: time.Unix(0, 0)}
		_, _ = tmpl.Eval(env)
		_ = tmpl.Refs()
	})
}

// BenchmarkPolicy evaluates a typical 5-attribute sync for one identity.
func BenchmarkPolicy(b *testing.B) {
	srcs := []string{
		`{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com`,
		`{first_name}`,
		`{last_name | TITLE_CASE}`,
		`{department | UPPER}`,
		`{country_code | COUNTRY_CODE_ISO3166, alpha2}`,
	}
	tmpls := make([]*Template, len(srcs))
	for i, s := range srcs {
		tmpls[i] = MustParse(s)
	}
	env := &Env{Attrs: map[string]string{
		"first_name": "Łukasz", "last_name": "gruba", "department": "Engineering", "country_code": "US",
	}}
	b.ReportAllocs()
	for b.Loop() {
		for _, t := range tmpls {
			if _, err := t.Eval(env); err != nil {
				b.Fatal(err)
			}
		}
	}
}
