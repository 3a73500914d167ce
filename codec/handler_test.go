package codec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

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

// TestHandlerJWKS: with a JWKS verifier the codec accepts the OIDC access
// token the Web UI forwards — signed by the identity provider, for the
// issuer and audience, not expired — and refuses any other.
func TestHandlerJWKS(t *testing.T) {
	idpKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: idpKey.Public(), KeyID: "idp-1", Algorithm: string(jose.RS256), Use: "sig"}}})
	}))
	t.Cleanup(jwks.Close)
	const issuer, audience = "https://idp.example", "temporal-ui"
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	srv := httptest.NewServer(codec.Handler(c, codec.HandlerOptions{
		BearerToken: "codec-tok",
		VerifyToken: codec.JWKSVerifier(context.Background(), jwks.URL, issuer, audience),
	}))
	t.Cleanup(srv.Close)

	sign := func(k *rsa.PrivateKey, iss, aud string, exp time.Time) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "idp-1"))
		require.NoError(t, err)
		tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: iss, Audience: jwt.Audience{aud}, Subject: "ops@acme.test",
			Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}).Serialize()
		require.NoError(t, err)
		return tok
	}
	body, err := json.Marshal(&commonpb.Payloads{Payloads: payloads(t, "x")})
	require.NoError(t, err)
	later := time.Now().Add(time.Hour)
	tests := []struct {
		name, token string
		want        int
	}{
		{"the UI's access token", sign(idpKey, issuer, audience, later), http.StatusOK},
		{"the static token", "codec-tok", http.StatusOK},
		{"expired", sign(idpKey, issuer, audience, time.Now().Add(-time.Minute)), http.StatusUnauthorized},
		{"other issuer", sign(idpKey, "https://evil.example", audience, later), http.StatusUnauthorized},
		{"other audience", sign(idpKey, issuer, "other-app", later), http.StatusUnauthorized},
		{"signed by another key", sign(otherKey, issuer, audience, later), http.StatusUnauthorized},
		{"none", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/codec/decode", bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}
