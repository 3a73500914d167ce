package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"testing"

	"github.com/jml-dev/jml/bench/harness"
	"github.com/jml-dev/jml/policy"
)

// runTB lets the peers' test helpers (scimtest, oktatest, peertest) and the
// harness run outside `go test`: cleanups run when the scenario ends, and a
// fatal error aborts the scenario (recovered by the caller).
type runTB struct {
	testing.TB // nil: any method not overridden here panics
	name       string
	mu         sync.Mutex
	cleanups   []func()
}

type fatal struct{ msg string }

func (r *runTB) Helper()                   {}
func (r *runTB) Name() string              { return r.name }
func (r *runTB) Logf(f string, a ...any)   { log.Printf(r.name+": "+f, a...) }
func (r *runTB) Errorf(f string, a ...any) { log.Printf(r.name+": ERROR "+f, a...) }
func (r *runTB) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (r *runTB) Fatal(a ...any)            { panic(fatal{fmt.Sprint(a...)}) }
func (r *runTB) Failed() bool              { return false }
func (r *runTB) Skip(a ...any)             { panic(fatal{"skipped: " + fmt.Sprint(a...)}) }
func (r *runTB) Skipf(f string, a ...any)  { panic(fatal{"skipped: " + fmt.Sprintf(f, a...)}) }

func (r *runTB) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runTB) TempDir() string {
	dir, err := os.MkdirTemp("", "jml-bench-")
	if err != nil {
		r.Fatalf("temp dir: %v", err)
	}
	r.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// close runs the cleanups, last registered first.
func (r *runTB) close() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// scenario runs fn with a fresh runTB and turns a fatal error into a row
// note instead of ending the whole benchmark.
func scenario(name string, fn func(tb *runTB) row) (r row) {
	tb := &runTB{name: name}
	defer tb.close()
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(fatal)
			if !ok {
				panic(v)
			}
			r = row{Scenario: name, Note: "error: " + f.msg}
		}
	}()
	log.Printf("running %s", name)
	return fn(tb)
}

func mustPolicy(tb *runTB, yaml string) *policy.Policy {
	p, err := harness.LoadPolicy(tb.TempDir(), yaml)
	if err != nil {
		tb.Fatalf("policy: %v", err)
	}
	return p
}
