package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
)

func TestServe(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{})
	useTemporal(t, env)
	t.Setenv("JML_INTAKE_HMAC_SECRET", "serve-secret")
	t.Setenv("JML_INTAKE_TOKEN", "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", addr, "--policy", "../examples/policy.yaml"}, io.Discard, io.Discard)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)

	body := []byte(`{"event_id":"s-1","type":"hire","effective_at":"2026-12-01T09:00:00Z",
	  "employee":{"employee_id":"S100","first_name":"A","last_name":"B","department":"Ops","country_code":"US"}}`)
	ts, sig := intake.Sign([]byte("serve-secret"), time.Now(), body)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(intake.HeaderTimestamp, ts)
	req.Header.Set(intake.HeaderSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	// The policy's required attributes are enforced.
	bad := []byte(`{"type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"S101","first_name":"A","last_name":"B"}}`)
	ts, sig = intake.Sign([]byte("serve-secret"), time.Now(), bad)
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(bad))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(intake.HeaderTimestamp, ts)
	req.Header.Set(intake.HeaderSignature, sig)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeRefusesToRunWithoutCredentials(t *testing.T) {
	t.Setenv("JML_INTAKE_HMAC_SECRET", "")
	t.Setenv("JML_INTAKE_TOKEN", "")
	code, _, errs := starter(t, "serve", "--addr", "127.0.0.1:0")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "JML_INTAKE_HMAC_SECRET")
}

// TestServeRegistersSearchAttributes: on a namespace without jml's search
// attributes serve registers them at start-up, and events are accepted.
func TestServeRegistersSearchAttributes(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{NoSearchAttributes: true})
	useTemporal(t, env)
	t.Setenv("JML_INTAKE_HMAC_SECRET", "")
	t.Setenv("JML_INTAKE_TOKEN", "serve-token")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var errs bytes.Buffer
	go func() { done <- run(ctx, []string{"serve", "--dev", "--addr", addr}, io.Discard, &errs) }()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	list, err := env.Client.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: env.Namespace})
	require.NoError(t, err)
	assert.Contains(t, list.CustomAttributes, "JmlEmployeeId")
	assert.Contains(t, list.CustomAttributes, "JmlFailedStep")

	// A hire: a termination for a person jml never saw is refused (404).
	body := []byte(`{"event_id":"s-2","type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"S200","first_name":"Ada","last_name":"Lovelace"}}`)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer serve-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeRefusesToRunWithoutCodecKeys: outside --dev the intake would
// write events to history in clear text; it stops with one line instead.
func TestServeRefusesToRunWithoutCodecKeys(t *testing.T) {
	t.Setenv("JML_INTAKE_HMAC_SECRET", "serve-secret")
	t.Setenv("JML_CODEC_KEYS", "")
	t.Setenv("JML_CODEC_ACTIVE_KEY", "")
	code, out, errs := starter(t, "serve", "--addr", "127.0.0.1:0")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errs), "\n")+1, "one line: %q", errs)
	assert.Contains(t, errs, "starter serve: codec: JML_CODEC_KEYS is not set")
}

// TestServeRefusesCodecWithoutToken: outside --dev the codec endpoint
// decrypts for whoever reaches it, so serve will not start it without a
// token; nor with a wildcard origin.
func TestServeRefusesCodecWithoutToken(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	t.Setenv("JML_INTAKE_HMAC_SECRET", "serve-secret")
	t.Setenv("JML_CODEC_KEYS", "k1:"+key)
	t.Setenv("JML_CODEC_ACTIVE_KEY", "k1")
	t.Setenv("TEMPORAL_ADDRESS", freeAddr(t)) // nothing listens: serve must stop before dialing
	tests := []struct {
		name, token, jwks, origins, want string
	}{
		{"no token", "", "", "", "set JML_CODEC_TOKEN"},
		{"JWKS without issuer", "", "http://127.0.0.1:1/jwks", "", "JML_CODEC_OIDC_ISSUER"},
		{"wildcard origin", "codec-token", "", "*", "JML_CODEC_CORS_ORIGINS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("JML_CODEC_TOKEN", tt.token)
			t.Setenv("JML_CODEC_JWKS_URL", tt.jwks)
			t.Setenv("JML_CODEC_OIDC_ISSUER", "")
			t.Setenv("JML_CODEC_CORS_ORIGINS", tt.origins)
			// Old code ignored the codec address and ran until canceled.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errs bytes.Buffer
			code := run(ctx, []string{"serve", "--addr", freeAddr(t), "--codec-addr", freeAddr(t)}, &out, &errs)
			assert.Equal(t, 2, code, errs.String())
			assert.Empty(t, out.String())
			assert.Contains(t, errs.String(), tt.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(errs.String()), "\n")+1, "one line: %q", errs.String())
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestServeCodecEndpoint: serve answers the Web UI's codec calls on their
// own listener, never the intake's — CORS for the configured origin, the
// bearer token — and decodes what a client with the same keys encoded.
func TestServeCodecEndpoint(t *testing.T) {
	env := intaketest.Start(t, intaketest.Options{NoWorker: true})
	useTemporal(t, env)
	const uiOrigin = "http://ui.example:8233"
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	t.Setenv("JML_CODEC_KEYS", "k1:"+base64.StdEncoding.EncodeToString(key))
	t.Setenv("JML_CODEC_CORS_ORIGINS", "https://other.example, "+uiOrigin)
	t.Setenv("JML_CODEC_TOKEN", "codec-token")
	t.Setenv("JML_INTAKE_HMAC_SECRET", "serve-secret")
	addr, codecAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--codec-addr", codecAddr}, io.Discard, &errs)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, errs.String())

	pc, err := codec.New(map[string][]byte{"k1": key}, "k1")
	require.NoError(t, err)
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"first_name": "Zenobia"})
	require.NoError(t, err)
	enc, err := pc.Encode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.NotContains(t, string(enc[0].Data), "Zenobia")
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)

	callAt := func(addr, method, origin, auth string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, "http://"+addr+"/codec/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", env.Namespace)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	call := func(method, origin, auth string) (*http.Response, []byte) {
		return callAt(codecAddr, method, origin, auth)
	}
	// The intake's listener knows no codec, with or without the token.
	resp, _ := callAt(addr, http.MethodPost, uiOrigin, "Bearer codec-token")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "intake listener")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "intake listener")
	resp, _ = call(http.MethodPost, "", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no credentials")
	resp, _ = call(http.MethodOptions, uiOrigin, "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode, "preflight")
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	resp, _ = call(http.MethodPost, uiOrigin, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no bearer")
	resp, got := call(http.MethodPost, uiOrigin, "Bearer codec-token")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(got))
	assert.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	var dec commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(got, &dec))
	require.Len(t, dec.Payloads, 1)
	assert.Contains(t, string(dec.Payloads[0].Data), "Zenobia")
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	resp, _ = call(http.MethodPost, "https://evil.example", "Bearer codec-token")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "an origin not listed gets no CORS headers")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
