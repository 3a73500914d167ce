package okta_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
)

// TestRateLimitFromPolicy: the target's rate_limit caps Okta requests (it
// used to be accepted and ignored). At 0.001 requests per second the second
// lookup cannot be sent before its context ends.
func TestRateLimitFromPolicy(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: x (User)"}`))
	}))
	t.Cleanup(srv.Close)
	d := okta.Describe()
	c, err := d.Build(context.Background(), connectors.Config{Name: "okta", AllowInsecure: true,
		Values: map[string]string{"org_url": srv.URL, "token_env": "OKTA_TOKEN", "rate_limit": "0.001"},
		Getenv: func(string) string { return "t0k" }})
	require.NoError(t, err)
	s := c.(connectors.AccountSyncer)
	_, err = s.FindAccount(context.Background(), connectors.Key{Attribute: "login", Value: "a@x.test"})
	require.ErrorIs(t, err, connectors.ErrNotFound)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = s.FindAccount(ctx, connectors.Key{Attribute: "login", Value: "b@x.test"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rate_limit")
	assert.Equal(t, int32(1), hits.Load(), "the second request was held back")
}

// TestAliases: given_name and family_name are Okta's firstName and
// lastName, and satisfy the required first_name and last_name.
func TestAliases(t *testing.T) {
	d := okta.Describe()
	assert.Empty(t, d.CheckAttributes([]string{"login", "email", "given_name", "family_name"}, true))
	assert.Equal(t, "firstName", okta.ProfileName("given_name"))
	assert.Equal(t, "employeeNumber", okta.ProfileName("employee_number"))
	assert.NotEmpty(t, d.CheckAttributes([]string{"login", "email", "given_name"}, true), "last_name is required")
}
