package connectors

import (
	"net"
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
