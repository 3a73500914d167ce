package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// extract reads each output's path from a JSON body.
func extract(body []byte, paths map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(paths))
	if len(paths) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, errors.New("response is not JSON, cannot extract outputs")
	}
	names := make([]string, 0, len(paths))
	for n := range paths {
		names = append(names, n)
	}
	sort.Strings(names) // stable error for the same input
	for _, name := range names {
		v, err := lookup(doc, paths[name])
		if err != nil {
			return nil, fmt.Errorf("extract %s (%s): %w", name, paths[name], err)
		}
		s, err := scalar(v)
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
}

// step is one path element: a key or an index.
type step struct {
	key   string
	index int
	isIdx bool
}

// parsePath reads $.a.b[0]["c d"][-1]. The leading $ is optional.
func parsePath(p string) ([]step, error) {
	p = strings.TrimSpace(p)
	p = strings.TrimPrefix(p, "$")
	var steps []step
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
			n := strings.IndexAny(p, ".[")
			if n < 0 {
				n = len(p)
			}
			if n == 0 {
				return nil, errors.New("empty key in path")
			}
			steps = append(steps, step{key: p[:n]})
			p = p[n:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, errors.New("unclosed [ in path")
			}
			in := p[1:end]
			if len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0] {
				steps = append(steps, step{key: in[1 : len(in)-1]})
			} else {
				i, err := strconv.Atoi(in)
				if err != nil {
					return nil, fmt.Errorf("bad index [%s] in path", in)
				}
				steps = append(steps, step{index: i, isIdx: true})
			}
			p = p[end+1:]
		default:
			if len(steps) == 0 { // "id" means "$.id"
				p = "." + p
				continue
			}
			return nil, fmt.Errorf("unexpected %q in path", p[0])
		}
	}
	return steps, nil
}

func lookup(doc any, path string) (any, error) {
	steps, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	cur := doc
	for _, s := range steps {
		switch v := cur.(type) {
		case map[string]any:
			if s.isIdx {
				return nil, fmt.Errorf("index [%d] on an object", s.index)
			}
			next, ok := v[s.key]
			if !ok {
				return nil, fmt.Errorf("no field %q in the response", s.key)
			}
			cur = next
		case []any:
			if !s.isIdx {
				return nil, fmt.Errorf("field %q on an array", s.key)
			}
			i := s.index
			if i < 0 {
				i += len(v)
			}
			if i < 0 || i >= len(v) {
				return nil, fmt.Errorf("index [%d] out of range (%d items)", s.index, len(v))
			}
			cur = v[i]
		default:
			return nil, fmt.Errorf("cannot descend into a %T", cur)
		}
	}
	return cur, nil
}

// scalar formats a JSON value as an output string; objects and arrays
// become compact JSON.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		b, err := json.Marshal(x)
		return string(b), err
	}
}
