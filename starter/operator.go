package main

import (
	"context"
	"fmt"
	"io"
)

// runStatus is not implemented yet.
func runStatus(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}

// runList is not implemented yet.
func runList(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}

// runRetry is not implemented yet.
func runRetry(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}

// runSkip is not implemented yet.
func runSkip(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}

// runAbort is not implemented yet.
func runAbort(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}

// runRelease is not implemented yet.
func runRelease(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
