package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// credential is a Credential with its secrets read from the
// environment.
type credential struct {
	key     string // token cache key
	name    string // for messages
	typ     string
	spec    Credential
	user    string
	pass    string
	value   string // bearer token or header value
	secrets []string
}

func (c *credential) tokenBased() bool { return c.typ == "login_bearer" || c.typ == "oauth2" }

// credentialFor picks the step's named credential, else the target's auth
// (a target with only token_env is bearer), else none.
func (c *Client) credentialFor(s Spec, t *Target) (*credential, error) {
	var spec Credential
	var name string
	switch {
	case s.Credential != "":
		cr, ok := c.o.Credentials[s.Credential]
		if !ok {
			return nil, invalid("credential %q is not defined in the policy's credentials", s.Credential)
		}
		spec, name = cr, "credential "+s.Credential
	case t != nil && t.Auth.Type != "":
		spec, name = t.Auth, "target auth"
	case t != nil && t.TokenEnv != "":
		spec, name = Credential{Type: "bearer", TokenEnv: t.TokenEnv}, "target auth"
	default:
		return nil, nil
	}
	cr := &credential{key: name + "|" + spec.Type + "|" + spec.TokenURL + spec.LoginURL, name: name, typ: spec.Type, spec: spec}
	if t != nil {
		cr.key += "|" + t.BaseURL
	}
	env := func(field, v string) (string, error) {
		if v == "" {
			return "", connectors.Permanentf("RestConfig", "rest: %s: %s is required for type %s", name, field, spec.Type)
		}
		val := c.o.Getenv(v)
		if val == "" {
			return "", connectors.Permanentf("RestConfig", "rest: %s: environment variable %s is empty", name, v)
		}
		cr.secrets = append(cr.secrets, val)
		return val, nil
	}
	var err error
	switch spec.Type {
	case "none":
		return nil, nil
	case "bearer":
		cr.value, err = env("token_env", spec.TokenEnv)
	case "header":
		if spec.Header == "" {
			return nil, connectors.Permanentf("RestConfig", "rest: %s: header is required for type header", name)
		}
		cr.value, err = env("value_env", spec.ValueEnv)
	case "basic", "login_bearer":
		if cr.user, err = env("username_env", spec.UsernameEnv); err == nil {
			cr.pass, err = env("password_env", spec.PasswordEnv)
		}
		if err == nil && spec.Type == "login_bearer" && spec.LoginURL == "" {
			err = connectors.Permanentf("RestConfig", "rest: %s: login_url is required for type login_bearer", name)
		}
	case "oauth2":
		if spec.TokenURL == "" {
			return nil, connectors.Permanentf("RestConfig", "rest: %s: token_url is required for type oauth2", name)
		}
		if cr.user, err = env("client_id_env", spec.ClientIDEnv); err == nil {
			cr.pass, err = env("client_secret_env", spec.ClientSecretEnv)
		}
	default:
		return nil, connectors.Permanentf("RestConfig", "rest: %s: unknown type %q (none, header, basic, bearer, login_bearer, oauth2)", name, spec.Type)
	}
	if err != nil {
		return nil, err
	}
	return cr, nil
}

// authorize adds the credential to req, fetching a token if needed.
func (c *Client) authorize(ctx context.Context, req *http.Request, cr *credential, red *redactor) error {
	if cr == nil {
		return nil
	}
	switch cr.typ {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+cr.value)
	case "header":
		req.Header.Set(cr.spec.Header, cr.value)
	case "basic":
		req.SetBasicAuth(cr.user, cr.pass)
	case "login_bearer", "oauth2":
		tok, err := c.tokenFor(ctx, cr, red)
		if err != nil {
			return err
		}
		red.add(tok.AccessToken)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	}
	return nil
}

func (c *Client) forget(cr *credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.token, cr.key)
}

// tokenFor returns the cached token of cr, or logs in for a new one. The
// lock is held across the fetch so concurrent steps log in once.
func (c *Client) tokenFor(ctx context.Context, cr *credential, red *redactor) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.token[cr.key]; t.Valid() {
		return t, nil
	}
	var (
		t   *oauth2.Token
		err error
	)
	if cr.typ == "oauth2" {
		t, err = c.oauth2Token(ctx, cr, red)
	} else {
		t, err = c.login(ctx, cr, red)
	}
	if err != nil {
		return nil, err
	}
	c.token[cr.key] = t
	return t, nil
}

func (c *Client) oauth2Token(ctx context.Context, cr *credential, red *redactor) (*oauth2.Token, error) {
	u, err := url.Parse(cr.spec.TokenURL)
	if err != nil || u.Host == "" {
		return nil, connectors.Permanentf("RestConfig", "rest: %s: token_url is not an absolute URL", cr.name)
	}
	if err := c.secureEnough(u, "the token request carries the client secret"); err != nil {
		return nil, err
	}
	cfg := clientcredentials.Config{ClientID: cr.user, ClientSecret: cr.pass, TokenURL: cr.spec.TokenURL, Scopes: cr.spec.Scopes}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, c.http), c.o.Timeout)
	defer cancel()
	t, err := cfg.Token(ctx)
	if err == nil {
		return t, nil
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return nil, classify("POST", red.url(u)+" (oauth2 token)", re.Response, re.Body, red)
	}
	return nil, transportError(ctx, "POST", red.url(u)+" (oauth2 token)", err, red)
}

// login POSTs {"username","password"} as JSON to login_url and reads the
// token at token_field (default "token", then "access_token").
func (c *Client) login(ctx context.Context, cr *credential, red *redactor) (*oauth2.Token, error) {
	u, err := url.Parse(cr.spec.LoginURL)
	if err != nil || u.Host == "" {
		return nil, connectors.Permanentf("RestConfig", "rest: %s: login_url is not an absolute URL", cr.name)
	}
	if err := c.secureEnough(u, "the login carries a password"); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"username": cr.user, "password": cr.pass})
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, connectors.Permanentf("RestConfig", "rest: %s: build login request", cr.name)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	where := red.url(u) + " (login)"
	if err != nil {
		return nil, transportError(ctx, "POST", where, err, red)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxResponseBytes))
	if err != nil {
		return nil, transportError(ctx, "POST", where, err, red)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, classify("POST", where, resp, rb, red)
	}
	fields := []string{cr.spec.TokenField}
	if cr.spec.TokenField == "" {
		fields = []string{"token", "access_token"}
	}
	for _, f := range fields {
		if !strings.HasPrefix(f, "$") {
			f = "$." + f
		}
		out, err := extract(rb, map[string]string{"token": f})
		if err == nil && out["token"] != "" {
			return &oauth2.Token{AccessToken: out["token"], TokenType: "Bearer"}, nil
		}
	}
	return nil, connectors.Permanentf("RestAuth", "rest: POST %s: %s: no token at %s in the login response", where, resp.Status, strings.Join(fields, " or "))
}
