package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/jml-dev/jml/devstack"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/sandbox"
	"github.com/jml-dev/jml/secret"
)

// The sandbox's default addresses, which examples/dev-policy.yaml names,
// and the environment variable its targets read the bearer token from.
const (
	defaultSandboxAddr  = "127.0.0.1:8090"
	defaultHRPortalAddr = "127.0.0.1:8443"
	sandboxTokenEnv     = "JML_SANDBOX_TOKEN"
)

// sandboxConfig is the sandbox part of the command line.
type sandboxConfig struct {
	enabled bool   // --sandbox; --dev always starts it
	addr    string // --sandbox-addr; "" is the default address, or any free port when it is busy
	hrAddr  string // --hr-portal-addr; likewise
	// observe sees every password the HR portal receives. Only tests set
	// it, to scan workflow histories for that exact value.
	observe func(secret.Secret)
}

func (s *sandboxConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.BoolVar(&s.enabled, "sandbox", false, "start the sandbox directory and HR portal sink without --dev (staging)")
	fs.StringVar(&s.addr, "sandbox-addr", getenv("JML_SANDBOX_ADDR"), "sandbox SCIM directory address (default "+defaultSandboxAddr+")")
	fs.StringVar(&s.hrAddr, "hr-portal-addr", getenv("JML_HR_PORTAL_ADDR"), "sandbox HR portal (HTTPS) address (default "+defaultHRPortalAddr+")")
}

// sandboxFor starts the sandbox when --dev or --sandbox asks for it and
// wires it in: policy targets written for the default addresses follow the
// actual ones, JML_SANDBOX_TOKEN resolves to its token (unless set in the
// environment, which then chooses the token), and the returned REST client
// trusts the HR portal's certificate. Without a sandbox it returns getenv
// unchanged, a nil client and a no-op stop.
func sandboxFor(cfg config, pol *policy.Policy, getenv func(string) string, stdout io.Writer) (func(string) string, *http.Client, func(), error) {
	if !cfg.dev && !cfg.sandbox.enabled {
		return getenv, nil, func() {}, nil
	}
	dir := filepath.Join(cfg.dataDir, "sandbox")
	if cfg.dev && cfg.devDB == devstack.Memory {
		dir = "" // a throwaway dev server gets a throwaway sandbox
	}
	scimAddr, scimMoved := pickAddr(cfg.sandbox.addr, defaultSandboxAddr)
	hrAddr, hrMoved := pickAddr(cfg.sandbox.hrAddr, defaultHRPortalAddr)
	sb, err := sandbox.Start(sandbox.Config{
		Dir: dir, SCIMAddr: scimAddr, HRPortalAddr: hrAddr,
		Token: getenv(sandboxTokenEnv), Observe: cfg.sandbox.observe,
	})
	if err != nil {
		msg := "worker: " + firstLine(err)
		if errors.Is(err, sandbox.ErrAddrInUse) {
			msg += " (choose another with --sandbox-addr / --hr-portal-addr)"
		}
		return nil, nil, nil, usageError{msg}
	}
	pointPolicyAt(pol, sb)

	tokenNote := "bearer token in " + filepath.Join(dir, sandbox.TokenFile)
	switch {
	case getenv(sandboxTokenEnv) != "":
		tokenNote = "bearer token $" + sandboxTokenEnv
	case dir == "":
		tokenNote = "bearer token in memory; set " + sandboxTokenEnv + " to choose it"
	}
	if scimMoved {
		tokenNote += "; " + defaultSandboxAddr + " is busy"
	}
	fmt.Fprintf(stdout, "Sandbox SCIM:      %s  (%s)\n", sb.SCIMURL, tokenNote)
	certNote := "self-signed, trusted by this worker only"
	if dir != "" {
		certNote += "; certificate " + filepath.Join(dir, sandbox.CertFile)
	}
	if hrMoved {
		certNote += "; " + defaultHRPortalAddr + " is busy"
	}
	fmt.Fprintf(stdout, "HR portal sink:    %s  (%s)\n", sb.HRPortalURL, certNote)

	env := func(key string) string {
		if key == sandboxTokenEnv {
			return sb.Token()
		}
		return getenv(key)
	}
	return env, sb.Portal.TrustingClient(30 * time.Second), func() { _ = sb.Close() }, nil
}

// pickAddr is addr when the operator chose one (taken or not: that error
// is theirs to see); else the default, or any free loopback port when
// something else holds the default (another dev stack, a test run), which
// the policy then follows and the worker prints.
func pickAddr(addr, def string) (string, bool) {
	if addr != "" {
		return addr, false
	}
	ln, err := net.Listen("tcp", def)
	if err != nil {
		return "127.0.0.1:0", true
	}
	_ = ln.Close()
	return def, false
}

// pointPolicyAt rewrites target base URLs on the sandbox's default
// addresses to the addresses it listens on (they differ with
// --sandbox-addr, --hr-portal-addr or port 0).
func pointPolicyAt(pol *policy.Policy, sb *sandbox.Sandbox) {
	moves := map[string]string{
		"http://" + defaultSandboxAddr:   strings.TrimSuffix(sb.SCIMURL, sandbox.BasePath),
		"https://" + defaultHRPortalAddr: strings.TrimSuffix(sb.HRPortalURL, "/api"),
	}
	for name, t := range pol.Targets {
		for from, to := range moves {
			if rest, ok := strings.CutPrefix(t.BaseURL, from); ok && (rest == "" || rest[0] == '/') {
				t.BaseURL = to + rest
				pol.Targets[name] = t
			}
		}
	}
}
