package main

import (
	"context"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/sources"
)

// startSources registers the source poll activity on w and, in the
// background, starts a poller for each of the policy's sources.
func startSources(ctx context.Context, w worker.Worker, c client.Client, pol *policy.Policy, dc converter.DataConverter,
	getenv func(string) string, dev, audited bool, log *zap.Logger) {
	sources.Register(w, sources.New(sources.Config{
		Policy: pol, Client: c, Getenv: getenv, AllowInsecure: dev, Logger: log, Audit: audited,
		Directory: activities.TemporalDirectory{Client: c, DataConverter: dc},
	}))
	if len(pol.Sources) == 0 {
		return
	}
	go func() {
		if err := sources.EnsurePollers(ctx, c, pol); err != nil && ctx.Err() == nil {
			log.Error("source pollers not started", zap.Error(err))
		}
	}()
}
