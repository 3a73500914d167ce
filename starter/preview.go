package main

import (
	"context"
	"fmt"
	"io"
)

// runPreview is not implemented yet.
func runPreview(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
