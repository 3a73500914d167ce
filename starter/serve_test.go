package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"

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
		done <- run(ctx, []string{"serve", "--addr", addr, "--policy", "../examples/policy.yaml"}, io.Discard, io.Discard)
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
	go func() { done <- run(ctx, []string{"serve", "--addr", addr}, io.Discard, &errs) }()
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

	body := []byte(`{"event_id":"s-2","type":"terminate","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"S200"}}`)
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
