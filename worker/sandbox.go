package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
	addr    string // --sandbox-addr
	hrAddr  string // --hr-portal-addr
	// observe sees every password the HR portal receives. Only tests set
	// it, to scan workflow histories for that exact value.
	observe func(secret.Secret)
}

func (s *sandboxConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.BoolVar(&s.enabled, "sandbox", false, "start the sandbox directory and HR portal sink without --dev (staging)")
	fs.StringVar(&s.addr, "sandbox-addr", envOr(getenv, "JML_SANDBOX_ADDR", defaultSandboxAddr), "sandbox SCIM directory address")
	fs.StringVar(&s.hrAddr, "hr-portal-addr", envOr(getenv, "JML_HR_PORTAL_ADDR", defaultHRPortalAddr), "sandbox HR portal (HTTPS) address")
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
	sb, err := sandbox.Start(sandbox.Config{
		Dir: dir, SCIMAddr: cfg.sandbox.addr, HRPortalAddr: cfg.sandbox.hrAddr,
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
	fmt.Fprintf(stdout, "Sandbox SCIM:      %s  (%s)\n", sb.SCIMURL, tokenNote)
	certNote := "self-signed, trusted by this worker only"
	if dir != "" {
		certNote += "; certificate " + filepath.Join(dir, sandbox.CertFile)
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
