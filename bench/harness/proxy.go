package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault kinds the proxy injects.
const (
	Fault500  = "500"
	Fault503  = "503"
	Fault429  = "429"
	FaultHang = "hang" // forwarded, then no answer until the client gives up
)

// Proxy sits between jml and a target peer. It counts requests, stamps the
// moment each account was created, and optionally answers above a request
// rate with 429 or injects faults.
type Proxy struct {
	URL string // the proxy's root; replaces the peer's scheme://host:port

	mu       sync.Mutex
	total    int
	byMethod map[string]int
	created  map[string]time.Time // lower(userName or login) → first successful create
	creates  map[string]int       // successful creates per name
	faults   map[string]int
	passed   []time.Time // requests forwarded (rate limiting: inside the limit)
	limited  int

	rate      int // requests per second allowed; 0 = unlimited
	window    time.Time
	inWindow  int
	faultRate float64
	hang      time.Duration
	rnd       *rand.Rand
}

// StartProxy proxies every request to upstream (scheme://host:port).
func StartProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatalf("harness: proxy upstream: %v", err)
	}
	p := &Proxy{byMethod: map[string]int{}, created: map[string]time.Time{}, creates: map[string]int{},
		faults: map[string]int{}, rnd: rand.New(rand.NewPCG(1, 2))}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError)
	srv := httptest.NewServer(p.handler(rp))
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Limit answers 429 (Retry-After and X-Rate-Limit-Reset set to the next
// one-second window) to requests beyond perSecond in a window.
func (p *Proxy) Limit(perSecond int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = perSecond
}

// Inject breaks share (0..1) of requests from now on, spread evenly over
// 500, 503, 429 and a hang of hang (which should outlast the client's
// timeout). A hung request reaches the peer first: the write happens, the
// answer is lost.
func (p *Proxy) Inject(share float64, hang time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faultRate, p.hang = share, hang
}

// Stats is what the proxy saw.
type Stats struct {
	Total    int            `json:"total"`
	ByMethod map[string]int `json:"by_method"`
	Faults   map[string]int `json:"faults,omitempty"`
	Limited  int            `json:"limited,omitempty"` // 429s for the rate limit
	// DuplicateCreates counts successful creates beyond the first per name.
	DuplicateCreates int `json:"duplicate_creates"`
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Total: p.total, ByMethod: map[string]int{}, Faults: map[string]int{}, Limited: p.limited}
	for k, v := range p.byMethod {
		s.ByMethod[k] = v
	}
	for k, v := range p.faults {
		s.Faults[k] = v
	}
	for _, n := range p.creates {
		s.DuplicateCreates += n - 1
	}
	return s
}

// Reset zeroes the counters (not the created stamps).
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.limited = 0, 0
	p.byMethod, p.faults = map[string]int{}, map[string]int{}
	p.passed = nil
}

// Created is when the account name was first created, and whether it was.
func (p *Proxy) Created(name string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.created[strings.ToLower(name)]
	return t, ok
}

// RateUse is the share of the allowed rate used: requests let through over
// the allowance of every one-second window from the first to the last
// request let through.
func (p *Proxy) RateUse() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 || len(p.passed) == 0 {
		return 0
	}
	first := p.passed[0].Truncate(time.Second)
	last := p.passed[len(p.passed)-1].Truncate(time.Second)
	windows := int(last.Sub(first)/time.Second) + 1
	return float64(len(p.passed)) / float64(windows*p.rate)
}

// SaturatedRateUse is the share of the allowed rate used while the work
// left could fill it: requests let through in the whole one-second windows
// from the first request to the last rate requests, over rate per window.
// The final second's worth of work belongs to the last few runs, whose
// steps are sequential and cannot fill a window whatever the engine does;
// partial windows at either end would count time the proxy's per-second
// allowance does not. windows is how many windows were counted; perWindow
// is the requests let through in every window from the first to the last.
func (p *Proxy) SaturatedRateUse() (share float64, windows int, perWindow []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 || len(p.passed) == 0 {
		return 0, 0, nil
	}
	first := p.passed[0].Truncate(time.Second)
	for _, t := range p.passed {
		i := int(t.Truncate(time.Second).Sub(first) / time.Second)
		for len(perWindow) <= i {
			perWindow = append(perWindow, 0)
		}
		perWindow[i]++
	}
	if len(p.passed) <= p.rate {
		return 0, 0, perWindow
	}
	// Windows 1 … end-1: window 0 began before the first request, window
	// end holds the cut.
	end := int(p.passed[len(p.passed)-p.rate].Truncate(time.Second).Sub(first) / time.Second)
	n := 0
	for i := 1; i < end; i++ {
		n += perWindow[i]
		windows++
	}
	if windows == 0 {
		return 0, 0, perWindow
	}
	return float64(n) / float64(windows*p.rate), windows, perWindow
}

func (p *Proxy) handler(rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		p.total++
		p.byMethod[r.Method]++
		now := time.Now()
		if p.rate > 0 {
			if win := now.Truncate(time.Second); !win.Equal(p.window) {
				p.window, p.inWindow = win, 0
			}
			if p.inWindow >= p.rate {
				p.limited++
				reset := p.window.Add(time.Second)
				p.mu.Unlock()
				w.Header().Set("Retry-After", "1")
				w.Header().Set("X-Rate-Limit-Limit", fmt.Sprint(p.rate))
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(reset.Unix()))
				scimError(w, http.StatusTooManyRequests, "rate limit exceeded")
				return
			}
			p.inWindow++
		}
		p.passed = append(p.passed, now)
		fault := ""
		if p.faultRate > 0 && p.rnd.Float64() < p.faultRate {
			fault = []string{Fault500, Fault503, Fault429, FaultHang}[p.rnd.IntN(4)]
			p.faults[fault]++
		}
		hang := p.hang
		p.mu.Unlock()

		switch fault {
		case Fault500:
			scimError(w, http.StatusInternalServerError, "injected fault")
			return
		case Fault503:
			scimError(w, http.StatusServiceUnavailable, "injected fault")
			return
		case Fault429:
			w.Header().Set("Retry-After", "1")
			scimError(w, http.StatusTooManyRequests, "injected fault")
			return
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		if fault == FaultHang {
			// The request takes effect; its answer never arrives in time.
			rp.ServeHTTP(&recorder{ResponseWriter: discard{}, status: http.StatusOK, sink: rec}, r)
			p.noteCreate(r, body, rec.status)
			select {
			case <-r.Context().Done():
			case <-time.After(hang):
			}
			scimError(w, http.StatusGatewayTimeout, "injected hang")
			return
		}
		rp.ServeHTTP(rec, r)
		p.noteCreate(r, body, rec.status)
	})
}

// noteCreate stamps a successful SCIM POST /Users or Okta POST /api/v1/users.
func (p *Proxy) noteCreate(r *http.Request, body []byte, status int) {
	if r.Method != http.MethodPost || (status != http.StatusCreated && status != http.StatusOK) {
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/Users") && !strings.HasSuffix(r.URL.Path, "/api/v1/users") {
		return
	}
	var b struct {
		UserName string `json:"userName"`
		Profile  struct {
			Login string `json:"login"`
		} `json:"profile"`
	}
	_ = json.Unmarshal(body, &b)
	name := strings.ToLower(b.UserName + b.Profile.Login)
	if name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.created[name]; !ok {
		p.created[name] = time.Now()
	}
	p.creates[name]++
}

func scimError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  fmt.Sprint(status), "detail": detail,
		"errorCode": "E0000047", "errorSummary": detail, // Okta's shape, harmless to SCIM
	})
}

// recorder keeps the status code; with sink set it reports it there.
type recorder struct {
	http.ResponseWriter
	status int
	sink   *recorder
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	if r.sink != nil {
		r.sink.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
