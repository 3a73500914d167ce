// Package temporalenv builds the one Temporal client of a jml process from
// the environment, the same way for the worker and the starter:
//
//	TEMPORAL_ADDRESS          host:port (default 127.0.0.1:7233)
//	TEMPORAL_NAMESPACE        namespace (default "default")
//	TEMPORAL_API_KEY          API key (Temporal Cloud); implies TLS
//	TEMPORAL_TLS_CERT/_KEY    client certificate and key files (mTLS)
//	TEMPORAL_TLS_CA           CA bundle file to verify the server
//	TEMPORAL_TLS_SERVER_NAME  server name to verify, when it differs from the address
package temporalenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Defaults for a local dev server.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Options reads the client options from getenv (os.Getenv in production).
// It reads certificate files but does not connect.
func Options(getenv func(string) string) (client.Options, error) {
	o := client.Options{
		HostPort:  or(getenv("TEMPORAL_ADDRESS"), DefaultAddress),
		Namespace: or(getenv("TEMPORAL_NAMESPACE"), DefaultNamespace),
	}
	if key := getenv("TEMPORAL_API_KEY"); key != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	cert, key, ca, name := getenv("TEMPORAL_TLS_CERT"), getenv("TEMPORAL_TLS_KEY"), getenv("TEMPORAL_TLS_CA"), getenv("TEMPORAL_TLS_SERVER_NAME")
	if cert == "" && key == "" && ca == "" && name == "" {
		return o, nil
	}
	tc := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
	switch {
	case cert != "" && key != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return client.Options{}, fmt.Errorf("temporalenv: TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	case cert != "" || key != "":
		return client.Options{}, errors.New("temporalenv: TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return client.Options{}, fmt.Errorf("temporalenv: TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return client.Options{}, fmt.Errorf("temporalenv: TEMPORAL_TLS_CA: no PEM certificate in %s", ca)
		}
		tc.RootCAs = pool
	}
	o.ConnectionOptions.TLS = tc
	return o, nil
}

// Dial connects to Temporal with Options(getenv), logging through logger
// (nil: no SDK logs).
func Dial(ctx context.Context, getenv func(string) string, logger *zap.Logger) (client.Client, error) {
	o, err := Options(getenv)
	if err != nil {
		return nil, err
	}
	o.Logger = ZapLogger(logger)
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("temporalenv: connect to %s (namespace %s): %w", o.HostPort, o.Namespace, err)
	}
	return c, nil
}

// ZapLogger adapts zap to the Temporal SDK logger interface. nil gives a
// logger that drops everything.
func ZapLogger(l *zap.Logger) log.Logger {
	if l == nil {
		l = zap.NewNop()
	}
	return zapLogger{l.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

type zapLogger struct{ s *zap.SugaredLogger }

func (z zapLogger) Debug(msg string, kv ...any) { z.s.Debugw(msg, kv...) }
func (z zapLogger) Info(msg string, kv ...any)  { z.s.Infow(msg, kv...) }
func (z zapLogger) Warn(msg string, kv ...any)  { z.s.Warnw(msg, kv...) }
func (z zapLogger) Error(msg string, kv ...any) { z.s.Errorw(msg, kv...) }

// With makes the adapter a log.WithLogger, so the SDK's per-workflow fields
// are attached once.
func (z zapLogger) With(kv ...any) log.Logger { return zapLogger{z.s.With(kv...)} }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
