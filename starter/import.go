package main

import (
	"context"
	"fmt"
	"io"
)

// runImport is not implemented yet.
func runImport(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
