package prodshape_test

import (
	"testing"
	"time"

	"github.com/jml-dev/jml/internal/prodshape"
)

func freePort(t *testing.T) int { return prodshape.FreePort(t) }

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
