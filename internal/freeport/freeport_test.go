package freeport

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPickIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := Pick("127.0.0.1")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, p, lowest)
		assert.Less(t, p, ephemeralLow(), "outside the range outgoing connections take ports from")
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err, "the picked port can be bound")
		l.Close()
		seen[p] = true
	}
	assert.Greater(t, len(seen), 40, "picks are spread, so concurrent pickers rarely meet")
}
