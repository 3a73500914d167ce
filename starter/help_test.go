package main

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestEverySubcommandHelp: `starter CMD --help` prints the command's usage
// to stdout and exits 0 (scripts and shells see no failure); bad usage
// still exits 2.
func TestEverySubcommandHelp(t *testing.T) {
	names := slices.Sorted(maps.Keys(commands()))
	for _, name := range names {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(name+flag, func(t *testing.T) {
				code, out, errs := starter(t, name, "ARG", flag)
				assert.Equal(t, 0, code, errs)
				assert.Empty(t, errs)
				assert.Contains(t, out, "usage: starter "+name)
			})
		}
		t.Run(name+" bad flag", func(t *testing.T) {
			code, _, errs := starter(t, name, "--no-such-flag")
			assert.Equal(t, 2, code)
			assert.NotEmpty(t, errs)
		})
	}
	code, out, _ := starter(t, "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "commands:")
}

// TestOperatorTyposAreRefused: a mistyped state would list nothing (read
// as "no stuck runs"), and a discard without the digest would refuse
// terminations nobody looked at: both exit 2 before dialling Temporal.
func TestOperatorTyposAreRefused(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1") // nothing listens there
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--state", "needsattention"}, `--state "needsattention" is not a JmlState`},
		{[]string{"list", "--state", "Bogus"}, "NeedsAttention"},
		{[]string{"sources", "discard", "hr"}, "--digest is required"},
	} {
		code, _, errs := starter(t, tc.args...)
		assert.Equal(t, 2, code, tc.args)
		assert.Contains(t, errs, tc.want, tc.args)
	}
}
