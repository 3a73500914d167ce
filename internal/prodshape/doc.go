// Package prodshape holds the production-shape test: Temporal on
// PostgreSQL, the real worker binary without --dev (three of them) and
// `starter serve`, as separate processes on one machine. See
// prodshape_test.go and docs/operations.md.
package prodshape
