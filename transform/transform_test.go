package transform

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testEnv() *Env {
	return &Env{
		Attrs: map[string]string{
			"first_name": "Łukasz", "last_name": "Gruba-Müller", "firstname": "Łukasz Gruba",
			"email": "Lukasz.Gruba@Example.com", "department": "Platform Engineering",
			"country_code": "us", "phone": "+1-800-555-1212", "employee_id": "42",
			"start_date": "2026-12-01", "middle_name": "", "locale": "en_us", "office": "BER",
			"title": "senior SITE reliability engineer", "time_zone": "Europe/Berlin",
		},
		Outputs: map[string]map[string]string{"OktaUser": {"login": "lukasz.gruba@acme.com", "password": "s3cret"}},
		Target:  map[string]string{"email": "lgruba@acme.com"},
		Lookups: map[string]*Table{"offices": {
			Columns: []string{"code", "city", "region"}, Key: "code",
			Rows: map[string]map[string]string{
				"BER": {"code": "BER", "city": "Berlin", "region": "EMEA"},
				"NYC": {"code": "NYC", "city": "New York", "region": "AMER"},
				"*":   {"code": "*", "city": "Remote", "region": "GLOBAL"},
			},
		}},
		Now: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC),
	}
}

func TestEval(t *testing.T) {
	tests := []struct{ src, want string }{
		// Documented examples.
		{`{firstname | ASCII}`, "Lukasz Gruba"},
		{`{FIRST_N, "world", 4}`, "worl"},
		{`{COUNTRY_CODE_ISO3166, "US", alpha3}`, "USA"},
		{`{phone | PHONE_NUMBER_E164}`, "+18005551212"},
		{`{email | REMOVE_DOMAIN | LOWER}`, "lukasz.gruba"},
		{`{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@acme.com`, "lukasz.gruba-muller@acme.com"},
		// Syntax.
		{`plain text`, "plain text"},
		{``, ""},
		{`{ first_name }`, "Łukasz"},
		{`{first_name|lower|upper}`, "ŁUKASZ"},
		{`{last_name | APPEND, "{first_name | FIRST_N, 1}"}`, "Gruba-MüllerŁ"},
		{`{last_name | APPEND, {employee_id}}`, "Gruba-Müller42"},
		{`{last_name | APPEND, "{first_name | APPEND, "!"}"}`, "Gruba-MüllerŁukasz!"},
		{`{last_name | APPEND, '-x'}`, "Gruba-Müller-x"},
		{`{"Hello" | UPPER}`, "HELLO"},
		{`{OktaUser.login}`, "lukasz.gruba@acme.com"},
		{`{$target.email | REMOVE_DOMAIN}`, "lgruba"},
		{`\{first_name\}`, "{first_name}"},
		{`{"login":"{OktaUser.login}"}`, `{"login":"lukasz.gruba@acme.com"}`},
		{`{ "a": {employee_id} }`, `{ "a": 42 }`},
		{`{}`, "{}"},
		{`{unknown_attr}`, ""},
		{`{middle_name}`, ""},
		{`{FIRST_N, "a \"quoted\" word", 3}`, `a "`},
		// Functions.
		{`{first_name | REMOVE_DIACRITICS}`, "Lukasz"},
		{`{"Ærøskøbing Straße" | ASCII}`, "AEroskobing Strasse"},
		{`{"Renée Zoë" | REMOVE_DIACRITICS}`, "Renee Zoe"},
		{`{"  padded  " | TRIM}`, "padded"},
		{`{"--x--" | TRIM, "-"}`, "x"},
		{`{"name" | PREPEND, "pre-"}`, "pre-name"},
		{`{"abcdef" | SUBSTRING, 1, 3}`, "bcd"},
		{`{"abcdef" | SUB_STRING, 4}`, "ef"},
		{`{"abc" | SUBSTRING, 5, 2}`, ""},
		{`{"Müller" | FIRST_N, 2}`, "Mü"},
		{`{"Müller" | LAST_N, 3}`, "ler"},
		{`{"ab" | LAST_N, 5}`, "ab"},
		{`{employee_id | LEFT_PAD, 6, "0"}`, "000042"},
		{`{employee_id | RIGHT_PAD, 4}`, "42  "},
		{`{"a.b.c" | REPLACE_ALL, ".", "-"}`, "a-b-c"},
		{`{"(555) 12-34" | REMOVE_CHARS, "()- "}`, "5551234"},
		{"{\"a b\tc\" | REMOVE_WHITESPACE}", "abc"},
		{`{email | SPLIT, "@", 1}`, "Example.com"},
		{`{"a,b,c" | SPLIT, ",", -1}`, "c"},
		{`{"a,b" | SPLIT, ",", 7}`, ""},
		{`{department | LOWER_SNAKE_CASE}`, "platform_engineering"},
		{`{"firstName lastName" | UPPER_SNAKE_CASE}`, "FIRST_NAME_LAST_NAME"},
		{`{title | TITLE_CASE}`, "Senior Site Reliability Engineer"},
		{`{"mary-jane watson" | TITLE_CASE}`, "Mary-Jane Watson"},
		{`{title | SENTENCE_CASE}`, "Senior site reliability engineer"},
		{`{department | CAMEL_CASE}`, "platformEngineering"},
		{`{start_date | DATE_FORMAT, "01/02/2006"}`, "12/01/2026"},
		{`{"12/01/2026" | DATE_FORMAT, "2006-01-02", "01/02/2006"}`, "2026-12-01"},
		{`{"2026-12-01T09:00:00Z" | DATE_FORMAT, DateOnly}`, "2026-12-01"},
		{`{"1767225600" | DATE_FORMAT, RFC3339, unix}`, "2026-01-01T00:00:00Z"},
		{`{start_date | ASSUME_TIME_ZONE, "{time_zone}"}`, "2026-12-01T00:00:00+01:00"},
		{`{"2026-07-01 17:00:00" | ASSUME_TIME_ZONE, "America/New_York"}`, "2026-07-01T17:00:00-04:00"},
		{`{country_code | COUNTRY_CODE_ISO3166}`, "US"},
		{`{"DEU" | COUNTRY_CODE_ISO3166, numeric}`, "276"},
		{`{"276" | COUNTRY_CODE_ISO3166, "alpha2"}`, "DE"},
		{`{"Germany" | COUNTRY_CODE_ISO3166, alpha3}`, "DEU"},
		{`{"united kingdom" | COUNTRY_CODE_ISO3166}`, "GB"},
		{`{"GB" | COUNTRY_CODE_ISO3166, name}`, "United Kingdom"},
		{`{locale | LANGUAGE_RFC5646}`, "en-US"},
		{`{"de_CH.UTF-8" | LANGUAGE_RFC5646}`, "de-CH"},
		{`{"(800) 555-1212" | PHONE_NUMBER_E164, "US"}`, "+18005551212"},
		{`{"030 1234567" | PHONE_NUMBER_E164, "{office | LOOKUP, "offices", "region" | IF, "DE"}"}`, "+49301234567"},
		{`{"0044 20 7946 0000" | PHONE_NUMBER_E164}`, "+442079460000"},
		{`{"+1 800 555 1212 x42" | PHONE_NUMBER_E164}`, "+18005551212"},
		{`{office | LOOKUP, "offices", "city"}`, "Berlin"},
		{`{"New York" | LOOKUP, "offices", "city", "region"}`, "AMER"},
		{`{"nyc" | LOOKUP, "offices", "city"}`, "New York"},
		{`{"XYZ" | LOOKUP, "offices", "region"}`, "GLOBAL"},
		{`{middle_name | IF, "{middle_name}.", ELSE, "-"}`, "-"},
		{`{first_name | IF, "has", "none"}`, "has"},
		{`{middle_name | IF, "x"}`, ""},
		{`{middle_name | IF_EMPTY, "{first_name}"}`, "Łukasz"},
		{`{middle_name | ELSE, "none"}`, "none"},
		{`{first_name | DEFAULT, "none"}`, "Łukasz"},
		{`{NEXT_NUMBER}`, ""},
		{`{NOW}`, "2026-11-22T09:30:00Z"},
		{`{NOW | DATE_FORMAT, "2006"}`, "2026"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tmpl, err := Parse(tt.src)
			require.NoError(t, err)
			got, err := tmpl.Eval(testEnv())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.src, tmpl.String())
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`{first_name | ASCII | LOWR}`, "column 23: unknown function LOWR (did you mean LOWER?)"},
		{`{email | REMOVE_DOMAN}`, "column 10: unknown function REMOVE_DOMAN (did you mean REMOVE_DOMAIN?)"},
		{`{first_name | FROBNICATE}`, "column 15: unknown function FROBNICATE"},
		{`{FIRTS_N, "x", 1}`, "column 2: unknown function FIRTS_N (did you mean FIRST_N?)"},
		{`{first_name | FIRST_N}`, "column 15: FIRST_N takes 1 argument(s), got 0 (usage: FIRST_N, n)"},
		{`{first_name | FIRST_N, 1, 2}`, "column 15: FIRST_N takes 1 argument(s), got 2"},
		{`{first_name | FIRST_N, "one"}`, "column 24: FIRST_N argument 1 must be a whole number"},
		{`{first_name | LOWER`, "column 1: unclosed {: missing }"},
		{`ab{first_name`, "column 3: unclosed {"},
		{`{first_name | APPEND, "x}`, "column 23: unterminated string"},
		{`{first_name last_name}`, `column 13: expected | or } but found "last_name}"`},
		{`{first_name | }`, "column 15: expected a function name after |"},
		{`{first_name | UUID}`, "column 15: UUID takes no input"},
		{`{$target}`, "column 2: bad reference $target"},
		{`{$other.x}`, "column 2: bad reference $other.x"},
		{`{a.b.c}`, "column 2: bad reference a.b.c"},
		{`{COUNTRY_CODE_ISO3166, "US", alpha4}`, `column 2: COUNTRY_CODE_ISO3166: format "alpha4"`},
		{`{RANDOM_NUMBER_GENERATOR, 0}`, "length must be 1 to 1024"},
		{`{x | IF, "a", "b", "c"}`, `write IF, "then", ELSE, "else"`},
		{`{x | APPEND, "{y | NOPE}"}`, "column 20: unknown function NOPE"},
		{`{x | APPEND, }`, "expected an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := Parse(tt.src)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			var te *Error
			assert.True(t, errors.As(err, &te), "error is *transform.Error")
		})
	}
}

func TestEvalErrors(t *testing.T) {
	strict := testEnv()
	strict.Strict = true
	tests := []struct {
		src  string
		env  *Env
		want string
	}{
		{`{first_nme}`, strict, "column 2: unknown attribute first_nme (did you mean first_name?)"},
		{`{$target.emial}`, testEnv(), "unknown attribute $target.emial (did you mean $target.email?)"},
		{`{ScimUser.id}`, testEnv(), "no earlier step produced ScimUser"},
		{`{office | LOOKUP, "ofices", "city"}`, testEnv(), `column 11: LOOKUP: unknown lookup table "ofices" (did you mean "offices"?)`},
		{`{office | LOOKUP, "offices", "zip"}`, testEnv(), `table offices has no column "zip"`},
		{`{"x" | COUNTRY_CODE_ISO3166}`, testEnv(), `"x" is not an ISO 3166 country`},
		{`{"800 555 1212" | PHONE_NUMBER_E164}`, testEnv(), "has no country code"},
		{`{"call me" | PHONE_NUMBER_E164, "US"}`, testEnv(), "is not a phone number"},
		{`{"tomorrow" | DATE_FORMAT, "2006"}`, testEnv(), "is not a date I can read"},
		{`{start_date | ASSUME_TIME_ZONE, "Mars/Olympus"}`, testEnv(), `unknown time zone "Mars/Olympus"`},
		{`{UUID}`, testEnv(), "no random source"},
		{`{NOW}`, &Env{}, "no evaluation time"},
		{`{"a" | APPEND, "{b | LOWER}"}`, &Env{Strict: true}, "column 18: unknown attribute b"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := MustParse(tt.src).Eval(tt.env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("lookup with no default row", func(t *testing.T) {
		env := testEnv()
		delete(env.Lookups["offices"].Rows, "*")
		_, err := MustParse(`{"XYZ" | LOOKUP, "offices", "city"}`).Eval(env)
		assert.ErrorContains(t, err, `table offices has no row with code "XYZ"`)
	})
}

func TestRefsAndCalls(t *testing.T) {
	tmpl := MustParse(`{first_name | APPEND, "{last_name}"}{OktaUser.login}{$target.email}{first_name}{office | LOOKUP, "offices", "{x}"}`)
	assert.Equal(t, []Ref{{Attr: "first_name"}, {Attr: "last_name"}, {Entity: "OktaUser", Attr: "login"},
		{Entity: TargetEntity, Attr: "email"}, {Attr: "office"}, {Attr: "x"}}, tmpl.Refs())
	calls := tmpl.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, Call{Func: "APPEND", Args: []string{""}, Col: 15}, calls[0])
	assert.Equal(t, Call{Func: "LOOKUP", Args: []string{"offices", ""}, Col: 90}, calls[1])
	assert.True(t, MustParse(`a \{b\}`).IsConstant())
	assert.False(t, tmpl.IsConstant())
}

func TestEscape(t *testing.T) {
	env := testEnv()
	env.Attrs["note"] = `say "hi"\`
	env.Escape = EscapeJSON
	got, err := MustParse(`{"note":"{note}","n2":"{"x" | APPEND, "{note}"}"}`).Eval(env)
	require.NoError(t, err)
	assert.Equal(t, `{"note":"say \"hi\"\\","n2":"xsay \"hi\"\\"}`, got)
	assert.Equal(t, `a\nb\u0001`, EscapeJSON("a\nb\x01"))
}

func TestRandom(t *testing.T) {
	env := &Env{Rand: bytes.NewReader(bytes.Repeat([]byte{7, 250, 33, 1, 200}, 400))}
	for src, check := range map[string]func(string) bool{
		`{RANDOM_NUMBER_GENERATOR, 6}`:        func(s string) bool { return len(s) == 6 && strings.Trim(s, "0123456789") == "" },
		`{RANDOM_ALPHANUMERIC_GENERATOR, 12}`: func(s string) bool { return len(s) == 12 },
		`{RANDOM_STRING_GENERATOR, 8}`:        func(s string) bool { return len(s) == 8 && strings.Trim(s, "0123456789") == s },
		`{UUID}`:                              func(s string) bool { return len(s) == 36 && s[14] == '4' },
		`{uuid | UPPER}`:                      func(s string) bool { return len(s) == 36 && s == strings.ToUpper(s) },
	} {
		got, err := MustParse(src).Eval(env)
		require.NoError(t, err, src)
		assert.True(t, check(got), "%s gave %q", src, got)
	}
	// The same source gives the same value: evaluation is pure.
	a, _ := MustParse(`{UUID}`).Eval(&Env{Rand: bytes.NewReader(make([]byte, 16))})
	b, _ := MustParse(`{UUID}`).Eval(&Env{Rand: bytes.NewReader(make([]byte, 16))})
	assert.Equal(t, a, b)
	assert.Equal(t, "00000000-0000-4000-8000-000000000000", a)
}

func TestEvalUnique(t *testing.T) {
	env := &Env{Attrs: map[string]string{"first_name": "John", "last_name": "Smith", "middle_name": ""}}
	candidates := []*Template{
		MustParse(`{first_name | FIRST_N, 1 | LOWER}{middle_name | FIRST_N, 1 | LOWER}{last_name | LOWER}`),
		MustParse(`{first_name | LOWER}.{last_name | LOWER}`),
		MustParse(`{first_name | FIRST_N, 1 | LOWER}{last_name | LOWER | NEXT_NUMBER, 2, 3}`),
	}
	tests := []struct {
		taken []string
		want  string
	}{
		{nil, "jsmith"},
		{[]string{"jsmith"}, "john.smith"},
		{[]string{"jsmith", "john.smith"}, "jsmith2"},
		{[]string{"jsmith", "john.smith", "jsmith2"}, "jsmith3"},
		{[]string{"jsmith", "john.smith", "jsmith2", "jsmith3", "jsmith4"}, ""},
	}
	for _, tt := range tests {
		var asked []string
		got, err := EvalUnique(context.Background(), candidates, env, nil, func(_ context.Context, v string) (bool, error) {
			asked = append(asked, v)
			for _, x := range tt.taken {
				if x == v {
					return true, nil
				}
			}
			return false, nil
		})
		if tt.want == "" {
			assert.ErrorIs(t, err, ErrNoUniqueValue)
			// jsmith is tried once (the NEXT_NUMBER template's first value repeats it).
			assert.Equal(t, []string{"jsmith", "john.smith", "jsmith2", "jsmith3", "jsmith4"}, asked)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	assert.Equal(t, 0, env.Counter, "env is not modified")

	_, err := EvalUnique(context.Background(), candidates[:1], env, nil, func(context.Context, string) (bool, error) {
		return false, errors.New("okta down")
	})
	assert.ErrorContains(t, err, "uniqueness check: okta down")
}

func TestDefaultNextNumber(t *testing.T) {
	tmpl := MustParse(`jsmith{NEXT_NUMBER}`)
	assert.Equal(t, 99, tmpl.Attempts())
	for k, want := range []string{"jsmith", "jsmith2", "jsmith3"} {
		got, err := tmpl.Eval(&Env{Counter: k})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}

func TestFuncsDocumented(t *testing.T) {
	doc, err := readDoc()
	require.NoError(t, err)
	for _, f := range Funcs() {
		assert.Contains(t, doc, "`"+f, "docs/policy.md documents %s", f)
	}
	for _, f := range []string{"ASCII", "APPEND", "PREPEND", "LOWER", "UPPER", "TRIM", "SUBSTRING", "FIRST_N", "LAST_N",
		"LEFT_PAD", "RIGHT_PAD", "REPLACE_ALL", "REMOVE_CHARS", "REMOVE_DIACRITICS", "REMOVE_DOMAIN", "REMOVE_WHITESPACE",
		"SPLIT", "LOWER_SNAKE_CASE", "UPPER_SNAKE_CASE", "TITLE_CASE", "SENTENCE_CASE", "CAMEL_CASE", "DATE_FORMAT",
		"ASSUME_TIME_ZONE", "COUNTRY_CODE_ISO3166", "LANGUAGE_RFC5646", "PHONE_NUMBER_E164", "LOOKUP", "IF", "IF_EMPTY",
		"NEXT_NUMBER", "UUID", "RANDOM_ALPHANUMERIC_GENERATOR", "RANDOM_NUMBER_GENERATOR", "RANDOM_STRING_GENERATOR"} {
		assert.Contains(t, Funcs(), f)
	}
}
