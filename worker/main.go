// Command worker runs the jml Temporal worker.
//
//	go run ./worker --dev     embedded Temporal server + Web UI + intake + worker
//	go run ./worker           connect to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
