// Command worker runs the jml Temporal worker.
//
//	go run ./worker --dev     embedded Temporal server + Web UI + intake + worker
//	go run ./worker           connect to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a bounded shutdown (--shutdown-grace);
		// a second one is an operator who will not wait.
		<-sig
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "worker: second signal: exiting now, in-flight steps are retried by another worker")
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
