package main

import (
	"context"
	"fmt"
	"io"
)

// runHire is not implemented yet.
func runHire(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
