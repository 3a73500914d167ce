package connectors

import (
	"net"
	"net/http"
	"net/url"
)

// SecretsMayTravel reports whether a request carrying a secret (a
// credential, a password) may go to u: over https, or over plain http to a
// loopback host when allowInsecureLoopback is set (tests; no worker sets
// it). The REST connector asks it before sending and policy validation
// asks it, as a worker would, for every step that sends a secret, so a
// policy that loads never meets RestInsecure at run time.
func SecretsMayTravel(u *url.URL, allowInsecureLoopback bool) bool {
	return u.Scheme == "https" || u.Scheme == "http" && allowInsecureLoopback && IsLoopback(u.Hostname())
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewHTTPTransport is the transport a connector uses when the caller gives
// it no HTTP client: Go's default transport keeping up to 64 idle
// connections per host instead of 2. A worker runs many steps against one
// target at once; with 2 kept, most of its requests would open a new
// connection (and, over HTTPS, make a new TLS handshake).
func NewHTTPTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}
