package codec

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HandlerOptions configure the codec server.
type HandlerOptions struct {
	// AllowOrigins are the Web UI origins allowed to call from a browser
	// ("http://localhost:8233"), matched exactly. There is no wildcard: the
	// answer allows credentials, so "*" would let any page a logged-in
	// operator visits decode payloads. Empty: no CORS headers.
	AllowOrigins []string
	// BearerToken, when set, must be presented as "Authorization: Bearer …".
	BearerToken string
	// VerifyToken, when set, accepts a bearer token BearerToken does not
	// match: the Web UI forwards its signed-in user's OIDC access token,
	// checked against the identity provider's keys (JWKSVerifier).
	VerifyToken func(ctx context.Context, token string) error
	// MaxBodyBytes caps a request body; default 16 MiB.
	MaxBodyBytes int64
}

// Handler serves POST /codec/encode and /codec/decode in the Temporal
// remote codec protocol (Payloads as protobuf JSON) for the Web UI and CLI.
// Preflight requests from allowed origins are answered without auth.
func Handler(c converter.PayloadCodec, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	sdk := converter.NewPayloadCodecHTTPHandler() // no codec (dev without keys): identity
	if c != nil {
		sdk = converter.NewPayloadCodecHTTPHandler(c)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && allowed(o.AllowOrigins, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
			h.Set("Access-Control-Max-Age", "600")
		}
		if r.URL.Path != "/codec/encode" && r.URL.Path != "/codec/decode" {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if (o.BearerToken != "" || o.VerifyToken != nil) && !authorized(r, o) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jml-codec"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, o.MaxBodyBytes)
		sdk.ServeHTTP(w, r)
	})
}

func allowed(origins []string, origin string) bool {
	return slices.ContainsFunc(origins, func(o string) bool {
		return strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// ParseOrigins splits a comma-separated list of origins
// ("https://ui.example, http://127.0.0.1:8233") for HandlerOptions.AllowOrigins.
// It refuses "*" and anything that is not scheme://host[:port].
func ParseOrigins(v string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if o == "*" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port] (no wildcard: the codec endpoint allows credentials)", o)
		}
		out = append(out, o)
	}
	return out, nil
}

func authorized(r *http.Request, o HandlerOptions) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if tok = strings.TrimSpace(tok); !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	if o.BearerToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(o.BearerToken)) == 1 {
		return true
	}
	return o.VerifyToken != nil && o.VerifyToken(r.Context(), tok) == nil
}
