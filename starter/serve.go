package main

import (
	"context"
	"fmt"
	"io"
)

// runServe is not implemented yet.
func runServe(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
