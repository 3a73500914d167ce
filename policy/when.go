package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Condition is a compiled When expression, SCIM-filter-like:
//
//	department eq "Engineering" and country_code ne "US"
//	not (title co "contractor") or manager_id pr
//	changed(department) and department eq "Sales"
//	previous.employee_type eq "contractor"
//
// Operators: eq ne co sw ew gt ge lt le pr, joined by and / or / not and
// parentheses. String comparisons ignore case (as SCIM's default); gt/lt
// compare numbers when both sides are numbers, else text (ISO dates sort
// correctly). A missing attribute is empty: `x eq ""` is true and `x pr`
// false.
//
// A change (a mover) also has the attributes before it: previous.<attr>
// reads one, and changed(<attr>) is true when its value differs (ignoring
// case and surrounding space, as eq does).
type Condition struct {
	src  string
	root cond
}

// PreviousPrefix marks an attribute a condition reads from before the
// change: previous.department.
const PreviousPrefix = "previous."

// condFuncs are the functions a condition may call.
var condFuncs = []string{"changed"}

type cond interface {
	eval(now, prev map[string]string) bool
}

type condAnd struct{ l, r cond }
type condOr struct{ l, r cond }
type condNot struct{ c cond }
type condCmp struct {
	attr, op, value string
	previous        bool // attr is read from before the change
}
type condChanged struct{ attr string }

func (c condAnd) eval(a, p map[string]string) bool { return c.l.eval(a, p) && c.r.eval(a, p) }
func (c condOr) eval(a, p map[string]string) bool  { return c.l.eval(a, p) || c.r.eval(a, p) }
func (c condNot) eval(a, p map[string]string) bool { return !c.c.eval(a, p) }

func (c condChanged) eval(a, p map[string]string) bool {
	return !strings.EqualFold(strings.TrimSpace(a[c.attr]), strings.TrimSpace(p[c.attr]))
}

func (c condCmp) eval(a, p map[string]string) bool {
	if c.previous {
		a = p
	}
	v := a[c.attr]
	lv, rv := strings.ToLower(v), strings.ToLower(c.value)
	switch c.op {
	case "pr":
		return strings.TrimSpace(v) != ""
	case "eq":
		return lv == rv
	case "ne":
		return lv != rv
	case "co":
		return strings.Contains(lv, rv)
	case "sw":
		return strings.HasPrefix(lv, rv)
	case "ew":
		return strings.HasSuffix(lv, rv)
	}
	cmp := strings.Compare(lv, rv)
	if x, err := strconv.ParseFloat(v, 64); err == nil {
		if y, err := strconv.ParseFloat(c.value, 64); err == nil {
			cmp = 0
			if x < y {
				cmp = -1
			} else if x > y {
				cmp = 1
			}
		}
	}
	switch c.op {
	case "gt":
		return cmp > 0
	case "ge":
		return cmp >= 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	}
	return false
}

// CompileCondition parses a When expression. Errors name the column.
func CompileCondition(when string) (*Condition, error) {
	toks, err := lexCondition(when)
	if err != nil {
		return nil, err
	}
	p := &condParser{toks: toks, src: when}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, p.errf("unexpected %q", p.toks[p.i].text)
	}
	return &Condition{src: when, root: root}, nil
}

// Eval reports whether attrs satisfy the condition when nothing changed
// (previous.x reads x; changed(x) is false): the state a rule grants by,
// which reconciliation compares with.
func (c *Condition) Eval(attrs map[string]string) bool { return c.root.eval(attrs, attrs) }

// EvalChange reports whether a change from previous to attrs satisfies the
// condition. previous nil is a person jml knew nothing of (every
// attribute was empty).
func (c *Condition) EvalChange(attrs, previous map[string]string) bool {
	return c.root.eval(attrs, previous)
}

// ReadsChange reports whether the condition reads the attributes before a
// change (previous.x or changed(x)): it holds for a change, not a state.
func (c *Condition) ReadsChange() bool {
	var reads func(cond) bool
	reads = func(n cond) bool {
		switch n := n.(type) {
		case condAnd:
			return reads(n.l) || reads(n.r)
		case condOr:
			return reads(n.l) || reads(n.r)
		case condNot:
			return reads(n.c)
		case condCmp:
			return n.previous
		case condChanged:
			return true
		}
		return false
	}
	return reads(c.root)
}

// String returns the source.
func (c *Condition) String() string { return c.src }

// Attributes lists the attributes the condition reads (previous.x and
// changed(x) read x).
func (c *Condition) Attributes() []string {
	var out []string
	var walk func(cond)
	walk = func(n cond) {
		switch n := n.(type) {
		case condAnd:
			walk(n.l)
			walk(n.r)
		case condOr:
			walk(n.l)
			walk(n.r)
		case condNot:
			walk(n.c)
		case condCmp:
			out = append(out, n.attr)
		case condChanged:
			out = append(out, n.attr)
		}
	}
	walk(c.root)
	return out
}

// EvalCondition compiles when and evaluates it against attrs, nothing
// changed (Eval). An empty condition is true.
func EvalCondition(when string, attrs map[string]string) (bool, error) {
	return EvalChange(when, attrs, attrs)
}

// EvalChange compiles when and evaluates it for a change from previous to
// attrs (EvalChange). An empty condition is true.
func EvalChange(when string, attrs, previous map[string]string) (bool, error) {
	if strings.TrimSpace(when) == "" {
		return true, nil
	}
	c, err := CompileCondition(when)
	if err != nil {
		return false, err
	}
	return c.EvalChange(attrs, previous), nil
}

type condToken struct {
	text   string
	quoted bool
	col    int
}

func lexCondition(s string) ([]condToken, error) {
	var toks []condToken
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(' || r == ')':
			toks = append(toks, condToken{text: string(r), col: i + 1})
			i++
		case r == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("column %d: unterminated string", i+1)
			}
			toks = append(toks, condToken{text: b.String(), quoted: true, col: i + 1})
			i = j + 1
		default:
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && rs[j] != '(' && rs[j] != ')' && rs[j] != '"' {
				j++
			}
			toks = append(toks, condToken{text: string(rs[i:j]), col: i + 1})
			i = j
		}
	}
	return toks, nil
}

type condParser struct {
	toks []condToken
	i    int
	src  string
}

func (p *condParser) errf(format string, a ...any) error {
	col := len([]rune(p.src)) + 1
	if p.i < len(p.toks) {
		col = p.toks[p.i].col
	}
	return fmt.Errorf("column %d: %s", col, fmt.Sprintf(format, a...))
}

func (p *condParser) keyword(k string) bool {
	if p.i < len(p.toks) && !p.toks[p.i].quoted && strings.EqualFold(p.toks[p.i].text, k) {
		p.i++
		return true
	}
	return false
}

func (p *condParser) or() (cond, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = condOr{l, r}
	}
	return l, nil
}

func (p *condParser) and() (cond, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = condAnd{l, r}
	}
	return l, nil
}

var condOps = []string{"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"}

func (p *condParser) unary() (cond, error) {
	if p.keyword("not") {
		c, err := p.unary()
		return condNot{c}, err
	}
	if p.keyword("(") {
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.keyword(")") {
			return nil, p.errf("missing )")
		}
		return c, nil
	}
	if p.i >= len(p.toks) {
		return nil, p.errf("expected an attribute name")
	}
	attr := p.toks[p.i]
	if attr.quoted || !isName(attr.text) {
		return nil, p.errf("expected an attribute name, found %q", attr.text)
	}
	if p.i+1 < len(p.toks) && p.toks[p.i+1].text == "(" && !p.toks[p.i+1].quoted {
		return p.call()
	}
	previous := false
	if rest, ok := strings.CutPrefix(attr.text, PreviousPrefix); ok {
		if !isName(rest) || strings.Contains(rest, ".") {
			return nil, p.errf("%s: want previous.<attribute>, e.g. previous.department", attr.text)
		}
		attr.text, previous = rest, true
	} else if strings.Contains(attr.text, ".") {
		return nil, p.errf("%s: a dotted name must be previous.<attribute> (the value before the change)", attr.text)
	}
	p.i++
	if p.i >= len(p.toks) {
		return nil, p.errf("expected an operator (%s) after %s", strings.Join(condOps, " "), attr.text)
	}
	opTok := p.toks[p.i]
	op := strings.ToLower(opTok.text)
	if opTok.quoted || !slices.Contains(condOps, op) {
		return nil, p.errf("unknown operator %q (want one of %s)", opTok.text, strings.Join(condOps, " "))
	}
	p.i++
	if op == "pr" {
		return condCmp{attr: attr.text, op: op, previous: previous}, nil
	}
	if p.i >= len(p.toks) {
		return nil, p.errf("expected a value after %s %s", attr.text, op)
	}
	v := p.toks[p.i]
	if !v.quoted {
		if _, err := strconv.ParseFloat(v.text, 64); err != nil {
			switch strings.ToLower(v.text) {
			case "true", "false":
			case "null":
				v.text = ""
			default:
				return nil, p.errf("value %s must be quoted: %s %s \"%s\"", v.text, attr.text, op, v.text)
			}
		}
	}
	p.i++
	return condCmp{attr: attr.text, op: op, value: v.text, previous: previous}, nil
}

// call parses a function call: changed(<attribute>).
func (p *condParser) call() (cond, error) {
	name := p.toks[p.i].text
	if !slices.Contains(condFuncs, strings.ToLower(name)) {
		return nil, p.errf("unknown function %s (want %s)%s", name, strings.Join(condFuncs, ", "), didYouMean(strings.ToLower(name), condFuncs))
	}
	p.i += 2 // name (
	if p.i >= len(p.toks) || p.toks[p.i].quoted || !isName(p.toks[p.i].text) || strings.Contains(p.toks[p.i].text, ".") {
		return nil, p.errf("%s: want one attribute name, e.g. %s(department)", name, name)
	}
	attr := p.toks[p.i].text
	p.i++
	if !p.keyword(")") {
		return nil, p.errf("%s(%s: missing )", name, attr)
	}
	return condChanged{attr: attr}, nil
}

func isName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '.')) {
			return false
		}
	}
	return s != ""
}
