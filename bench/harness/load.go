package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/workflows"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Departments people are spread over (one group each: dept-<name>).
var Departments = []string{"eng", "sales", "ops"}

// Person is employee i of a batch; prefix keeps batches apart.
func Person(prefix string, i int) map[string]string {
	id := fmt.Sprintf("%s%05d", prefix, i)
	return map[string]string{
		"employee_id": id,
		"first_name":  fmt.Sprintf("First%d", i),
		"last_name":   "Load" + strings.ToLower(prefix),
		"email":       strings.ToLower(id) + "@acme.test",
		"department":  Departments[i%len(Departments)],
	}
}

// Hire is person i's hire event.
func Hire(prefix string, i int) hr.Event {
	p := Person(prefix, i)
	return hr.Event{EventID: p["employee_id"] + "-hire", Type: hr.Hire, Employee: p, Source: "bench"}
}

// JoinerID is the lifecycle workflow ID of a hire event.
func JoinerID(ev hr.Event) string {
	return contract.LifecycleWorkflowID("joiner", ev.EmployeeID(), ev.EventID)
}

// DefaultDeliveryTimeout bounds the delivery of one event when the
// caller's context has no deadline.
const DefaultDeliveryTimeout = 3 * time.Minute

// Deliver hands one event to its identity workflow with update-with-start
// (intake.Submit), retrying transient errors (the server may be
// restarting, a worker may have been killed) until ctx ends or, when ctx
// has no deadline, DefaultDeliveryTimeout passes. It stops at once on a
// permanent refusal (the workflow rejected the event, or a conflicting
// resend): retrying would not help.
func Deliver(ctx context.Context, c client.Client, ev hr.Event) (workflows.EventAccepted, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDeliveryTimeout)
		defer cancel()
	}
	var last error
	for attempt := 1; ; attempt++ {
		acc, err := intake.Submit(ctx, c, ev)
		if err == nil {
			return acc, nil
		}
		var rej *intake.RejectedError
		var conflict *intake.ConflictError
		if errors.As(err, &rej) || errors.As(err, &conflict) {
			return acc, fmt.Errorf("event %s: permanent refusal: %w", ev.EventID, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return acc, fmt.Errorf("event %s: not delivered after %d attempts (%w): %w", ev.EventID, attempt, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SubmitAll delivers events with update-with-start, parallel workers at a
// time, and returns when each was handed to Temporal or given up on:
// transient errors are retried until ctx's deadline (DefaultDeliveryTimeout
// per event without one), a permanent refusal is not. The error lists the
// events not delivered; sent has the rest.
func (c *Cluster) SubmitAll(ctx context.Context, evs []hr.Event, parallel int) (map[string]time.Time, error) {
	sent := make(map[string]time.Time, len(evs))
	var mu sync.Mutex
	var errs []error
	work := make(chan hr.Event)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for ev := range work {
				at := time.Now()
				_, err := Deliver(ctx, c.Client, ev)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if _, ok := sent[ev.EventID]; !ok {
					sent[ev.EventID] = at
				}
				mu.Unlock()
			}
		})
	}
	for _, ev := range evs {
		work <- ev
	}
	close(work)
	wg.Wait()
	return sent, deliveryError(errs, len(evs))
}

// deliveryError summarises failed deliveries (nil: none).
func deliveryError(errs []error, total int) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d events not delivered: %w", len(errs), total, errors.Join(errs...))
}

// Count counts workflows matching a visibility query; -1 on error.
func (c *Cluster) Count(ctx context.Context, query string) int {
	r, err := c.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return -1
	}
	return int(r.Count)
}

// WaitCount polls until query matches at least n workflows and returns
// the last count. It gives up with an error when timeout passes or, so a
// regression costs seconds rather than the whole timeout, as soon as any
// run waits for an operator (JmlState = NeedsAttention): the error names
// the run, its failed step and the step's last error.
func (c *Cluster) WaitCount(ctx context.Context, query string, n int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	got := 0
	for {
		if v := c.Count(ctx, query); v >= 0 {
			got = v
		}
		if got >= n {
			return got, nil
		}
		if err := c.NeedsAttention(ctx); err != nil {
			return got, err
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%d of %d workflows after %s (%s); still running:%s", got, n, timeout, query, c.running(ctx))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// running describes up to 5 running workflows and what each waits on (its
// pending activities with their attempt and last failure), so a run that
// never ends says where it is.
func (c *Cluster) running(ctx context.Context) string {
	r, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'", PageSize: 5})
	if err != nil {
		return " (list: " + err.Error() + ")"
	}
	var b strings.Builder
	for _, e := range r.Executions {
		id := e.Execution.WorkflowId
		fmt.Fprintf(&b, "\n  %s (%s)", id, e.Type.GetName())
		d, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			fmt.Fprintf(&b, ": describe: %v", err)
			continue
		}
		for _, a := range d.PendingActivities {
			fmt.Fprintf(&b, "; pending %s attempt %d state %s last failure %q", a.ActivityType.GetName(), a.Attempt, a.State, a.LastFailure.GetMessage())
		}
		if len(d.PendingActivities) == 0 {
			b.WriteString("; no pending activity")
		}
	}
	return b.String()
}

// NeedsAttention returns an error describing the runs waiting for an
// operator, nil when there are none.
func (c *Cluster) NeedsAttention(ctx context.Context) error {
	q := fmt.Sprintf("%s = '%s'", contract.SAState, contract.StateNeedsAttention)
	r, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 3})
	if err != nil || len(r.Executions) == 0 {
		return nil
	}
	n := c.Count(ctx, q)
	var runs []string
	for _, e := range r.Executions {
		id := e.Execution.WorkflowId
		var step string
		if p := e.SearchAttributes.GetIndexedFields()[contract.SAFailedStep]; p != nil {
			_ = converter.GetDefaultDataConverter().FromPayload(p, &step)
		}
		lastErr := "(no step error)"
		if steps, err := c.Steps(ctx, id); err == nil {
			for _, s := range steps {
				if s.LastError != "" && (step == "" || s.Name == step) {
					lastErr = s.LastError
				}
			}
		}
		runs = append(runs, fmt.Sprintf("%s: %s=%q: %s", id, contract.SAFailedStep, step, lastErr))
	}
	return fmt.Errorf("%d run(s) in %s, e.g.\n  %s", n, contract.StateNeedsAttention, strings.Join(runs, "\n  "))
}

// Closed lists workflows of a type with their close times (zero while
// running) and statuses.
func (c *Cluster) Closed(ctx context.Context, workflowType string) (map[string]time.Time, map[string]enumspb.WorkflowExecutionStatus, error) {
	times := map[string]time.Time{}
	status := map[string]enumspb.WorkflowExecutionStatus{}
	var token []byte
	for {
		r, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", workflowType), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("list %s: %w", workflowType, err)
		}
		for _, e := range r.Executions {
			id := e.Execution.WorkflowId
			status[id] = e.Status
			if e.CloseTime != nil {
				times[id] = e.CloseTime.AsTime()
			}
		}
		if token = r.NextPageToken; len(token) == 0 {
			return times, status, nil
		}
	}
}

// HistoryLength is a workflow's event count (latest run).
func (c *Cluster) HistoryLength(ctx context.Context, id string) int {
	d, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0
	}
	return int(d.WorkflowExecutionInfo.HistoryLength)
}

// Steps is a lifecycle run's step table.
func (c *Cluster) Steps(ctx context.Context, id string) ([]workflows.StepInfo, error) {
	v, err := c.Client.QueryWorkflow(ctx, id, "", contract.QuerySteps)
	if err != nil {
		return nil, err
	}
	var steps []workflows.StepInfo
	return steps, v.Get(&steps)
}

// Scan reads every workflow's full history and description, decrypts every
// payload with the cluster's codec, adds the workers' logs, and counts the
// secrets in raw, JSON-escaped and base64 form.
func (c *Cluster) Scan(ctx context.Context, secrets []string) (workflowsSeen, found int, err error) {
	var blob strings.Builder
	var token []byte
	for {
		r, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			return 0, 0, fmt.Errorf("scan: list: %w", err)
		}
		for _, e := range r.Executions {
			workflowsSeen++
			it := c.Client.GetWorkflowHistory(ctx, e.Execution.WorkflowId, e.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return 0, 0, fmt.Errorf("scan: history of %s: %w", e.Execution.WorkflowId, err)
				}
				if err := c.plain(ev, &blob); err != nil {
					return 0, 0, err
				}
			}
			d, err := c.Client.DescribeWorkflowExecution(ctx, e.Execution.WorkflowId, e.Execution.RunId)
			if err != nil {
				return 0, 0, fmt.Errorf("scan: describe %s: %w", e.Execution.WorkflowId, err)
			}
			if err := c.plain(d, &blob); err != nil {
				return 0, 0, err
			}
		}
		if token = r.NextPageToken; len(token) == 0 {
			break
		}
	}
	blob.WriteString(c.Logs())
	all := blob.String()
	for _, s := range secrets {
		js, _ := json.Marshal(s)
		for _, form := range []string{s, strings.Trim(string(js), `"`), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s))} {
			found += strings.Count(all, form)
		}
	}
	return workflowsSeen, found, nil
}

// plain writes m's bytes and the decrypted data of every payload in it.
func (c *Cluster) plain(m proto.Message, out *strings.Builder) error {
	b, _ := proto.Marshal(m)
	out.Write(b)
	var walkErr error
	var walk func(protoreflect.Message)
	visit := func(v protoreflect.Value) {
		msg := v.Message()
		if p, ok := msg.Interface().(*commonpb.Payload); ok {
			dec, err := c.Codec.Decode([]*commonpb.Payload{p})
			if err != nil {
				walkErr = fmt.Errorf("scan: decode payload: %w", err)
				return
			}
			out.Write(dec[0].Data)
			return
		}
		walk(msg)
	}
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					visit(v.List().Get(i))
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { visit(mv); return true })
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				visit(v)
			}
			return walkErr == nil
		})
	}
	walk(m.ProtoReflect())
	return walkErr
}

// SCIMUser is a user as the peer stores it.
type SCIMUser struct {
	ID         string   `json:"id"`
	UserName   string   `json:"userName"`
	Active     bool     `json:"active"`
	Department string   `json:"-"`
	Groups     []string `json:"-"`
}

// SCIMState reads every user and group from a SCIM peer directly (not
// through any proxy), resolving group memberships.
func SCIMState(ctx context.Context, baseURL, token string) (users []SCIMUser, dupMembers int, err error) {
	type member struct {
		Value string `json:"value"`
	}
	type group struct {
		DisplayName string   `json:"displayName"`
		Members     []member `json:"members"`
	}
	type user struct {
		SCIMUser
		Enterprise struct {
			Department string `json:"department"`
		} `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`
	}
	var us []user
	var gs []group
	for _, res := range []struct {
		path string
		out  func(json.RawMessage) error
	}{
		{"/Users", func(r json.RawMessage) error {
			var p []user
			err := json.Unmarshal(r, &p)
			us = append(us, p...)
			return err
		}},
		{"/Groups", func(r json.RawMessage) error {
			var p []group
			err := json.Unmarshal(r, &p)
			gs = append(gs, p...)
			return err
		}},
	} {
		for start := 1; ; start += 500 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?startIndex=%d&count=500", baseURL, res.path, start), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, 0, fmt.Errorf("scim state: %w", err)
			}
			var page struct {
				TotalResults int             `json:"totalResults"`
				Resources    json.RawMessage `json:"Resources"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil {
				return nil, 0, fmt.Errorf("scim state: %s: %w", res.path, err)
			}
			if len(page.Resources) > 0 {
				if err := res.out(page.Resources); err != nil {
					return nil, 0, fmt.Errorf("scim state: %s: %w", res.path, err)
				}
			}
			if start+500 > page.TotalResults {
				break
			}
		}
	}
	groupsOf := map[string][]string{}
	for _, g := range gs {
		seen := map[string]bool{}
		for _, m := range g.Members {
			if seen[m.Value] {
				dupMembers++
			}
			seen[m.Value] = true
			groupsOf[m.Value] = append(groupsOf[m.Value], g.DisplayName)
		}
	}
	for _, u := range us {
		u.SCIMUser.Department = u.Enterprise.Department
		u.SCIMUser.Groups = groupsOf[u.ID]
		sort.Strings(u.SCIMUser.Groups)
		users = append(users, u.SCIMUser)
	}
	return users, dupMembers, nil
}

// Duplicates counts user names held by more than one account (case-
// insensitively) and names of want that have no account.
func Duplicates(users []SCIMUser, want []string) (dups, missing int) {
	n := map[string]int{}
	for _, u := range users {
		n[strings.ToLower(u.UserName)]++
	}
	for _, c := range n {
		if c > 1 {
			dups += c - 1
		}
	}
	for _, w := range want {
		if n[strings.ToLower(w)] == 0 {
			missing++
		}
	}
	return dups, missing
}

// Percentile of sorted-able durations (p in 0..100).
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
