package rest_test

import (
	"context"
	"testing"

	"github.com/jml-dev/jml/connectors/rest"
)

// BenchmarkSendHTTPS is one rendered POST with a secret, extraction, over
// a kept-alive TLS connection to a loopback server.
func BenchmarkSendHTTPS(b *testing.B) {
	srv := newRecorder(b, true, reply(201, `{"id": "acc-42", "active": true, "data": {"items": [{"id": "it-1"}]}}`))
	c := rest.New(rest.Options{HTTPClient: srv.Client(), Credentials: map[string]rest.Credential{}})
	r := accountRequest(srv.URL + "/api/accounts")
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Send(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}
