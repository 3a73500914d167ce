package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// `starter post FILE --url URL` (the flag after the file, as an operator
// types it) posts the file to URL, like `starter post --url URL FILE`.
func TestPostTakesFlagsAfterTheFile(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.URL.Path+" "+string(b))
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"workflow_id":"joiner/E1/e1"}`))
	}))
	defer srv.Close()
	t.Setenv("JML_INTAKE_HMAC_SECRET", "")
	t.Setenv("JML_INTAKE_TOKEN", "")
	file := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"event_id":"e1"}`), 0o600))
	for _, args := range [][]string{
		{"post", file, "--url", srv.URL + "/v1/events"},
		{"post", "--url", srv.URL + "/v1/events", file},
	} {
		code, out, errs := starter(t, args...)
		require.Equal(t, 0, code, errs)
		assert.Contains(t, out, "202 Accepted")
	}
	assert.Equal(t, []string{`/v1/events {"event_id":"e1"}`, `/v1/events {"event_id":"e1"}`}, got)
}
