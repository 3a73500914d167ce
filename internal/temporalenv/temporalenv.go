// Package temporalenv builds the one Temporal client of a jml process from
// the environment, the same way for the worker and the starter:
//
//	TEMPORAL_ADDRESS          host:port (default 127.0.0.1:7233)
//	TEMPORAL_NAMESPACE        namespace (default "default")
//	TEMPORAL_API_KEY          API key (Temporal Cloud); implies TLS
//	TEMPORAL_TLS_CERT/_KEY    client certificate and key files (mTLS)
//	TEMPORAL_TLS_CA           CA bundle file to verify the server
//	TEMPORAL_TLS_SERVER_NAME  server name to verify, when it differs from the address
//	JML_CODEC_KEYS            payload encryption keys (package codec); when set,
//	                          payloads and failure messages are encrypted
package temporalenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/logging"
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
	keys, active, err := codec.KeysFromEnv(getenv)
	if err != nil {
		return client.Options{}, err
	}
	if len(keys) > 0 {
		c, err := codec.New(keys, active)
		if err != nil {
			return client.Options{}, err
		}
		codec.Apply(&o, c)
	}
	if key := getenv("TEMPORAL_API_KEY"); key != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	cert, key, ca, name := getenv("TEMPORAL_TLS_CERT"), getenv("TEMPORAL_TLS_KEY"), getenv("TEMPORAL_TLS_CA"), getenv("TEMPORAL_TLS_SERVER_NAME")
	if cert == "" && key == "" && ca == "" && name == "" {
		if o.Credentials != nil {
			// An API key (Temporal Cloud) only ever travels over TLS.
			o.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
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
	if logger == nil {
		logger = zap.NewNop()
	}
	if o.DataConverter == nil {
		logger.Warn("payload encryption is off: " + codec.EnvKeys + " is not set, HR events reach Temporal history in clear text")
	}
	o.Logger = logging.Temporal(logger)
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("temporalenv: connect to %s (namespace %s): %w", o.HostPort, o.Namespace, err)
	}
	return c, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
