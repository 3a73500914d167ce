package scim_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
)

// A worker runs many steps against one target at once: the default client
// keeps their connections for the next requests instead of opening new
// ones (Go's default transport keeps 2 per host: about 16 + 3 × 14 = 58
// connections below). Four rounds of 16 concurrent lookups open about 16
// (a request may dial while another's connection is being returned: 2 ×
// 16 bounds it).
func TestDefaultClientReusesConnections(t *testing.T) {
	var opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := scim.New(t.Context(), scim.Config{BaseURL: srv.URL + "/scim/v2", Auth: scim.Auth{BearerToken: "t"}})
	require.NoError(t, err)
	const parallel = 16
	for range 4 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range parallel {
			wg.Go(func() {
				<-start
				_, err := c.FindAccount(t.Context(), connectors.Key{Attribute: "user_name", Value: "u" + string(rune('a'+i))})
				assert.ErrorIs(t, err, connectors.ErrNotFound)
			})
		}
		close(start)
		wg.Wait()
	}
	assert.LessOrEqual(t, int(opened.Load()), 2*parallel, "connections opened for 4 × %d requests", parallel)
}
