// Package logging builds jml's zap loggers. Every logger it returns passes
// its fields through a filter that prints secret-like fields as ••••, so a
// password, token or Authorization header logged by mistake never reaches
// the output.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a production JSON logger at info level, or with dev a
// human-readable console logger at debug level. Both redact secret fields.
func New(dev bool) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if dev {
		cfg = zap.NewDevelopmentConfig()
	}
	l, err := cfg.Build(Redact())
	if err != nil {
		return nil, fmt.Errorf("logging: build logger: %w", err)
	}
	return l, nil
}

// Redact is the zap option that installs the secret filter on a logger
// built elsewhere (zap.New(core, logging.Redact())).
func Redact() zap.Option {
	return zap.WrapCore(func(c zapcore.Core) zapcore.Core { return redactCore{c} })
}
