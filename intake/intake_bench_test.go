package intake_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jml-dev/jml/intake/intaketest"
)

// BenchmarkSignedEvent posts signed hires (each a new identity workflow)
// to the intake over a temporaltest server, and replays of one event.
func BenchmarkSignedEvent(b *testing.B) {
	env := intaketest.Start(b, intaketest.Options{})
	srv := newIntakeTB(b, env)
	n := 0 // unique employees across b.N rounds
	b.Run("new", func(b *testing.B) {
		for range b.N {
			n++
			body := hireJSON(fmt.Sprintf("B%d", n), "e")
			if r := postTB(b, srv+"/v1/events", body, signed(body, time.Now())); r != http.StatusAccepted {
				b.Fatalf("status %d", r)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		body := hireJSON("B1", "e")
		for range b.N {
			if r := postTB(b, srv+"/v1/events", body, signed(body, time.Now())); r != http.StatusOK {
				b.Fatalf("status %d", r)
			}
		}
	})
}
