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

// RuleFailure is one rule a new password breaks. Its message never holds
// the password or a forbidden word.
type RuleFailure struct {
	// Rule: min_length, max_length, require_lower, require_upper,
	// require_digit, require_symbol, min_classes, ascii_only, forbidden_words.
	Rule string `json:"rule"`
	// Target is the member whose own rule it is; "" for the group's rules.
	Target  string `json:"target,omitempty"`
	Message string `json:"message"`
}

// CheckSyncedPassword checks a new password against the group's rules and
// then each member target's own (its connector's description, e.g.
// Entra's ASCII-only passwords), and returns every rule it breaks, the
// group's first, each rule name once; none when it passes. forbidden are
// the group's forbidden words already rendered for the user (first name,
// login, …); words shorter than three characters are ignored, matching
// ignores case. The history rule is the targets' own: jml keeps no old
// passwords.
func CheckSyncedPassword(p *Policy, g PasswordSyncGroup, pw string, forbidden []string) []RuleFailure {
	r := g.Rules
	out := charRules{min: max(r.MinLength, 1), max: r.MaxLength, lower: r.RequireLower, upper: r.RequireUpper,
		digit: r.RequireDigit, symbol: r.RequireSymbol}.check(pw, "")
	lower := strings.ToLower(pw)
	for i, w := range forbidden {
		if w = strings.ToLower(strings.TrimSpace(w)); len([]rune(w)) >= 3 && strings.Contains(lower, w) {
			out = append(out, RuleFailure{Rule: "forbidden_words",
				Message: fmt.Sprintf("the password contains forbidden word %d of the group (e.g. the user's name)", i+1)})
			break
		}
	}
	for _, name := range g.GroupTargets() {
		d, ok := Describe(p.Targets[name].Type)
		if !ok || d.Passwords == nil {
			continue // PasswordGroupProblems refuses such a group
		}
		k := d.Passwords
		for _, f := range (charRules{min: k.MinLength, max: k.MaxLength, lower: k.RequireLower, upper: k.RequireUpper,
			digit: k.RequireDigit, symbol: k.RequireSymbol, classes: k.MinClasses, ascii: k.ASCIIOnly}).check(pw, name) {
			if !slices.ContainsFunc(out, func(o RuleFailure) bool { return o.Rule == f.Rule }) {
				out = append(out, f)
			}
		}
	}
	return out
}

// charRules are the rules on a password's length and characters, shared
// by a group's rules and a target's.
type charRules struct {
	min, max                    int
	lower, upper, digit, symbol bool
	classes                     int
	ascii                       bool
}

func (r charRules) check(pw, target string) []RuleFailure {
	var out []RuleFailure
	fail := func(rule, msg string, args ...any) {
		msg = fmt.Sprintf(msg, args...)
		if target != "" {
			msg += " (target " + target + ")"
		}
		out = append(out, RuleFailure{Rule: rule, Target: target, Message: msg})
	}
	n := len([]rune(pw))
	has := func(f func(rune) bool) bool { return strings.IndexFunc(pw, f) >= 0 }
	symbol := func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) && !unicode.IsSpace(c) }
	if n < r.min {
		fail("min_length", "the password must have at least %d characters", r.min)
	}
	if r.max > 0 && n > r.max {
		fail("max_length", "the password must have at most %d characters", r.max)
	}
	classes := 0
	for _, c := range []struct {
		rule, msg string
		need      bool
		is        func(rune) bool
	}{
		{"require_lower", "the password needs a lower-case letter", r.lower, unicode.IsLower},
		{"require_upper", "the password needs an upper-case letter", r.upper, unicode.IsUpper},
		{"require_digit", "the password needs a digit", r.digit, unicode.IsDigit},
		{"require_symbol", "the password needs a symbol", r.symbol, symbol},
	} {
		switch {
		case has(c.is):
			classes++
		case c.need:
			fail(c.rule, "%s", c.msg)
		}
	}
	if classes < r.classes {
		fail("min_classes", "the password needs at least %d of: lower-case letters, upper-case letters, digits, symbols", r.classes)
	}
	if r.ascii && strings.IndexFunc(pw, func(c rune) bool { return c < ' ' || c > '~' }) >= 0 {
		fail("ascii_only", "the password may hold only letters, digits, symbols and spaces of ASCII (no accented letters, emoji or other Unicode)")
	}
	return out
}
