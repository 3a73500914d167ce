package policy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExamplePolicy(t *testing.T) {
	p, err := Load("../examples/policy.yaml")
	require.NoError(t, err)
	require.NotNil(t, p)
}
