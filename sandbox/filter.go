package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"
)

// A filter is a compiled RFC 7644 §3.4.2.2 filter expression.
type filter func(object) bool

// parseFilter compiles a filter: attribute paths (optionally URN-qualified)
// compared with eq, ne, co, sw, ew, gt, ge, lt, le or tested with pr,
// joined by and/or, negated by not(…), grouped by parentheses.
func parseFilter(src string) (filter, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	return f, nil
}

// userNameEq recognizes the filter `userName eq "value"`, which an index
// answers.
func userNameEq(src string) (string, bool) {
	toks, err := lex(src)
	if err != nil || len(toks) != 3 || toks[0].quoted || toks[1].quoted || !toks[2].quoted {
		return "", false
	}
	if !strings.EqualFold(toks[0].text, "userName") && !strings.EqualFold(toks[0].text, coreUserURN+":userName") {
		return "", false
	}
	return toks[2].text, strings.EqualFold(toks[1].text, "eq")
}

type token struct {
	text   string
	quoted bool // a JSON string literal, already unquoted
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{text: string(c)})
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at column %d", i+1)
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, fmt.Errorf("bad string at column %d", i+1)
			}
			toks = append(toks, token{text: v, quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != ')' && s[j] != '"' {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty filter")
	}
	return toks, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peekWord(w string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *parser) next() (token, error) {
	if p.pos >= len(p.toks) {
		return token{}, fmt.Errorf("incomplete filter")
	}
	p.pos++
	return p.toks[p.pos-1], nil
}

func (p *parser) or() (filter, error) {
	left, err := p.and()
	for err == nil && p.peekWord("or") {
		p.pos++
		var right filter
		if right, err = p.and(); err == nil {
			l := left
			left = func(o object) bool { return l(o) || right(o) }
		}
	}
	return left, err
}

func (p *parser) and() (filter, error) {
	left, err := p.term()
	for err == nil && p.peekWord("and") {
		p.pos++
		var right filter
		if right, err = p.term(); err == nil {
			l := left
			left = func(o object) bool { return l(o) && right(o) }
		}
	}
	return left, err
}

func (p *parser) term() (filter, error) {
	if p.peekWord("not") {
		p.pos++
		f, err := p.group()
		if err != nil {
			return nil, err
		}
		return func(o object) bool { return !f(o) }, nil
	}
	if p.peekWord("(") {
		return p.group()
	}
	attr, err := p.next()
	if err != nil {
		return nil, err
	}
	if attr.quoted || strings.ContainsAny(attr.text, "[]") {
		return nil, fmt.Errorf("expected an attribute path, got %q", attr.text)
	}
	path := parsePath(attr.text)
	op, err := p.next()
	if err != nil {
		return nil, err
	}
	opName := strings.ToLower(op.text)
	if opName == "pr" && !op.quoted {
		return func(o object) bool { return len(path.values(o)) > 0 }, nil
	}
	if _, ok := compare[opName]; !ok || op.quoted {
		return nil, fmt.Errorf("unknown operator %q", op.text)
	}
	val, err := p.next()
	if err != nil {
		return nil, err
	}
	want, err := literal(val)
	if err != nil {
		return nil, err
	}
	exact := path.caseExact()
	return func(o object) bool {
		vs := path.values(o)
		if opName == "ne" {
			for _, v := range vs {
				if match("eq", v, want, exact) {
					return false
				}
			}
			return true
		}
		for _, v := range vs {
			if match(opName, v, want, exact) {
				return true
			}
		}
		return false
	}, nil
}

func (p *parser) group() (filter, error) {
	if t, err := p.next(); err != nil || t.text != "(" || t.quoted {
		return nil, fmt.Errorf("expected (")
	}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if t, err := p.next(); err != nil || t.text != ")" || t.quoted {
		return nil, fmt.Errorf("expected )")
	}
	return f, nil
}

func literal(t token) (any, error) {
	if t.quoted {
		return t.text, nil
	}
	switch strings.ToLower(t.text) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	var n float64
	if err := json.Unmarshal([]byte(t.text), &n); err != nil {
		return nil, fmt.Errorf("bad value %q (strings are quoted)", t.text)
	}
	return n, nil
}

var compare = map[string]func(c int) bool{
	"eq": func(c int) bool { return c == 0 }, "ne": nil,
	"gt": func(c int) bool { return c > 0 }, "ge": func(c int) bool { return c >= 0 },
	"lt": func(c int) bool { return c < 0 }, "le": func(c int) bool { return c <= 0 },
	"co": nil, "sw": nil, "ew": nil,
}

func match(op string, have, want any, exact bool) bool {
	hs, hok := have.(string)
	ws, wok := want.(string)
	if hok && wok {
		if !exact {
			hs, ws = strings.ToLower(hs), strings.ToLower(ws)
		}
		switch op {
		case "co":
			return strings.Contains(hs, ws)
		case "sw":
			return strings.HasPrefix(hs, ws)
		case "ew":
			return strings.HasSuffix(hs, ws)
		}
		return compare[op](strings.Compare(hs, ws))
	}
	if hn, ok := have.(float64); ok {
		if wn, ok := want.(float64); ok && compare[op] != nil {
			switch {
			case hn < wn:
				return compare[op](-1)
			case hn > wn:
				return compare[op](1)
			}
			return compare[op](0)
		}
	}
	return op == "eq" && have == want
}

// attrPath is urn:…:attr.sub, the urn optional.
type attrPath struct {
	urn, attr, sub string
}

// parsePath splits a path such as name.givenName or
// urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value.
func parsePath(s string) attrPath {
	var p attrPath
	if strings.HasPrefix(strings.ToLower(s), "urn:") {
		i := strings.LastIndex(s, ":")
		p.urn, s = s[:i], s[i+1:]
		if strings.EqualFold(p.urn, coreUserURN) || strings.EqualFold(p.urn, coreGroupURN) {
			p.urn = ""
		}
	}
	p.attr, p.sub, _ = strings.Cut(s, ".")
	return p
}

// caseExact follows RFC 7643: ids, externalId and references compare
// exactly, other strings (userName, emails, displayName) case-insensitively.
func (p attrPath) caseExact() bool {
	a := strings.ToLower(p.attr)
	return a == "id" || a == "externalid" || a == "members" || (a == "groups" && strings.EqualFold(p.sub, "value"))
}

// container is the object the attribute lives in: the resource, or the
// extension object named by the URN.
func (p attrPath) container(o object) object {
	if p.urn == "" {
		return o
	}
	m, _ := get(o, p.urn).(map[string]any)
	return m
}

// values lists the path's values in o; a multi-valued attribute yields each
// element's sub-attribute (emails.value) or, without one, its value.
func (p attrPath) values(o object) []any {
	c := p.container(o)
	if c == nil {
		return nil
	}
	v := get(c, p.attr)
	var out []any
	add := func(x any) {
		if p.sub == "" {
			if m, ok := x.(map[string]any); ok && get(m, "value") != nil {
				x = get(m, "value")
			}
		} else {
			m, _ := x.(map[string]any)
			x = get(m, p.sub)
		}
		if x != nil && x != "" {
			out = append(out, x)
		}
	}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			add(x)
		}
	} else if v != nil {
		add(v)
	}
	return out
}

// get reads a key case-insensitively (SCIM attribute names are).
func get(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// keyOf is the key m already uses for key, or key itself.
func keyOf(m map[string]any, key string) string {
	if _, ok := m[key]; ok {
		return key
	}
	for k := range m {
		if strings.EqualFold(k, key) {
			return k
		}
	}
	return key
}
