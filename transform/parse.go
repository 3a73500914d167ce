package transform

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// part is literal text or one {…} expression.
type part struct {
	lit  string
	expr *expr
}

// expr is {head | call | call}. The head is a reference, a literal
// argument, or a function-first call.
type expr struct {
	col  int
	ref  *Ref
	lit  *arg
	head *call
	pipe []call
}

type call struct {
	col  int
	fn   *funcDef
	args []arg
	// input is true when the head call takes its first argument as input.
	input bool
}

type argKind uint8

const (
	argString argKind = iota
	argInt
	argIdent
)

type arg struct {
	col  int
	kind argKind
	s    string    // constant text (string, identifier, or the number as written)
	n    int       // argInt
	t    *Template // string with placeholders; nil when constant
	ref  *expr     // an unquoted nested {…} argument
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

type parser struct {
	src   string
	i     int
	depth int
	refs  []Ref
	calls []Call
	next  int
}

// Parse parses src once. Errors are *Error with the column.
func Parse(src string) (*Template, error) {
	p := &parser{src: src}
	parts, err := p.template(0)
	if err != nil {
		return nil, err
	}
	return &Template{src: src, parts: parts, refs: p.refs, calls: p.calls, next: p.next}, nil
}

func (p *parser) col(i int) int { return utf8.RuneCountInString(p.src[:min(i, len(p.src))]) + 1 }

func (p *parser) errf(i int, format string, a ...any) error {
	return &Error{Col: p.col(i), Msg: fmt.Sprintf(format, a...)}
}

// template parses text up to the closing quote (quote != 0) or the end.
// Outside quotes only \{ and \} are escapes, so JSON bodies keep their
// backslashes; inside quotes \", \', \\ are escapes too.
func (p *parser) template(quote byte) ([]part, error) {
	open := p.i - 1
	var parts []part
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case quote != 0 && c == quote:
			flush()
			return parts, nil
		case c == '\\' && p.i+1 < len(p.src) && (p.src[p.i+1] == '{' || p.src[p.i+1] == '}' ||
			quote != 0 && (p.src[p.i+1] == '"' || p.src[p.i+1] == '\'' || p.src[p.i+1] == '\\')):
			lit.WriteByte(p.src[p.i+1])
			p.i += 2
		case c == '{' && p.opensExpr():
			flush()
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			parts = append(parts, part{expr: e})
		default:
			lit.WriteByte(c)
			p.i++
		}
	}
	if quote != 0 {
		return nil, p.errf(open, "unterminated string: missing %c", quote)
	}
	flush()
	return parts, nil
}

// opensExpr reports whether the '{' at p.i starts an expression: it must
// be followed by a name, a quote, a number, or '$'. Any other '{' (as in
// the JSON body {"login": …}) is literal text.
func (p *parser) opensExpr() bool {
	j := p.i + 1
	for j < len(p.src) && (p.src[j] == ' ' || p.src[j] == '\t') {
		j++
	}
	if j >= len(p.src) {
		return false
	}
	c := p.src[j]
	if c == '"' || c == '\'' {
		// {"login": …} is JSON; {"literal" | LOWER} is an expression.
		return p.quotedHead(j)
	}
	return isIdentStart(c) || c == '$' || c >= '0' && c <= '9'
}

// quotedHead reports whether the string at j is followed by | or }.
func (p *parser) quotedHead(j int) bool {
	q := p.src[j]
	for j++; j < len(p.src); j++ {
		if p.src[j] == '\\' {
			j++
			continue
		}
		if p.src[j] == q {
			break
		}
	}
	for j++; j < len(p.src) && (p.src[j] == ' ' || p.src[j] == '\t'); j++ {
	}
	return j < len(p.src) && (p.src[j] == '|' || p.src[j] == '}')
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '.' || c == '-' }

func (p *parser) skipSpace() {
	for p.i < len(p.src) && (p.src[p.i] == ' ' || p.src[p.i] == '\t' || p.src[p.i] == '\n' || p.src[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) ident() string {
	start := p.i
	if p.i < len(p.src) && p.src[p.i] == '$' {
		p.i++
	}
	for p.i < len(p.src) && isIdent(p.src[p.i]) {
		p.i++
	}
	return p.src[start:p.i]
}

// expr parses {…} starting at the '{'.
func (p *parser) expr() (*expr, error) {
	open := p.i
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.errf(open, "expressions nested too deeply")
	}
	p.i++
	p.skipSpace()
	if p.i >= len(p.src) {
		return nil, p.errf(open, "unclosed {: missing }")
	}
	e := &expr{col: p.col(p.i)}
	start := p.i
	switch c := p.src[p.i]; {
	case c == '"' || c == '\'' || c >= '0' && c <= '9' || c == '-':
		a, err := p.arg()
		if err != nil {
			return nil, err
		}
		e.lit = &a
	default:
		name := p.ident()
		if name == "" {
			return nil, p.errf(start, "expected an attribute or function name")
		}
		p.skipSpace()
		fn := lookupFunc(name)
		switch {
		case p.i < len(p.src) && p.src[p.i] == ',':
			if fn == nil {
				return nil, p.unknownFunc(start, name)
			}
			c, err := p.call(start, fn, true)
			if err != nil {
				return nil, err
			}
			e.head = &c
		case fn != nil && fn.source:
			c, err := p.finish(start, fn, nil, true)
			if err != nil {
				return nil, err
			}
			e.head = &c
		default:
			r, err := p.ref(start, name)
			if err != nil {
				return nil, err
			}
			e.ref = &r
		}
	}
	for {
		p.skipSpace()
		if p.i >= len(p.src) {
			return nil, p.errf(open, "unclosed {: missing }")
		}
		switch p.src[p.i] {
		case '}':
			p.i++
			return e, nil
		case '|':
			p.i++
			p.skipSpace()
			start := p.i
			name := p.ident()
			if name == "" {
				return nil, p.errf(start, "expected a function name after |")
			}
			fn := lookupFunc(name)
			if fn == nil {
				return nil, p.unknownFunc(start, name)
			}
			if fn.source && !fn.pipes {
				return nil, p.errf(start, "%s takes no input: write {%s} on its own", fn.name, fn.name)
			}
			c, err := p.call(start, fn, false)
			if err != nil {
				return nil, err
			}
			e.pipe = append(e.pipe, c)
		default:
			return nil, p.errf(p.i, "expected | or } but found %q", p.rest())
		}
	}
}

// rest is a short excerpt of the input at p.i for error messages.
func (p *parser) rest() string {
	s := p.src[p.i:]
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return s
}

func (p *parser) ref(start int, name string) (Ref, error) {
	var r Ref
	switch {
	case strings.HasPrefix(name, "$"):
		ent, attr, ok := strings.Cut(name, ".")
		if !ok || !strings.EqualFold(ent, TargetEntity) || attr == "" || strings.Contains(attr, ".") {
			return r, p.errf(start, "bad reference %s: write {$target.attribute}", name)
		}
		r = Ref{Entity: TargetEntity, Attr: attr}
	case strings.Contains(name, "."):
		ent, attr, _ := strings.Cut(name, ".")
		if ent == "" || attr == "" || strings.Contains(attr, ".") {
			return r, p.errf(start, "bad reference %s: write {EntityType.attribute}", name)
		}
		r = Ref{Entity: ent, Attr: attr}
	default:
		r = Ref{Attr: name}
	}
	if !slices.Contains(p.refs, r) {
		p.refs = append(p.refs, r)
	}
	return r, nil
}

// call parses ", arg, arg" after a function name.
func (p *parser) call(start int, fn *funcDef, head bool) (call, error) {
	var args []arg
	for {
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != ',' {
			break
		}
		p.i++
		p.skipSpace()
		if p.i >= len(p.src) {
			break
		}
		a, err := p.arg()
		if err != nil {
			return call{}, err
		}
		args = append(args, a)
	}
	return p.finish(start, fn, args, head)
}

// finish checks the argument count and kinds.
func (p *parser) finish(start int, fn *funcDef, args []arg, head bool) (call, error) {
	c := call{col: p.col(start), fn: fn, args: args, input: head && !fn.source}
	rest := args
	if c.input {
		if len(args) == 0 {
			return c, p.errf(start, "%s needs an input: write {attr | %s} or {%s, \"value\"%s}", fn.name, fn.name, fn.name, fn.usage)
		}
		rest = args[1:]
	}
	if len(rest) < fn.min || len(rest) > fn.max {
		want := strconv.Itoa(fn.min)
		if fn.max > fn.min {
			want = fmt.Sprintf("%d to %d", fn.min, fn.max)
		}
		return c, p.errf(start, "%s takes %s argument(s), got %d (usage: %s%s)", fn.name, want, len(rest), fn.name, fn.usage)
	}
	for i, a := range rest {
		if i < len(fn.kinds) && fn.kinds[i] == 'i' && a.kind != argInt {
			return c, &Error{Col: a.col, Msg: fmt.Sprintf("%s argument %d must be a whole number", fn.name, i+1)}
		}
	}
	if fn.check != nil {
		if msg := fn.check(rest); msg != "" {
			return c, p.errf(start, "%s: %s", fn.name, msg)
		}
	}
	switch fn.name {
	case "NEXT_NUMBER":
		p.next = max(p.next, nextCount(rest))
	case "FROM_ENTITY_ATTRIBUTE":
		// Listed like {OktaUser.login}, so policy checks see the dependency.
		if r, ok := entityRef(rest); ok && !slices.Contains(p.refs, r) {
			p.refs = append(p.refs, r)
		}
	}
	pc := Call{Func: fn.name, Col: c.col}
	for _, a := range args {
		if a.t != nil || a.ref != nil {
			pc.Args = append(pc.Args, "")
		} else {
			pc.Args = append(pc.Args, a.s)
		}
	}
	p.calls = append(p.calls, pc)
	return c, nil
}

// arg parses one argument: "string", 'string', number, identifier, {…}.
func (p *parser) arg() (arg, error) {
	a := arg{col: p.col(p.i)}
	c := p.src[p.i]
	switch {
	case c == '"' || c == '\'':
		p.i++
		p.depth++
		if p.depth > maxDepth {
			return a, p.errf(p.i-1, "expressions nested too deeply")
		}
		parts, err := p.template(c)
		p.depth--
		if err != nil {
			return a, err
		}
		p.i++ // closing quote
		a.kind = argString
		if len(parts) == 1 && parts[0].expr == nil {
			a.s = parts[0].lit
		} else if len(parts) > 0 {
			a.t = &Template{parts: parts}
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		p.i++
		for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
			p.i++
		}
		n, err := strconv.Atoi(p.src[start:p.i])
		if err != nil {
			return a, p.errf(start, "bad number %q", p.src[start:p.i])
		}
		a.kind, a.s, a.n = argInt, p.src[start:p.i], n
	case c == '{':
		e, err := p.expr()
		if err != nil {
			return a, err
		}
		a.ref = e
	case isIdentStart(c):
		a.kind, a.s = argIdent, p.ident()
	default:
		return a, p.errf(p.i, "expected an argument but found %q", p.rest())
	}
	return a, nil
}

func (p *parser) unknownFunc(i int, name string) error {
	if s := suggest(name, funcNames()); s != "" {
		return p.errf(i, "unknown function %s (did you mean %s?)", name, s)
	}
	return p.errf(i, "unknown function %s", name)
}

// suggest returns the candidate closest to name (case-insensitive) when
// it is close enough to be a typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	lname := strings.ToLower(name)
	for _, c := range candidates {
		d := distance(lname, strings.ToLower(c))
		if d < bestD || d == bestD && best != "" && c < best {
			best, bestD = c, d
		}
	}
	if bestD > max(1, len(name)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance of a and b (bytes).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
