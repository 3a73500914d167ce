package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/codec"
)

// The minimal workflow is the yardstick of the benchmark: the smallest
// workflow that does a joiner's work, one workflow with four sequential
// no-op activities (plan, sync, groups, hand-off). It lives here, not in
// workflows/: it is not part of jml, only what the engine can do for the
// same amount of work on the same server.
const (
	MinimalWorkflowName = "BenchMinimal"
	MinimalActivityName = "BenchNoop"
	MinimalTaskQueue    = "jml-bench-minimal"
	// MinimalSteps is the number of sequential activities per workflow.
	MinimalSteps = 4
)

// MinimalWorkflow runs MinimalSteps no-op activities one after the other.
func MinimalWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for i := range MinimalSteps {
		if err := workflow.ExecuteActivity(ctx, MinimalActivityName, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// MinimalActivity does nothing.
func MinimalActivity(context.Context, int) error { return nil }

// InProcessMinimal runs a worker for the minimal workflow in this process
// (the same client set-up as InProcess: payload codec on).
func (c *Cluster) InProcessMinimal() (stop func()) {
	c.TB.Helper()
	o := client.Options{Logger: sdklog.NewStructuredLogger(discardLogger())}
	codec.Apply(&o, c.Codec)
	wc, err := c.Dial(o)
	if err != nil {
		c.TB.Fatalf("harness: dial: %v", err)
	}
	w := worker.New(wc, MinimalTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(MinimalWorkflow, workflow.RegisterOptions{Name: MinimalWorkflowName})
	w.RegisterActivityWithOptions(MinimalActivity, activity.RegisterOptions{Name: MinimalActivityName})
	if err := w.Start(); err != nil {
		c.TB.Fatalf("harness: start minimal worker: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { w.Stop(); wc.Close() }) }
	c.TB.Cleanup(stop)
	return stop
}

// MinimalID is the workflow ID of minimal run i.
func MinimalID(i int) string { return fmt.Sprintf("bench-minimal/%05d", i) }

// StartMinimal starts n minimal workflows, parallel starts at a time (the
// same concurrency as SubmitAll's HR event deliveries), and returns when
// every start was accepted or ctx ended.
func (c *Cluster) StartMinimal(ctx context.Context, n, parallel int) error {
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range parallel {
		wg.Go(func() {
			for i := range work {
				_, err := c.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID: MinimalID(i), TaskQueue: MinimalTaskQueue}, MinimalWorkflowName)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("start %s: %w", MinimalID(i), err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return firstErr
}
