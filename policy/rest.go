package policy

import (
	"maps"

	"github.com/jml-dev/jml/connectors/rest"
)

// RESTSpec is the request of a send_rest_request or notify step in the
// REST connector's own terms (the connector does not import the policy).
func (r RESTRequest) RESTSpec() rest.Spec {
	return rest.Spec{Target: r.Target, Credential: r.Credential, Method: r.Method, URL: r.URL,
		Headers: r.Headers, Body: r.Body, SuccessCodes: r.SuccessCodes, Extract: r.Extract, On: r.On}
}

// RESTTarget is a rest target in the REST connector's terms.
func (t Target) RESTTarget() *rest.Target {
	return &rest.Target{BaseURL: t.BaseURL, TokenEnv: t.TokenEnv, Auth: rest.Credential(t.Auth), RateLimit: t.RateLimit}
}

// RESTCredentials are the policy's named credentials in the REST
// connector's terms.
func (p *Policy) RESTCredentials() map[string]rest.Credential {
	out := make(map[string]rest.Credential, len(p.Credentials))
	for k, c := range maps.All(p.Credentials) {
		out[k] = rest.Credential(c)
	}
	return out
}
