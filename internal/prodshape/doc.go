// Package prodshape holds the production-shape test: Temporal on
// PostgreSQL, the real worker binary without --dev (three of them) and
// `starter serve`, as separate processes on one machine. See
// prodshape_test.go and docs/operations.md. Its PostgreSQL cluster and
// Temporal server (StartPostgres, SetupSchemas, StartTemporal,
// SetupNamespace) also serve the benchmark's PostgreSQL rows
// (go run ./bench --db postgres).
package prodshape
