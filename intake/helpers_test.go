package intake_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/intake/intaketest"
)

func hmacHex(key string, msg []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

func newIntakeTB(tb testing.TB, env *intaketest.Env) string {
	srv := httptest.NewServer(intake.New(intake.Config{Client: env.Client, HMACSecret: secret}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

func postTB(tb testing.TB, url string, body []byte, hdr map[string]string) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
