package policy

import (
	"fmt"
	"slices"

	"github.com/jml-dev/jml/connectors"
	"strings"
	"unicode"
)

// GroupTargets are the group's targets, the auth target first, each once.
func (g PasswordSyncGroup) GroupTargets() []string {
	out := []string{g.Auth}
	for _, m := range g.Members {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// PasswordGroupProblems lists why a password sync group cannot work: fewer
// than two targets, a target that cannot set passwords, rules that
// contradict themselves, or rules some member's known rules are stricter
// than (a password the group accepts would be refused there).
func PasswordGroupProblems(p *Policy, g PasswordSyncGroup) []string {
	var out []string
	r := g.Rules
	targets := g.GroupTargets()
	if g.Auth == "" {
		out = append(out, "auth: the authoritative target is required")
	}
	if len(targets) < 2 {
		out = append(out, "members: a sync group needs at least two targets")
	}
	classes := 0
	for _, on := range []bool{r.RequireLower, r.RequireUpper, r.RequireDigit, r.RequireSymbol} {
		if on {
			classes++
		}
	}
	if r.MaxLength > 0 && r.MaxLength < max(r.MinLength, classes) {
		out = append(out, fmt.Sprintf("rules: max_length %d leaves no valid password", r.MaxLength))
	}
	for _, name := range targets {
		t, ok := p.Targets[name]
		if !ok || name == "" {
			continue // unknown targets are reported by the target check
		}
		// The member's rules are its connector's (its vendor's defaults): the
		// group's must be at least as strict, or a password the group
		// accepts would be refused there.
		d, ok := Describe(t.Type)
		if !ok || d.Passwords == nil || !d.Can(connectors.ActionPasswordSync) {
			out = append(out, fmt.Sprintf("target %s (%s) cannot set passwords", name, t.Type))
			continue
		}
		k := d.Passwords
		if r.MinLength < k.MinLength {
			out = append(out, fmt.Sprintf("rules.min_length %d is below the %d characters %s target %s requires", r.MinLength, k.MinLength, t.Type, name))
		}
		if k.MaxLength > 0 && (r.MaxLength == 0 || r.MaxLength > k.MaxLength) {
			out = append(out, fmt.Sprintf("rules.max_length must be at most %d: %s target %s refuses longer passwords", k.MaxLength, t.Type, name))
		}
		for _, c := range []struct {
			name          string
			member, group bool
		}{
			{"require_lower", k.RequireLower, r.RequireLower},
			{"require_upper", k.RequireUpper, r.RequireUpper},
			{"require_digit", k.RequireDigit, r.RequireDigit},
			{"require_symbol", k.RequireSymbol, r.RequireSymbol},
		} {
			if c.member && !c.group {
				out = append(out, fmt.Sprintf("rules.%s must be set: %s target %s requires it", c.name, t.Type, name))
			}
		}
		if classes < k.MinClasses {
			out = append(out, fmt.Sprintf("rules must require at least %d of lower, upper, digit, symbol: %s target %s does", k.MinClasses, t.Type, name))
		}
	}
	return out
}

// validatePasswordSyncGroups adds PasswordGroupProblems to the problems.
func (c *checker) validatePasswordSyncGroups(p *Policy) {
	for i, g := range p.PasswordSyncGroups {
		for _, msg := range PasswordGroupProblems(p, g) {
			c.at(fmt.Sprintf("password_sync_groups[%d]", i), "%s", msg)
		}
	}
}

// CheckPassword checks a password against a group's rules. It returns the
// name of the first rule that fails (min_length, max_length,
// require_lower, require_upper, require_digit, require_symbol,
// forbidden_words) and a message that never contains the password or the
// forbidden word; "" when the password passes. forbidden are the group's
// forbidden words already rendered for the user (first name, login, …);
// words shorter than three characters are ignored, matching ignores case.
// The history rule is the targets' own: jml keeps no old passwords.
func CheckPassword(r PasswordRules, pw string, forbidden []string) (rule, msg string) {
	n := len([]rune(pw))
	has := func(f func(rune) bool) bool { return strings.IndexFunc(pw, f) >= 0 }
	symbol := func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) && !unicode.IsSpace(c) }
	switch {
	case n == 0 || n < r.MinLength:
		return "min_length", fmt.Sprintf("the password must have at least %d characters", max(r.MinLength, 1))
	case r.MaxLength > 0 && n > r.MaxLength:
		return "max_length", fmt.Sprintf("the password must have at most %d characters", r.MaxLength)
	case r.RequireLower && !has(unicode.IsLower):
		return "require_lower", "the password needs a lower-case letter"
	case r.RequireUpper && !has(unicode.IsUpper):
		return "require_upper", "the password needs an upper-case letter"
	case r.RequireDigit && !has(unicode.IsDigit):
		return "require_digit", "the password needs a digit"
	case r.RequireSymbol && !has(symbol):
		return "require_symbol", "the password needs a symbol"
	}
	lower := strings.ToLower(pw)
	for i, w := range forbidden {
		if w = strings.ToLower(strings.TrimSpace(w)); len([]rune(w)) >= 3 && strings.Contains(lower, w) {
			return "forbidden_words", fmt.Sprintf("the password contains forbidden word %d of the group (e.g. the user's name)", i+1)
		}
	}
	return "", ""
}
