package graphtest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// token is the identity platform v2.0 token endpoint for the client
// credentials grant. Errors follow its RFC 6749 JSON body with AADSTS codes.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	tenant := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	fail := func(status int, code, desc string, aadsts int) {
		writeJSON(w, status, map[string]any{
			"error": code, "error_description": desc, "error_codes": []int{aadsts},
			"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": newRequestID(),
			"correlation_id": newRequestID(),
		})
	}
	if r.Method != http.MethodPost {
		fail(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", 900561)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900144)
		return
	}
	switch {
	case tenant != s.opts.Tenant:
		fail(400, "invalid_request", "AADSTS90002: Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", 90002)
		return
	case r.PostForm.Get("grant_type") != "client_credentials":
		fail(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003)
		return
	case r.PostForm.Get("client_id") != s.opts.ClientID:
		fail(400, "unauthorized_client", "AADSTS700016: Application with identifier '"+r.PostForm.Get("client_id")+"' was not found in the directory '"+tenant+"'.", 700016)
		return
	case !strings.HasSuffix(r.PostForm.Get("scope"), "/.default"):
		fail(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", 1002012)
		return
	}
	if a := r.PostForm.Get("client_assertion"); a != "" {
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			fail(400, "invalid_request", "AADSTS50027: Invalid client_assertion_type.", 50027)
			return
		}
		if msg := s.checkAssertion(a, "http://"+r.Host+r.URL.Path); msg != "" {
			fail(401, "invalid_client", msg, 700027)
			return
		}
	} else if sec := r.PostForm.Get("client_secret"); sec == "" {
		fail(401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", 7000218)
		return
	} else if sec != s.opts.ClientSecret {
		fail(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+s.opts.ClientID+"'.", 7000215)
		return
	}
	tok := "eyJ0eXAiOiJKV1QifQ." + newRequestID()
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenLifetime)
	s.mu.Unlock()
	sec := int(s.opts.TokenLifetime / time.Second)
	writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": sec, "ext_expires_in": sec, "access_token": tok})
}

// checkAssertion verifies an RS256 client assertion against the registered
// certificate; it returns an AADSTS message, or "" when valid.
func (s *Server) checkAssertion(jwt, audience string) string {
	const bad = "AADSTS700027: Client assertion failed signature validation."
	cert := s.opts.Certificate
	if cert == nil {
		return "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return bad
	}
	var hdr struct{ Alg, Typ, X5t string }
	var claims struct {
		Aud, Iss, Sub, Jti string
		Exp, Nbf           int64
	}
	if decodePart(parts[0], &hdr) != nil || decodePart(parts[1], &claims) != nil {
		return bad
	}
	thumb := sha1.Sum(cert.Raw)
	if hdr.Alg != "RS256" || hdr.X5t != base64.RawURLEncoding.EncodeToString(thumb[:]) {
		return "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return bad
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ok || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		return bad
	}
	now := time.Now().Unix()
	switch {
	case claims.Aud != audience:
		return "AADSTS700212: No matching federated identity record found for presented assertion audience '" + claims.Aud + "'."
	case claims.Iss != s.opts.ClientID || claims.Sub != s.opts.ClientID:
		return "AADSTS700023: Client assertion audience claim does not match Realm issuer."
	case claims.Exp < now || claims.Nbf > now+300 || claims.Jti == "":
		return "AADSTS700024: Client assertion is not within its valid time range."
	}
	return ""
}

func decodePart(p string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// authorized checks the bearer token of a Graph request.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		writeError(w, 401, "InvalidAuthenticationToken", "Access token is empty.", nil)
		return false
	}
	s.mu.Lock()
	exp, known := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !known:
		writeError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", nil)
		return false
	case time.Now().After(exp):
		writeError(w, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", nil)
		return false
	}
	return true
}
