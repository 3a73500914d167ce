package ldap

import (
	"errors"
	"fmt"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/jml-dev/jml/connectors"
)

// template is a DN with {attribute} placeholders, as user_container
// writes it: OU={department},OU=Staff,DC=corp,DC=example. Each value is
// escaped as an RDN value (RFC 4514) when rendered, so a department
// "R&D, Europe" stays one RDN.
type template struct {
	src   string
	parts []string // literal, name, literal, name, …, literal
}

func parseTemplate(src string) (template, error) {
	if strings.TrimSpace(src) == "" {
		return template{}, errors.New("empty: want a DN, e.g. OU={department},OU=Staff,DC=corp,DC=example")
	}
	t := template{src: src}
	rest := src
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return template{}, fmt.Errorf("%q: a } without its {", src)
			}
			t.parts = append(t.parts, rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return template{}, fmt.Errorf("%q: a { without its }", src)
		}
		name := strings.TrimSpace(rest[i+1 : i+j])
		if name == "" || strings.ContainsAny(name, "{,=") {
			return template{}, fmt.Errorf("%q: placeholder {%s} is not an attribute name", src, name)
		}
		t.parts = append(t.parts, rest[:i], name)
		rest = rest[i+j+1:]
	}
	// The template with every placeholder filled must be a DN.
	probe, err := t.render(func(string) string { return "x" })
	if err != nil {
		return template{}, err
	}
	if _, err := ldapv3.ParseDN(probe); err != nil {
		return template{}, fmt.Errorf("%q is not a DN: %v", src, err)
	}
	return t, nil
}

// names are the attributes the template reads.
func (t template) names() []string {
	var out []string
	for i := 1; i < len(t.parts); i += 2 {
		out = append(out, t.parts[i])
	}
	return out
}

// render fills the placeholders from value, escaped. An empty value is
// an error naming the attribute: "OU=,OU=Staff" is no container.
func (t template) render(value func(string) string) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v := strings.TrimSpace(value(p))
		if v == "" {
			return "", fmt.Errorf("container %s: {%s} is empty for this account", t.src, p)
		}
		b.WriteString(ldapv3.EscapeDN(v))
	}
	return b.String(), nil
}

// renderFor is the container of an account with attrs; a permanent
// error when the template cannot be filled.
func (t template) renderFor(attrs connectors.Attributes) (string, error) {
	dn, err := t.render(func(k string) string { return attrs[k] })
	if err != nil {
		return "", connectors.Permanent(TypeValidation, err)
	}
	if _, err := ldapv3.ParseDN(dn); err != nil {
		return "", connectors.Permanentf(TypeValidation, "container %s renders %q, not a DN: %v", t.src, dn, err)
	}
	return dn, nil
}

// rdn is the RDN attr=value with value escaped.
func rdn(attr, value string) string { return attr + "=" + ldapv3.EscapeDN(value) }

// suffix is the fixed part of the template: the DN under the last RDN
// with a placeholder (OU=Staff,DC=corp,DC=example), the template itself
// when it has none.
func (t template) suffix() string {
	if len(t.parts) == 1 {
		return t.src
	}
	last := t.parts[len(t.parts)-1]
	if i := strings.IndexByte(last, ','); i >= 0 {
		return strings.TrimSpace(last[i+1:])
	}
	return ""
}
