package main

import (
	"context"
	"os"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/internal/temporalenv"
)

// dial connects to Temporal as configured by TEMPORAL_* (and JML_CODEC_KEYS)
// in the environment.
func dial(ctx context.Context, logger *zap.Logger) (client.Client, error) {
	return temporalenv.Dial(ctx, os.Getenv, logger)
}
