package main

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetrySetFlag(t *testing.T) {
	// Repeated --set collect every corrected attribute.
	fs := flag.NewFlagSet("retry", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	set := attrFlag{}
	fs.Var(set, "set", "")
	require.NoError(t, fs.Parse([]string{"--set", "last_name=Byron", "--set", "middle_name=", "--set", "title=Countess = of Lovelace"}))
	assert.Equal(t, map[string]string{"last_name": "Byron", "middle_name": "", "title": "Countess = of Lovelace"}, map[string]string(set))

	// A bad --set is bad usage: exit 2 naming the flag, before any
	// connection to Temporal.
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	for _, tc := range []struct{ arg, want string }{
		{"last_name", "want name=value"},
		{"=Byron", "want name=value"},
		{"Last Name=Byron", `"Last Name" is not an attribute name`},
		{"employee_id=E2", "employee_id cannot be changed"},
	} {
		code, _, errs := starter(t, "retry", "E1", "--set", tc.arg)
		assert.Equal(t, 2, code, tc.arg)
		assert.Contains(t, errs, "-set", tc.arg)
		assert.Contains(t, errs, tc.want, tc.arg)
	}
	code, _, errs := starter(t, "retry", "E1", "--set", "a=1", "--set", "a=2")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "a is set twice")
}
