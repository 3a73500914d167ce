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

// New returns a production JSON logger, or with dev a human-readable
// console logger; both at info level, and both redact secret fields. The dev
// logger prints no stack traces: a warning is a line, not a screenful.
func New(dev bool) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	if dev {
		cfg = zap.NewDevelopmentConfig()
		cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
		cfg.DisableStacktrace = true
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
