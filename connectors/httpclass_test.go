package connectors_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/notify"
	"github.com/jml-dev/jml/secret"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	ra := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	for _, tc := range []struct {
		status int
		header http.Header
		class  connectors.Class
		delay  time.Duration
	}{
		{200, nil, connectors.ClassOK, 0},
		{204, nil, connectors.ClassOK, 0},
		{302, nil, connectors.ClassUnexpected, 0},
		{400, nil, connectors.ClassInvalid, 0},
		{422, nil, connectors.ClassInvalid, 0},
		{401, nil, connectors.ClassAuth, 0},
		{403, nil, connectors.ClassAuth, 0},
		{404, nil, connectors.ClassNotFound, 0},
		{405, nil, connectors.ClassRejected, 0},
		{408, nil, connectors.ClassTransient, 0},
		{409, nil, connectors.ClassConflict, 0},
		{412, nil, connectors.ClassRejected, 0},
		{418, nil, connectors.ClassRejected, 0},
		{429, nil, connectors.ClassRateLimited, connectors.DefaultRetryAfter},
		{429, ra("7"), connectors.ClassRateLimited, 7 * time.Second},
		{429, ra(" 0 "), connectors.ClassRateLimited, 0},
		{429, ra(now.Add(90 * time.Second).Format(http.TimeFormat)), connectors.ClassRateLimited, 90 * time.Second},
		{429, ra(now.Add(-time.Hour).Format(http.TimeFormat)), connectors.ClassRateLimited, 0},
		{429, ra("soon"), connectors.ClassRateLimited, connectors.DefaultRetryAfter},
		{429, ra("-5"), connectors.ClassRateLimited, connectors.DefaultRetryAfter},
		{500, nil, connectors.ClassTransient, 0},
		{501, nil, connectors.ClassUnsupported, 0},
		{502, nil, connectors.ClassTransient, 0},
		{503, nil, connectors.ClassTransient, 0},
		{503, ra("7"), connectors.ClassRateLimited, 7 * time.Second},
		{503, ra(now.Add(time.Minute).Format(http.TimeFormat)), connectors.ClassRateLimited, time.Minute},
		{503, ra("later"), connectors.ClassTransient, 0},
		{504, nil, connectors.ClassTransient, 0},
	} {
		v := connectors.Classify(tc.status, tc.header, now)
		assert.Equal(t, tc.class, v.Class, "%d %v", tc.status, tc.header)
		if tc.class == connectors.ClassRateLimited {
			assert.Equal(t, tc.delay, v.RetryAfter, "%d %v", tc.status, tc.header)
		}
		assert.Equal(t, tc.class == connectors.ClassRateLimited || tc.class == connectors.ClassTransient, v.Retryable())
	}
}

// TestSame503EveryConnector: a 503 with Retry-After: 7 is the same class
// and delay from every connector and notification channel.
func TestSame503EveryConnector(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") { // Entra's token endpoint works
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":3600}`))
			return
		}
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"detail":"maintenance"}`))
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	key := connectors.Key{Value: "ada@example.com"}
	calls := map[string]func() error{
		"scim": func() error {
			c, err := scim.New(ctx, scim.Config{BaseURL: srv.URL + "/scim/v2", Auth: scim.Auth{BearerToken: "t"}})
			require.NoError(t, err)
			_, err = c.FindAccount(ctx, key)
			return err
		},
		"okta": func() error {
			c, err := okta.New(ctx, okta.Config{OrgURL: srv.URL, Token: secret.New("t"), AllowInsecure: true})
			require.NoError(t, err)
			_, err = c.FindAccount(ctx, key)
			return err
		},
		"entra": func() error {
			c, err := entra.New(ctx, entra.Config{Tenant: "contoso", ClientID: "app", ClientSecret: secret.New("s"),
				AuthorityURL: srv.URL, GraphURL: srv.URL})
			require.NoError(t, err)
			_, err = c.FindAccount(ctx, key)
			return err
		},
		"rest": func() error {
			_, err := rest.New(rest.Options{AllowInsecureLoopback: true}).Send(ctx, rest.Request{Spec: rest.Spec{Method: "GET", URL: srv.URL + "/api/users"}})
			return err
		},
		"notify": func() error {
			return notify.Webhook{AllowInsecureLoopback: true}.Post(ctx, notify.ChannelSlack, srv.URL+"/hooks/T1", notify.Chat{Text: "hello"})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			var rl *connectors.RateLimitedError
			require.True(t, errors.As(err, &rl), "%s: %v", name, err)
			assert.Equal(t, 7*time.Second, rl.RetryAfter)
			assert.False(t, connectors.IsPermanent(err))
		})
	}
}
