package rest

import "github.com/jml-dev/jml/connectors"

// Describe is the REST connector's description. A rest target is a base
// URL, credentials and a rate limit for send_rest_request and notify steps;
// it has no accounts, so no attribute catalog and no Build.
func Describe() *connectors.Description {
	return &connectors.Description{
		Type:    "rest",
		Summary: "any HTTP API, for send_rest_request and notify steps",
		Fields: []connectors.Field{
			{Name: "base_url", Kind: connectors.FieldURL, Help: "prefix of relative step URLs"},
			{Name: "token_env", Kind: connectors.FieldEnv, Secret: true, Help: "environment variable holding a bearer token"},
			{Name: "auth", Kind: connectors.FieldAuth, Help: "none, bearer, basic, header, oauth2 or login_bearer credentials"},
			{Name: "rate_limit", Kind: connectors.FieldNumber, Help: "most requests per second, shared by every step sending to the target"},
		},
		Actions:   []string{connectors.ActionSendRESTRequest, connectors.ActionNotify},
		RateLimit: connectors.RateLimitBehaviour{Configurable: true, Adaptive: "a 429 becomes a retry after Retry-After"},
	}
}
