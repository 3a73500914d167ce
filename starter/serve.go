package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/policy"
)

// runServe runs the HTTP intake and, when --codec-addr is set, the codec
// endpoint the Temporal Web UI decodes payloads with (/codec/encode,
// /codec/decode) on its own listener, until ctx ends (SIGINT/SIGTERM), then
// drains in-flight requests. Outside --dev it refuses to start without
// payload encryption keys (JML_CODEC_KEYS): events would otherwise reach
// Temporal history in clear text; nor does it serve the codec endpoint
// without JML_CODEC_TOKEN or an OIDC issuer's JWKS: anyone who can reach it
// can decrypt any payload.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("JML_INTAKE_ADDR", ":8080"), "listen address (env JML_INTAKE_ADDR)")
	policyPath := fs.String("policy", os.Getenv("JML_POLICY"), "policy file: its required_attributes are enforced (env JML_POLICY)")
	certFile := fs.String("tls-cert", os.Getenv("JML_INTAKE_TLS_CERT"), "serve HTTPS with this certificate (env JML_INTAKE_TLS_CERT)")
	keyFile := fs.String("tls-key", os.Getenv("JML_INTAKE_TLS_KEY"), "and this key (env JML_INTAKE_TLS_KEY)")
	codecAddr := fs.String("codec-addr", os.Getenv("JML_CODEC_ADDR"), "serve the codec endpoint (/codec) on this address, apart from the intake; empty: not served (env JML_CODEC_ADDR)")
	noAuth := fs.Bool("insecure-no-auth", false, "accept unsigned events (local testing only)")
	dev := fs.Bool("dev", false, "development: human-readable debug logs, and JML_CODEC_KEYS may be unset (events then reach history in clear text)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger, err := logging.New(*dev)
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: %v\n", err)
		return 1
	}
	defer func() { _ = logger.Sync() }()

	cfg := intake.Config{
		HMACSecret:           os.Getenv("JML_INTAKE_HMAC_SECRET"),
		BearerToken:          os.Getenv("JML_INTAKE_TOKEN"),
		AllowUnauthenticated: *noAuth,
		Logger:               logger,
	}
	if cfg.HMACSecret == "" && cfg.BearerToken == "" && !*noAuth {
		fmt.Fprintln(stderr, "starter serve: set JML_INTAKE_HMAC_SECRET (signed requests) and/or JML_INTAKE_TOKEN (bearer token), or pass --insecure-no-auth for local testing")
		return 2
	}
	// The worker refuses to run without keys; so does the intake, which
	// writes every event into history (and could not read the worker's
	// encrypted results back).
	pc, err := codec.FromEnv(os.Getenv, *dev, logger)
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: %v\n", err)
		return 2
	}
	codecOpts := codec.HandlerOptions{BearerToken: os.Getenv("JML_CODEC_TOKEN")}
	if *codecAddr != "" {
		if jwks, iss := os.Getenv("JML_CODEC_JWKS_URL"), os.Getenv("JML_CODEC_OIDC_ISSUER"); jwks != "" || iss != "" {
			if jwks == "" || iss == "" {
				fmt.Fprintln(stderr, "starter serve: set both JML_CODEC_JWKS_URL and JML_CODEC_OIDC_ISSUER to accept the Web UI's OIDC tokens on the codec endpoint")
				return 2
			}
			codecOpts.VerifyToken = codec.JWKSVerifier(ctx, jwks, iss, os.Getenv("JML_CODEC_OIDC_AUDIENCE"))
		}
		if codecOpts.BearerToken == "" && codecOpts.VerifyToken == nil && !*dev {
			fmt.Fprintln(stderr, "starter serve: the codec endpoint (JML_CODEC_ADDR) decrypts any payload for whoever reaches it: set JML_CODEC_TOKEN (callers send Authorization: Bearer <token>) and/or JML_CODEC_JWKS_URL with JML_CODEC_OIDC_ISSUER (the Web UI's OIDC token)")
			return 2
		}
		if codecOpts.AllowOrigins, err = codec.ParseOrigins(os.Getenv("JML_CODEC_CORS_ORIGINS")); err != nil {
			fmt.Fprintf(stderr, "starter serve: JML_CODEC_CORS_ORIGINS: %v\n", err)
			return 2
		}
	}
	if *policyPath != "" {
		if cfg.Policy, err = policy.Load(*policyPath); err != nil {
			fmt.Fprintf(stderr, "starter serve: %v\n", err)
			return 2
		}
	}
	// A lazy client: the intake starts even when Temporal is down, answers
	// 503 (and /readyz fails) until it is back.
	opts, err := temporalenv.Options(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: %v\n", err)
		return 2
	}
	opts.Logger = logging.Temporal(logger)
	c, err := client.NewLazyClient(opts)
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: temporal client: %v\n", err)
		return 1
	}
	defer c.Close()
	cfg.Client, cfg.DataConverter = c, opts.DataConverter
	// Approval links (GET/POST /v1/approvals) are checked with the key the
	// workers sign them with; it stays in this process's memory.
	if v := os.Getenv(approval.KeyEnv); v != "" {
		if cfg.ApprovalKey, err = approval.Key(v); err != nil {
			fmt.Fprintf(stderr, "starter serve: %v\n", err)
			return 2
		}
	} else if cfg.Policy != nil && cfg.Policy.Approvals.LinkURL != "" {
		logger.Warn("approvals.link_url is set but " + approval.KeyEnv + " is not: approval links are refused")
	}
	// The intake starts identity workflows with JmlEmployeeId: register
	// jml's search attributes, or stop with the commands that do. Temporal
	// down is no reason to stop (the intake answers 503 until it is back):
	// the check then gives up after a few seconds with a warning.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = temporalenv.CheckSearchAttributes(cctx, c.OperatorService(), opts.Namespace, logger)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: %v\n", err)
		return 2
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "starter serve: %v\n", err)
		return 1
	}
	srv := newServer(intake.New(cfg))
	scheme := "http"
	if *certFile != "" {
		scheme = "https"
	}
	logger.Info("intake listening", zap.String("url", scheme+"://"+ln.Addr().String()+"/v1/events"),
		zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.Bool("hmac", cfg.HMACSecret != ""), zap.Bool("bearer", cfg.BearerToken != ""))
	fmt.Fprintf(stdout, "intake listening on %s://%s\n", scheme, ln.Addr())

	errc := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener) {
		if *certFile != "" {
			errc <- srv.ServeTLS(ln, *certFile, *keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}
	servers := []*http.Server{srv}
	if *codecAddr != "" {
		cln, err := net.Listen("tcp", *codecAddr)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "starter serve: codec address: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/codec/", codec.Handler(pc, codecOpts))
		csrv := newServer(mux)
		servers = append(servers, csrv)
		logger.Info("codec endpoint listening", zap.String("url", scheme+"://"+cln.Addr().String()+"/codec"),
			zap.Strings("cors_origins", codecOpts.AllowOrigins), zap.Bool("bearer", codecOpts.BearerToken != ""),
			zap.Bool("oidc", codecOpts.VerifyToken != nil))
		if len(codecOpts.AllowOrigins) == 0 {
			logger.Warn("JML_CODEC_CORS_ORIGINS is not set: the Web UI cannot call the codec endpoint from a browser (the CLI can)")
		}
		fmt.Fprintf(stdout, "codec endpoint on %s://%s/codec\n", scheme, cln.Addr())
		go serve(csrv, cln)
	}
	go serve(srv, ln)
	code := 0
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "starter serve: %v\n", err)
			code = 1
		}
	case <-ctx.Done():
		logger.Info("shutting down: draining in-flight requests")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			fmt.Fprintf(stderr, "starter serve: shutdown: %v\n", err)
			code = 1
		}
	}
	return code
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// envOr is the value of the environment variable key, or def.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
