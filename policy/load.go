package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a policy file, at a position.
type Problem struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	// Path is where in the policy, e.g. joiner.steps[0].sync_identity.attributes.login.
	Path string `json:"path,omitempty"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	if p.Path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Path, p.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, p.Msg)
}

// Error lists every problem of a policy file, one per line, in file order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, parses and validates a policy file. Lookup files are read
// relative to the policy file and inlined into Lookup.CSV.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a policy. name is the file name used in
// problems and the directory lookup files are relative to. The error is
// an *Error listing every problem.
func Parse(name string, data []byte) (*Policy, error) {
	c := &checker{file: name, dir: filepath.Dir(name), nodes: map[string]*yaml.Node{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		c.add(yamlLine(err), 1, "", yamlMessage(err))
		return nil, c.err()
	}
	if len(root.Content) == 0 {
		c.add(1, 1, "", "empty policy")
		return nil, c.err()
	}
	doc := root.Content[0]
	c.walk(doc, reflect.TypeFor[Policy](), "")
	var p Policy
	if err := doc.Decode(&p); err != nil && len(c.problems) == 0 {
		c.add(yamlLine(err), 1, "", yamlMessage(err))
	}
	c.validate(&p)
	if len(c.problems) > 0 {
		return nil, c.err()
	}
	return &p, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// yamlMessage is the YAML error without its "yaml: line N:" prefix.
func yamlMessage(err error) string {
	return yamlLineRE.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
}

func yamlLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 1
}

// UnmarshalYAML accepts a flow written as a plain list of steps
// (joiner: [- sync_identity: …]) as well as {offset, local_time, steps}.
func (f *Flow) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		return n.Decode(&f.Steps)
	}
	type plain Flow
	return n.Decode((*plain)(f))
}

// checker collects problems and remembers the YAML node of every path.
type checker struct {
	file     string
	dir      string
	nodes    map[string]*yaml.Node
	problems []Problem
	// known are the employee attributes something provides
	// (ProvidedAttributes), sorted.
	known []string
}

func (c *checker) err() error {
	slices.SortStableFunc(c.problems, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return &Error{Problems: c.problems}
}

func (c *checker) add(line, col int, path, msg string) {
	c.problems = append(c.problems, Problem{File: c.file, Line: line, Col: col, Path: path, Msg: msg})
}

// at reports a problem at path (or its closest recorded parent).
func (c *checker) at(path, format string, a ...any) {
	n := c.node(path)
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	c.add(line, col, path, fmt.Sprintf(format, a...))
}

func (c *checker) node(path string) *yaml.Node {
	for p := path; ; {
		if n, ok := c.nodes[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return c.nodes[""]
		}
		p = p[:i]
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// secretKeys are field names people use when they paste a credential.
var secretKeys = []string{"token", "password", "secret", "api_key", "apikey", "api_token", "client_secret",
	"private_key", "bearer", "access_token", "key"}

var flowType = reflect.TypeFor[Flow]()

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// walk checks n against type t: unknown fields (with suggestions), the
// kind of every value, and records each path's node for later problems.
func (c *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c.nodes[path] = n
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == requiredType {
		c.walkRequired(n, path)
		return
	}
	if t == flowType && n.Kind == yaml.SequenceNode {
		c.walk(n, reflect.TypeFor[[]Step](), path+".steps")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.at(path, "expected a mapping (key: value), found %s", kindName(n))
			return
		}
		fields := map[string]reflect.StructField{}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
				fields[tag] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				c.nodes[p] = k
				c.unknownField(k, p, fields)
				continue
			}
			c.walk(v, f.Type, p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.at(path, "expected a mapping (key: value), found %s", kindName(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			c.nodes[p+"#key"] = k
			c.walk(v, t.Elem(), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.at(path, "expected a list, found %s", kindName(n))
			return
		}
		for i, v := range n.Content {
			c.walk(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			c.at(path, "expected a %s, found %s", scalarName(t), kindName(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.at(path, "expected a %s, found %q", scalarName(t), n.Value)
			return
		}
		if t.Kind() == reflect.String {
			if what := looksLikeSecret(n.Value); what != "" {
				c.at(path, "%s in the policy file: keep secrets in environment variables and name them here (e.g. token_env: OKTA_API_TOKEN)", what)
			}
		}
	}
}

func (c *checker) unknownField(k *yaml.Node, path string, fields map[string]reflect.StructField) {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	if slices.Contains(secretKeys, strings.ToLower(k.Value)) {
		c.add(k.Line, k.Column, path, fmt.Sprintf("a literal secret (%s) is not allowed in the policy file: put it in an environment variable and name it with %s_env", k.Value, envField(k.Value, names)))
		return
	}
	msg := fmt.Sprintf("unknown field %s", k.Value)
	if s := closest(k.Value, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	} else {
		msg += fmt.Sprintf(" (known: %s)", strings.Join(names, ", "))
	}
	c.add(k.Line, k.Column, path, msg)
}

func envField(key string, names []string) string {
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, "_env"); ok && strings.Contains(strings.ToLower(key), strings.TrimSuffix(base, "_id")) {
			return base
		}
	}
	return "token"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func scalarName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean (true/false)"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "whole number"
	case reflect.Float64, reflect.Float32:
		return "number"
	}
	return "text value"
}

// secretPatterns are well-known credential shapes that must never sit in a
// policy file.
var secretPatterns = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`^(?i:ssws|bearer|basic)\s+[A-Za-z0-9._~+/=-]{12,}$`), "an Authorization credential"},
	{regexp.MustCompile(`^00[A-Za-z0-9_-]{38,}$`), "an Okta API token"},
	{regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`), "a private key"},
	{regexp.MustCompile(`^(xox[abpr]-|ghp_|github_pat_|sk_live_|AKIA[0-9A-Z]{16})`), "an API key"},
	{regexp.MustCompile(`^eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.`), "a JSON Web Token"},
}

func looksLikeSecret(s string) string {
	s = strings.TrimSpace(s)
	for _, p := range secretPatterns {
		if p.re.MatchString(s) {
			return p.what
		}
	}
	return ""
}

// closest is the name most like s when it is likely a typo.
func closest(s string, names []string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD <= max(2, len(s)/3) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
