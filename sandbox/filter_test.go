package sandbox

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFilter(t *testing.T) {
	u := object{
		"userName": "Ada@Example.com", "active": true, "id": "ID-1",
		"emails":      []any{object{"type": "work", "value": "ada@example.com"}},
		enterpriseURN: object{"department": "R&D", "manager": object{"value": "M1"}},
		"meta":        object{"lastModified": "2026-11-22T10:00:00Z"},
	}
	tests := []struct {
		filter string
		want   bool
	}{
		{`userName eq "ada@example.com"`, true},
		{`USERNAME Eq "ADA@EXAMPLE.COM"`, true},
		{`id eq "id-1"`, false}, // ids compare exactly
		{`emails.value co "example"`, true},
		{`emails[type eq "work"] pr`, false}, // brackets are for PATCH paths, not here
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D" and active eq true`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "M1"`, true},
		{`active eq false or userName sw "ada"`, true},
		{`not (active eq true)`, false},
		{`title pr`, false},
		{`meta.lastModified gt "2026-11-01T00:00:00Z"`, true},
		{`userName ne "bob@example.com"`, true},
		{`userName eq "a\"b"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := parseFilter(tt.filter)
			if tt.filter == `emails[type eq "work"] pr` {
				assert.Error(t, err)
				return
			}
			if assert.NoError(t, err) {
				assert.Equal(t, tt.want, f(u))
			}
		})
	}
	for _, bad := range []string{``, `userName eq`, `userName zz "x"`, `userName eq x`, `(userName eq "x"`, `userName eq "x" and`, `"userName" eq "x"`} {
		_, err := parseFilter(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`userName eq "a"`, `a eq "x" and (b pr or not (c sw "\u00e9"))`, `members[value eq "1"]`, `x gt 3.5`, `"`, `((`} {
		f.Add(s)
	}
	u := object{"userName": "a", "members": []any{object{"value": "1"}}, "x": 4.0}
	f.Fuzz(func(t *testing.T, s string) {
		if flt, err := parseFilter(s); err == nil {
			flt(u) // must not panic
		}
		_, _ = parsePatchPath(s)
	})
}
