package main

import (
	"context"
	"fmt"
	"io"
)

// runSandbox is not implemented yet.
func runSandbox(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
