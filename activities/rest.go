package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
)

// RESTRequest is one Send REST Request / Notify call: the policy spec, the
// rest target it names (base URL, auth), the template environment (secret
// values already resolved into Env.Outputs, in memory only) and the secrets
// it carries (so the sender can refuse plain http and scrub errors).
type RESTRequest struct {
	Spec    policy.RESTRequest
	Target  *policy.Target
	Env     *transform.Env
	Secrets []secret.Secret
}

// RESTSender sends a RESTRequest and returns the extracted outputs.
// connectors/rest implements it (adapt with a small func type in the worker).
type RESTSender interface {
	Send(ctx context.Context, r RESTRequest) (map[string]string, error)
}

// RESTSenderFunc adapts a function to RESTSender.
type RESTSenderFunc func(ctx context.Context, r RESTRequest) (map[string]string, error)

// Send calls f.
func (f RESTSenderFunc) Send(ctx context.Context, r RESTRequest) (map[string]string, error) {
	return f(ctx, r)
}

// httpSender is the built-in minimal sender: templates, JSON-escaped body,
// bearer auth from the target's token env, status classification, top-level
// "$.field" extraction.
// TODO(rest): replace with connectors/rest once it lands.
type httpSender struct {
	client *http.Client
	getenv func(string) string
}

func render(src string, env *transform.Env) (string, error) {
	t, err := transform.Parse(src)
	if err != nil {
		return "", err
	}
	return t.Eval(env)
}

func (s *httpSender) Send(ctx context.Context, r RESTRequest) (map[string]string, error) {
	env := *r.Env
	env.Escape = nil
	raw, err := render(r.Spec.URL, &env)
	if err != nil {
		return nil, connectors.Permanentf("RestTemplate", "rest: url: %v", err)
	}
	if r.Target != nil && r.Target.BaseURL != "" && !strings.Contains(raw, "://") {
		raw = strings.TrimRight(r.Target.BaseURL, "/") + "/" + strings.TrimLeft(raw, "/")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, connectors.Permanentf("RestTemplate", "rest: bad url")
	}
	if len(r.Secrets) > 0 && u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return nil, connectors.Permanentf("RestInsecure", "rest: refusing to send a secret over %s", u.Scheme)
	}
	var body io.Reader
	if r.Spec.Body != "" {
		benv := *r.Env
		benv.Escape = jsonEscape
		b, err := render(r.Spec.Body, &benv)
		if err != nil {
			return nil, connectors.Permanentf("RestTemplate", "rest: body: %v", err)
		}
		body = strings.NewReader(b)
	}
	method := r.Spec.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, connectors.Permanentf("RestTemplate", "rest: request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.Spec.Headers {
		hv, err := render(v, &env)
		if err != nil {
			return nil, connectors.Permanentf("RestTemplate", "rest: header %s: %v", k, err)
		}
		req.Header.Set(k, hv)
	}
	if r.Target != nil && s.getenv != nil {
		tok := r.Target.TokenEnv
		if tok == "" {
			tok = r.Target.Auth.TokenEnv
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+s.getenv(tok))
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, connectors.Transient(fmt.Errorf("rest: %s %s: %w", method, u.Host, err))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if !successCode(resp.StatusCode, r.Spec.SuccessCodes) {
		err := fmt.Errorf("rest: %s %s: status %d", method, u.Host, resp.StatusCode)
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			d, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return nil, &connectors.RateLimitedError{RetryAfter: time.Duration(d) * time.Second, Err: err}
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
			return nil, connectors.Transient(err)
		}
		return nil, connectors.Permanent("RestStatus"+strconv.Itoa(resp.StatusCode), err)
	}
	out := map[string]string{}
	if len(r.Spec.Extract) > 0 {
		var doc map[string]any
		if err := json.Unmarshal(rb, &doc); err != nil {
			return nil, connectors.Permanentf("RestResponse", "rest: response is not a JSON object")
		}
		for name, path := range r.Spec.Extract {
			if v, ok := doc[strings.TrimPrefix(path, "$.")]; ok {
				out[name] = fmt.Sprint(v)
			}
		}
	}
	return out, nil
}

func successCode(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 300
	}
	for _, c := range want {
		if c == code {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func jsonEscape(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSpace(b.String())
	return out[1 : len(out)-1]
}
