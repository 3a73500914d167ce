package transform

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

func (t *Template) eval(env *Env, esc func(string) string) (string, error) {
	switch len(t.parts) {
	case 0:
		return "", nil
	case 1:
		p := t.parts[0]
		if p.expr == nil {
			return p.lit, nil
		}
		v, err := p.expr.eval(env)
		if err != nil {
			return "", err
		}
		if esc != nil {
			v = esc(v)
		}
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(t.src) + 16)
	for i := range t.parts {
		p := &t.parts[i]
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.eval(env)
		if err != nil {
			return "", err
		}
		if esc != nil {
			v = esc(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (e *expr) eval(env *Env) (string, error) {
	var v string
	var err error
	switch {
	case e.ref != nil:
		v, err = resolve(env, *e.ref, e.col)
	case e.lit != nil:
		v, err = str(env, e.lit)
	case e.head != nil:
		v, err = e.head.apply(env, "")
	}
	if err != nil {
		return "", err
	}
	for i := range e.pipe {
		if v, err = e.pipe[i].apply(env, v); err != nil {
			return "", err
		}
	}
	return v, nil
}

func (c *call) apply(env *Env, in string) (string, error) {
	args := c.args
	if c.input {
		var err error
		if in, err = str(env, &args[0]); err != nil {
			return "", err
		}
		args = args[1:]
	}
	v, err := c.fn.fn(env, in, args)
	if err != nil {
		if _, ok := err.(*Error); ok {
			return "", err
		}
		return "", &Error{Col: c.col, Msg: c.fn.name + ": " + err.Error()}
	}
	return v, nil
}

// str evaluates an argument as text (nested values are not escaped).
func str(env *Env, a *arg) (string, error) {
	switch {
	case a.ref != nil:
		return a.ref.eval(env)
	case a.t != nil:
		return a.t.eval(env, nil)
	}
	return a.s, nil
}

func resolve(env *Env, r Ref, col int) (string, error) {
	switch r.Entity {
	case "":
		v, ok := env.Attrs[r.Attr]
		if !ok && env.Strict {
			return "", &Error{Col: col, Msg: unknownAttr(r.Attr, slices.Collect(maps.Keys(env.Attrs)))}
		}
		return v, nil
	case TargetEntity:
		v, ok := env.Target[r.Attr]
		if !ok {
			return "", &Error{Col: col, Msg: unknownAttr(r.String(), prefixed(TargetEntity, env.Target))}
		}
		return v, nil
	}
	out, ok := env.Outputs[r.Entity]
	if !ok {
		return "", &Error{Col: col, Msg: fmt.Sprintf("no earlier step produced %s (for %s)", r.Entity, r)}
	}
	return out[r.Attr], nil
}

func prefixed(entity string, m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, entity+"."+k)
	}
	return out
}

func unknownAttr(name string, known []string) string {
	slices.Sort(known)
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown attribute %s (did you mean %s?)", name, s)
	}
	return "unknown attribute " + name
}
