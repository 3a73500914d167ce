package scim_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A worker's first steps arrive together and all need discovery: they
// share one read of /ServiceProviderConfig and /Schemas. The provider holds
// the first read until every caller has asked (or a second passes), so
// calls that each discovered would all be counted.
func TestConcurrentCallsShareOneDiscovery(t *testing.T) {
	const callers = 8
	var spc, schemas atomic.Int32
	arrived := make(chan struct{}, callers)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/scim/v2/ServiceProviderConfig":
			spc.Add(1)
			arrived <- struct{}{}
			if len(arrived) < callers {
				select { // the others, if they were sent, arrive meanwhile
				case <-r.Context().Done():
				case <-time.After(time.Second):
				}
			}
			w.Header().Set("Content-Type", "application/scim+json")
			_, _ = w.Write([]byte(`{"patch":{"supported":true},"filter":{"supported":true}}`))
		case "/scim/v2/Schemas":
			schemas.Add(1)
			http.NotFound(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/scim/v2", "t")
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			caps, err := c.Discover(t.Context())
			if err == nil && !caps.Patch {
				err = assert.AnError
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), spc.Load(), "requests to /ServiceProviderConfig")
	assert.Equal(t, int32(1), schemas.Load(), "requests to /Schemas")
}
