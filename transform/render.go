package transform

import "strings"

// Render parses and evaluates src against e; escape, when set, is applied
// to every substituted value. It makes *Env the template renderer of the
// REST connector, which does not import this package.
func (e *Env) Render(src string, escape func(string) string) (string, error) {
	t, err := Parse(src)
	if err != nil {
		return "", err
	}
	c := *e
	c.Escape = escape
	return t.Eval(&c)
}

// ReadsSecret reports whether src reads a password output of an earlier
// step ({OktaUser.password}); such a request travels over HTTPS only.
func (e *Env) ReadsSecret(src string) bool {
	t, err := Parse(src)
	return err == nil && t.ReadsSecret()
}

// ReadsSecret reports whether t reads a password output of an earlier step
// ({OktaUser.password}, {Portal.initial_password}): the one test of a
// secret in a template, for the REST connector at run time and for policy
// validation.
func (t *Template) ReadsSecret() bool {
	for _, r := range t.Refs() {
		if r.Entity != "" && strings.Contains(strings.ToLower(r.Attr), "password") {
			return true
		}
	}
	return false
}
