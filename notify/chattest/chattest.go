// Package chattest is a Slack or Teams incoming webhook for tests: a
// loopback HTTPS server that records the JSON messages posted to it.
package chattest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Server is a running chat receiver.
type Server struct {
	*httptest.Server

	mu   sync.Mutex
	got  []map[string]any
	errs []string
}

// Start starts a receiver answering every well-formed post with status;
// it stops when the test ends. Its certificate is httptest's: trust it
// with Server.Client().
func Start(t testing.TB, status int) *Server {
	t.Helper()
	s := &Server{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		err := json.Unmarshal(b, &v)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case r.Method != http.MethodPost:
			s.errs = append(s.errs, "method "+r.Method)
		case r.Header.Get("Content-Type") != "application/json":
			s.errs = append(s.errs, "content type "+r.Header.Get("Content-Type"))
		case err != nil:
			s.errs = append(s.errs, "body: "+err.Error())
		default:
			s.got = append(s.got, v)
			w.WriteHeader(status)
			return
		}
		http.Error(w, "bad request", http.StatusBadRequest)
	}))
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.errs {
			t.Errorf("chattest: refused a post: %s", e)
		}
	})
	return s
}

// Messages returns the messages received so far.
func (s *Server) Messages() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.got...)
}
