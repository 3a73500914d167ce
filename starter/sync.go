package main

import (
	"context"
	"fmt"
	"io"
)

// runSync is not implemented yet.
func runSync(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "starter: not implemented yet")
	return 1
}
