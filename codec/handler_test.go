package codec_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jml-dev/jml/codec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

const uiOrigin = "http://localhost:8233"

func TestHandlerCORSAndAuth(t *testing.T) {
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	srv := httptest.NewServer(codec.Handler(c, codec.HandlerOptions{AllowOrigins: []string{uiOrigin}, BearerToken: "codec-tok"}))
	t.Cleanup(srv.Close)

	body, err := json.Marshal(&commonpb.Payloads{Payloads: payloads(t, "x")})
	require.NoError(t, err)
	do := func(method, path, origin, auth string) *http.Response {
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}

	tests := []struct {
		name, method, path, origin, auth string
		wantStatus                       int
		wantCORS                         bool
	}{
		{"preflight from UI needs no token", http.MethodOptions, "/codec/decode", uiOrigin, "", http.StatusNoContent, true},
		{"decode with token", http.MethodPost, "/codec/decode", uiOrigin, "Bearer codec-tok", http.StatusOK, true},
		{"encode with token", http.MethodPost, "/codec/encode", "", "bearer codec-tok", http.StatusOK, false},
		{"no token", http.MethodPost, "/codec/decode", uiOrigin, "", http.StatusUnauthorized, true},
		{"wrong token", http.MethodPost, "/codec/decode", uiOrigin, "Bearer nope", http.StatusUnauthorized, true},
		{"other origin gets no CORS", http.MethodPost, "/codec/decode", "https://evil.example", "Bearer codec-tok", http.StatusOK, false},
		{"GET not allowed", http.MethodGet, "/codec/decode", "", "Bearer codec-tok", http.StatusMethodNotAllowed, false},
		{"unknown path", http.MethodPost, "/decode", "", "Bearer codec-tok", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(tt.method, tt.path, tt.origin, tt.auth)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantCORS {
				assert.Equal(t, tt.origin, resp.Header.Get("Access-Control-Allow-Origin"))
				assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace")
			} else {
				assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	}
}

// The SDK's own remote codec (what `temporal workflow show --codec-endpoint`
// uses) round-trips through the handler.
func TestHandlerWithRemoteCodec(t *testing.T) {
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	srv := httptest.NewServer(codec.Handler(c, codec.HandlerOptions{BearerToken: "codec-tok"}))
	t.Cleanup(srv.Close)
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL + "/codec",
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer codec-tok")
			return nil
		},
	})
	in := payloads(t, "grace.hopper@acme.com")
	enc, err := remote.Encode(in)
	require.NoError(t, err)
	assert.Equal(t, codec.Encoding, string(enc[0].Metadata[converter.MetadataEncoding]))
	assert.NotContains(t, string(enc[0].Data), "grace")
	dec, err := remote.Decode(enc)
	require.NoError(t, err)
	assert.Equal(t, in[0].Data, dec[0].Data)
}

// In dev mode without keys the handler still answers (identity), so the UI
// configured with a codec endpoint keeps working.
func TestHandlerWithoutCodec(t *testing.T) {
	srv := httptest.NewServer(codec.Handler(nil, codec.HandlerOptions{}))
	t.Cleanup(srv.Close)
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: srv.URL + "/codec"})
	in := payloads(t, "plain")
	out, err := remote.Decode(in)
	require.NoError(t, err)
	assert.Equal(t, in[0].Data, out[0].Data)
}

// TestHandlerNoWildcardWithCredentials: the handler allows credentials, so
// it never answers "*" nor echoes an origin that is not listed, even when
// "*" is configured.
func TestHandlerNoWildcardWithCredentials(t *testing.T) {
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	srv := httptest.NewServer(codec.Handler(c, codec.HandlerOptions{AllowOrigins: []string{"*"}, BearerToken: "codec-tok"}))
	t.Cleanup(srv.Close)
	for _, method := range []string{http.MethodOptions, http.MethodPost} {
		req, err := http.NewRequest(method, srv.URL+"/codec/decode", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Authorization", "Bearer codec-tok")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		assert.NotEqual(t, "*", acao, method)
		assert.Empty(t, acao, "%s: an origin not listed is not allowed", method)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), method)
	}
}

func TestParseOrigins(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"https://ui.example, http://127.0.0.1:8233/", []string{"https://ui.example", "http://127.0.0.1:8233"}, false},
		{"*", nil, true},
		{"https://ui.example,*", nil, true},
		{"ui.example", nil, true},
		{"https://ui.example/path", nil, true},
		{"file:///x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := codec.ParseOrigins(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
