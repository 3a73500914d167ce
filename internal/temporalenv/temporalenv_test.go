package temporalenv_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/temporalenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestOptions(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "defaults", env: map[string]string{}},
		{name: "address and namespace", env: map[string]string{"TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": "jml"}},
		{name: "api key", env: map[string]string{"TEMPORAL_API_KEY": "abc"}},
		{name: "cert without key", env: map[string]string{"TEMPORAL_TLS_CERT": "/x.pem"}, wantErr: "must be set together"},
		{name: "unreadable CA", env: map[string]string{"TEMPORAL_TLS_CA": "/nonexistent/ca.pem"}, wantErr: "TEMPORAL_TLS_CA"},
		{name: "server name only", env: map[string]string{"TEMPORAL_TLS_SERVER_NAME": "temporal.internal"}},
		{name: "codec keys", env: map[string]string{"JML_CODEC_KEYS": "k1:" + key}},
		{name: "bad codec keys", env: map[string]string{"JML_CODEC_KEYS": "k1"}, wantErr: "JML_CODEC_KEYS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := temporalenv.Options(env(tc.env))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, or(tc.env["TEMPORAL_ADDRESS"], "127.0.0.1:7233"), o.HostPort)
			assert.Equal(t, or(tc.env["TEMPORAL_NAMESPACE"], "default"), o.Namespace)
			assert.Equal(t, tc.env["TEMPORAL_API_KEY"] != "", o.Credentials != nil)
			if tc.env["TEMPORAL_API_KEY"] != "" {
				assert.NotNil(t, o.ConnectionOptions.TLS, "an API key is never sent in clear")
			}
			assert.Equal(t, tc.env["JML_CODEC_KEYS"] != "", o.DataConverter != nil)
			if name := tc.env["TEMPORAL_TLS_SERVER_NAME"]; name != "" {
				require.NotNil(t, o.ConnectionOptions.TLS)
				assert.Equal(t, name, o.ConnectionOptions.TLS.ServerName)
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
