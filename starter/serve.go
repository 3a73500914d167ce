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
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/policy"
)

// runServe runs the HTTP intake and, beside it, the codec endpoint the
// Temporal Web UI decodes payloads with (/codec/encode, /codec/decode) until
// ctx ends (SIGINT/SIGTERM), then drains in-flight requests. Outside --dev it
// refuses to start without payload encryption keys (JML_CODEC_KEYS): events
// would otherwise reach Temporal history in clear text.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("JML_INTAKE_ADDR", ":8080"), "listen address (env JML_INTAKE_ADDR)")
	policyPath := fs.String("policy", os.Getenv("JML_POLICY"), "policy file: its required_attributes are enforced (env JML_POLICY)")
	certFile := fs.String("tls-cert", os.Getenv("JML_INTAKE_TLS_CERT"), "serve HTTPS with this certificate (env JML_INTAKE_TLS_CERT)")
	keyFile := fs.String("tls-key", os.Getenv("JML_INTAKE_TLS_KEY"), "and this key (env JML_INTAKE_TLS_KEY)")
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
	cfg.Client = c
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
	mux := http.NewServeMux()
	mux.Handle("/", intake.New(cfg))
	origins := codecOrigins(os.Getenv("JML_CODEC_CORS_ORIGINS"))
	if pc != nil {
		mux.Handle("/codec/", codec.Handler(pc, codec.HandlerOptions{
			AllowOrigins: origins,
			BearerToken:  os.Getenv("JML_CODEC_TOKEN"),
		}))
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	scheme := "http"
	if *certFile != "" {
		scheme = "https"
	}
	logger.Info("intake listening", zap.String("url", scheme+"://"+ln.Addr().String()+"/v1/events"),
		zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.Bool("hmac", cfg.HMACSecret != ""), zap.Bool("bearer", cfg.BearerToken != ""))
	fmt.Fprintf(stdout, "intake listening on %s://%s\n", scheme, ln.Addr())
	if pc != nil {
		logger.Info("codec endpoint listening", zap.String("url", scheme+"://"+ln.Addr().String()+"/codec"),
			zap.Strings("cors_origins", origins), zap.Bool("bearer", os.Getenv("JML_CODEC_TOKEN") != ""))
		if len(origins) == 0 {
			logger.Warn("JML_CODEC_CORS_ORIGINS is not set: the Web UI cannot call the codec endpoint from a browser (the CLI can)")
		}
		fmt.Fprintf(stdout, "codec endpoint on %s://%s/codec\n", scheme, ln.Addr())
	}

	errc := make(chan error, 1)
	go func() {
		if *certFile != "" {
			errc <- srv.ServeTLS(ln, *certFile, *keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "starter serve: %v\n", err)
			return 1
		}
	case <-ctx.Done():
		logger.Info("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			fmt.Fprintf(stderr, "starter serve: shutdown: %v\n", err)
			return 1
		}
	}
	return 0
}

// codecOrigins splits JML_CODEC_CORS_ORIGINS ("https://ui.example,
// http://127.0.0.1:8233"; "*" allows any) into the origins allowed to call
// the codec endpoint from a browser.
func codecOrigins(v string) []string {
	var out []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// envOr is the value of the environment variable key, or def.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
