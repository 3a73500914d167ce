package transform

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// funcDef is one transformer function. Arguments after the input are
// checked at parse time: their count, and kinds ('i' whole number, 's'
// text: quoted, a bare word or a number).
type funcDef struct {
	name     string
	min, max int
	kinds    string
	usage    string // the arguments as documented, e.g. `, "suffix"`
	source   bool   // takes no input: {UUID}
	pipes    bool   // a source that may also be piped (NEXT_NUMBER appends)
	check    func(args []arg) string
	fn       func(env *Env, in string, args []arg) (string, error)
	aliasFor string
}

// funcTable is built once; it is read-only afterwards.
var funcTable = sync.OnceValue(func() map[string]*funcDef {
	m := map[string]*funcDef{}
	for _, f := range builtins() {
		m[f.name] = f
	}
	for alias, name := range map[string]string{
		"SUB_STRING": "SUBSTRING", "DEFAULT": "IF_EMPTY", "ELSE": "IF_EMPTY",
		"UPPER_CASE": "UPPER", "LOWER_CASE": "LOWER", "UUID_GENERATOR": "UUID",
	} {
		f := *m[name]
		f.aliasFor = name
		m[alias] = &f
	}
	return m
})

// funcNames lists the canonical function names (for suggestions and docs).
func funcNames() []string {
	var names []string
	for n, f := range funcTable() {
		if f.aliasFor == "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Funcs lists the canonical function names, sorted.
func Funcs() []string { return funcNames() }

func lookupFunc(name string) *funcDef {
	return funcTable()[strings.ToUpper(name)]
}

func builtins() []*funcDef {
	text := func(name string, f func(string) string) *funcDef {
		return &funcDef{name: name, fn: func(_ *Env, in string, _ []arg) (string, error) { return f(in), nil }}
	}
	return []*funcDef{
		text("ASCII", toASCII),
		text("REMOVE_DIACRITICS", removeDiacritics),
		text("LOWER", strings.ToLower),
		text("UPPER", strings.ToUpper),
		text("REMOVE_WHITESPACE", removeWhitespace),
		text("REMOVE_DOMAIN", func(s string) string { v, _, _ := strings.Cut(s, "@"); return v }),
		text("LOWER_SNAKE_CASE", func(s string) string { return snake(s, unicode.ToLower) }),
		text("UPPER_SNAKE_CASE", func(s string) string { return snake(s, unicode.ToUpper) }),
		text("TITLE_CASE", titleCase),
		text("SENTENCE_CASE", sentenceCase),
		text("CAMEL_CASE", camelCase),
		{name: "TRIM", max: 1, kinds: "s", usage: `[, "cutset"]`, fn: fnTrim},
		{name: "APPEND", min: 1, max: 1, kinds: "s", usage: `, "suffix"`, fn: fnAppend},
		{name: "PREPEND", min: 1, max: 1, kinds: "s", usage: `, "prefix"`, fn: fnPrepend},
		{name: "SUBSTRING", min: 1, max: 2, kinds: "ii", usage: `, start[, length]`, fn: fnSubstring},
		{name: "FIRST_N", min: 1, max: 1, kinds: "i", usage: `, n`, fn: fnFirstN, check: checkCount},
		{name: "LAST_N", min: 1, max: 1, kinds: "i", usage: `, n`, fn: fnLastN, check: checkCount},
		{name: "LEFT_PAD", min: 1, max: 2, kinds: "is", usage: `, length[, "pad"]`, fn: fnPad(true)},
		{name: "RIGHT_PAD", min: 1, max: 2, kinds: "is", usage: `, length[, "pad"]`, fn: fnPad(false)},
		{name: "REPLACE_ALL", min: 2, max: 2, kinds: "ss", usage: `, "old", "new"`, fn: fnReplaceAll},
		{name: "REMOVE_CHARS", min: 1, max: maxArgs, kinds: "s", usage: `, "chars"[, "chars"…]`, fn: fnRemoveChars},
		{name: "SPLIT", min: 2, max: 2, kinds: "si", usage: `, "separator", index`, fn: fnSplit},
		{name: "DATE_FORMAT", min: 1, max: 2, kinds: "ss", usage: `, "output layout"[, "input layout"]`, fn: fnDateFormat},
		{name: "ASSUME_TIME_ZONE", min: 1, max: 1, kinds: "s", usage: `, "Area/City"`, fn: fnAssumeTimeZone},
		{name: "COUNTRY_CODE_ISO3166", max: 1, kinds: "s", usage: `[, alpha2|alpha3|numeric|name]`, fn: fnCountry, check: checkCountryFormat},
		{name: "LANGUAGE_RFC5646", fn: fnLanguage},
		{name: "PHONE_NUMBER_E164", max: 1, kinds: "s", usage: `[, "default region"]`, fn: fnPhone},
		{name: "LOOKUP", min: 2, max: 3, kinds: "sss", usage: `, "table"[, "key column"], "return column"`, fn: fnLookup},
		{name: "IF", min: 1, max: 3, kinds: "sss", usage: `, "then"[, ELSE, "else"]`, fn: fnIf, check: checkIf},
		{name: "IF_EMPTY", min: 1, max: 1, kinds: "s", usage: `, "fallback"`, fn: fnIfEmpty},
		{name: "NEXT_NUMBER", max: 2, kinds: "ii", usage: `[, start[, count]]`, source: true, pipes: true, fn: fnNextNumber, check: checkNext},
		{name: "FROM_ENTITY_ATTRIBUTE", min: 1, max: 2, kinds: "ss", usage: `, "EntityType", "attribute"`, source: true,
			fn: fnFromEntity, check: checkFromEntity},
		{name: "UUID", source: true, fn: fnUUID},
		{name: "NOW", source: true, fn: fnNow},
		{name: "RANDOM_ALPHANUMERIC_GENERATOR", min: 1, max: 1, kinds: "i", usage: `, length`, source: true,
			fn: fnRandom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), check: checkLength},
		{name: "RANDOM_NUMBER_GENERATOR", min: 1, max: 1, kinds: "i", usage: `, length`, source: true,
			fn: fnRandom("0123456789"), check: checkLength},
		{name: "RANDOM_STRING_GENERATOR", min: 1, max: 1, kinds: "i", usage: `, length`, source: true,
			fn: fnRandom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), check: checkLength},
	}
}

func fnTrim(env *Env, in string, args []arg) (string, error) {
	if len(args) == 0 {
		return strings.TrimSpace(in), nil
	}
	cut, err := str(env, &args[0])
	return strings.Trim(in, cut), err
}

func fnAppend(env *Env, in string, args []arg) (string, error) {
	s, err := str(env, &args[0])
	if s == "" {
		return in, err
	}
	return in + s, err
}

func fnPrepend(env *Env, in string, args []arg) (string, error) {
	s, err := str(env, &args[0])
	if s == "" {
		return in, err
	}
	return s + in, err
}

// runeOffset is the byte offset of the n-th rune of s (len(s) past the end).
func runeOffset(s string, n int) int {
	if n <= 0 {
		return 0
	}
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

func fnSubstring(_ *Env, in string, args []arg) (string, error) {
	start := runeOffset(in, args[0].n)
	if len(args) == 1 {
		return in[start:], nil
	}
	if args[1].n < 0 {
		return "", errors.New("length must not be negative")
	}
	return in[start : start+runeOffset(in[start:], args[1].n)], nil
}

func fnFirstN(_ *Env, in string, args []arg) (string, error) {
	return in[:runeOffset(in, args[0].n)], nil
}

func checkCount(args []arg) string {
	if args[0].n < 0 {
		return fmt.Sprintf("the count must not be negative, got %d", args[0].n)
	}
	return ""
}

func fnLastN(_ *Env, in string, args []arg) (string, error) {
	n := utf8.RuneCountInString(in) - args[0].n
	return in[runeOffset(in, n):], nil
}

func fnPad(left bool) func(*Env, string, []arg) (string, error) {
	return func(env *Env, in string, args []arg) (string, error) {
		pad := " "
		if len(args) == 2 {
			var err error
			if pad, err = str(env, &args[1]); err != nil {
				return "", err
			}
			if pad == "" {
				return "", errors.New("pad must not be empty")
			}
		}
		n := args[0].n - utf8.RuneCountInString(in)
		if n <= 0 {
			return in, nil
		}
		fill := strings.Repeat(pad, n)
		fill = fill[:runeOffset(fill, n)]
		if left {
			return fill + in, nil
		}
		return in + fill, nil
	}
}

func fnReplaceAll(env *Env, in string, args []arg) (string, error) {
	old, err := str(env, &args[0])
	if err != nil {
		return "", err
	}
	if old == "" {
		return "", errors.New("the text to replace must not be empty")
	}
	repl, err := str(env, &args[1])
	return strings.ReplaceAll(in, old, repl), err
}

// maxArgs bounds variadic functions (REMOVE_CHARS, "a", "b", …).
const maxArgs = 64

// fnRemoveChars removes every character of every argument:
// {REMOVE_CHARS, "a@b.c", "@", "."} → abc.
func fnRemoveChars(env *Env, in string, args []arg) (string, error) {
	var chars string
	for i := range args {
		c, err := str(env, &args[i])
		if err != nil {
			return "", err
		}
		chars += c
	}
	if !strings.ContainsAny(in, chars) {
		return in, nil
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(chars, r) {
			return -1
		}
		return r
	}, in), nil
}

func fnSplit(env *Env, in string, args []arg) (string, error) {
	sep, err := str(env, &args[0])
	if err != nil {
		return "", err
	}
	if sep == "" {
		return "", errors.New("separator must not be empty")
	}
	parts := strings.Split(in, sep)
	i := args[1].n
	if i < 0 {
		i += len(parts)
	}
	if i < 0 || i >= len(parts) {
		return "", nil
	}
	return parts[i], nil
}

func fnIf(env *Env, in string, args []arg) (string, error) {
	if in != "" {
		return str(env, &args[0])
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0].kind == argIdent && strings.EqualFold(rest[0].s, "ELSE") {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return "", nil
	}
	return str(env, &rest[0])
}

func checkIf(args []arg) string {
	if len(args) == 3 && !(args[1].kind == argIdent && strings.EqualFold(args[1].s, "ELSE")) {
		return `write IF, "then", ELSE, "else" (or IF, "then", "else")`
	}
	return ""
}

func fnIfEmpty(env *Env, in string, args []arg) (string, error) {
	if in != "" {
		return in, nil
	}
	return str(env, &args[0])
}

const defaultNextCount = 98

func nextCount(args []arg) int {
	if len(args) == 2 {
		return args[1].n
	}
	return defaultNextCount
}

func checkNext(args []arg) string {
	if len(args) >= 1 && args[0].n < 0 {
		return "start must not be negative"
	}
	if len(args) == 2 && (args[1].n < 1 || args[1].n > 10000) {
		return "count must be 1 to 10000"
	}
	return ""
}

// fnNextNumber adds nothing on the first attempt (Counter 0), then
// start, start+1, … (start defaults to 2: jsmith, jsmith2, jsmith3).
func fnNextNumber(env *Env, in string, args []arg) (string, error) {
	if env.Counter <= 0 {
		return in, nil
	}
	start := 2
	if len(args) > 0 {
		start = args[0].n
	}
	return in + strconv.Itoa(start+env.Counter-1), nil
}

// entityRef is the reference FROM_ENTITY_ATTRIBUTE makes: its arguments
// "EntityType", "attribute" or the one argument "EntityType.attribute".
func entityRef(args []arg) (Ref, bool) {
	ent, attr := args[0].s, ""
	if len(args) == 2 {
		attr = args[1].s
	} else {
		ent, attr, _ = strings.Cut(ent, ".")
	}
	return Ref{Entity: ent, Attr: attr}, ent != "" && attr != "" && !strings.Contains(attr, ".")
}

func checkFromEntity(args []arg) string {
	for _, a := range args {
		if a.t != nil || a.ref != nil {
			return "the entity type and attribute must be constants"
		}
	}
	if _, ok := entityRef(args); !ok {
		return `write {FROM_ENTITY_ATTRIBUTE, "OktaUser", "login"}`
	}
	return ""
}

// fnFromEntity reads an attribute of an earlier step's entity: the same
// value as {OktaUser.login}.
func fnFromEntity(env *Env, _ string, args []arg) (string, error) {
	r, _ := entityRef(args)
	out, ok := env.Outputs[r.Entity]
	if !ok {
		return "", fmt.Errorf("no earlier step produced %s (for %s)", r.Entity, r)
	}
	return out[r.Attr], nil
}

func fnNow(env *Env, _ string, _ []arg) (string, error) {
	if env.Now.IsZero() {
		return "", errors.New("no evaluation time (Env.Now)")
	}
	return env.Now.Format(time.RFC3339), nil
}

func fnUUID(env *Env, _ string, _ []arg) (string, error) {
	if env.Rand == nil {
		return "", errors.New("no random source here (random values are made inside activities)")
	}
	var u [16]byte
	if _, err := io.ReadFull(env.Rand, u[:]); err != nil {
		return "", fmt.Errorf("random source: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return string(b[:]), nil
}

const maxRandomLength = 1024

func checkLength(args []arg) string {
	if args[0].n < 1 || args[0].n > maxRandomLength {
		return fmt.Sprintf("length must be 1 to %d", maxRandomLength)
	}
	return ""
}

// fnRandom draws uniformly from alphabet (rejection sampling, no modulo bias).
func fnRandom(alphabet string) func(*Env, string, []arg) (string, error) {
	limit := 256 - 256%len(alphabet)
	return func(env *Env, _ string, args []arg) (string, error) {
		if env.Rand == nil {
			return "", errors.New("no random source here (random values are made inside activities)")
		}
		n := args[0].n
		out := make([]byte, 0, n)
		buf := make([]byte, n+8)
		for len(out) < n {
			if _, err := io.ReadFull(env.Rand, buf); err != nil {
				return "", fmt.Errorf("random source: %w", err)
			}
			for _, c := range buf {
				if int(c) < limit && len(out) < n {
					out = append(out, alphabet[int(c)%len(alphabet)])
				}
			}
		}
		return string(out), nil
	}
}

func fnLookup(env *Env, in string, args []arg) (string, error) {
	name, err := str(env, &args[0])
	if err != nil {
		return "", err
	}
	t := env.Lookups[name]
	if t == nil {
		var names []string
		for n := range env.Lookups {
			names = append(names, n)
		}
		slices.Sort(names)
		if s := suggest(name, names); s != "" {
			return "", fmt.Errorf("unknown lookup table %q (did you mean %q?)", name, s)
		}
		return "", fmt.Errorf("unknown lookup table %q", name)
	}
	keyCol := t.Key
	retArg := &args[1]
	if len(args) == 3 {
		if keyCol, err = str(env, &args[1]); err != nil {
			return "", err
		}
		retArg = &args[2]
	}
	ret, err := str(env, retArg)
	if err != nil {
		return "", err
	}
	for _, c := range []string{keyCol, ret} {
		if c != "" && !slices.Contains(t.Columns, c) {
			return "", fmt.Errorf("table %s has no column %q (columns: %s)", name, c, strings.Join(t.Columns, ", "))
		}
	}
	row := t.find(keyCol, in)
	if row == nil {
		row = t.find(keyCol, "*")
	}
	if row == nil {
		if in == "" {
			return "", nil
		}
		return "", fmt.Errorf("table %s has no row with %s %q (add a row keyed * for a default)", name, keyCol, in)
	}
	return row[ret], nil
}

// find returns the row whose column col is v: exact, then case-insensitive.
func (t *Table) find(col, v string) map[string]string {
	if col == t.Key || col == "" {
		if row, ok := t.Rows[v]; ok {
			return row
		}
	}
	var fold map[string]string
	for _, k := range slices.Sorted(maps.Keys(t.Rows)) { // deterministic when several rows match
		row := t.Rows[k]
		if row[col] == v {
			return row
		}
		if fold == nil && strings.EqualFold(row[col], v) {
			fold = row
		}
	}
	return fold
}
