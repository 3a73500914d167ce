package main

import (
	"fmt"
	"sync"
	"time"
)

// shutdownMargin is what the worker allows itself beyond --shutdown-grace to
// close its client and the dev server before it gives up on them.
const shutdownMargin = 5 * time.Second

// teardown is serve's stack of closers: run on an error path, or bounded in
// time on shutdown.
type teardown struct {
	mu  sync.Mutex
	fns []func()
}

func (t *teardown) add(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fns = append(t.fns, f)
}

// run calls the closers last first; each one once, whoever calls run.
func (t *teardown) run() {
	t.mu.Lock()
	fns := t.fns
	t.fns = nil
	t.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// within runs the closers and waits for them at most d: a closer stuck on a
// step that ignores its cancellation must not hold the process (and its
// ports) past what the operator allowed.
func (t *teardown) within(d time.Duration) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.run()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		return fmt.Errorf("shutdown not done after %s (--shutdown-grace plus %s): exiting; unfinished steps are retried by another worker", d, shutdownMargin)
	}
}

// parallel calls fs at once and waits for all of them: listeners and
// pollers stop together, and each worker's grace runs concurrently.
func parallel(fs []func()) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	wg.Wait()
}
