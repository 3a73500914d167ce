package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Source poller values (its names are in package contract).
const (
	// SourceEventKind is the poller's JmlEvent search attribute.
	SourceEventKind = "source"
	// SourceRemovedError is the SourcePoll error type of a source no
	// longer in the policy: its poller ends.
	SourceRemovedError = "SourceRemoved"
)

// SourcePollerInput starts a poller (Source only) and carries its state
// across continue-as-new.
type SourcePollerInput struct {
	Source string `json:"source"`
	// Epoch is the first run's ID: event IDs derive from it, so a poller
	// started again from nothing never reuses an event ID with new content.
	Epoch      string `json:"epoch,omitempty"`
	Generation int    `json:"generation,omitempty"` // polls applied
	// Cursor (okta: the newest lastUpdated applied) and Snapshot (every
	// person known: employee ID → attribute digest, compressed; never the
	// attributes themselves) are what the next poll diffs against.
	Cursor   string `json:"cursor,omitempty"`
	Snapshot []byte `json:"snapshot,omitempty"`
	// Release and Discard are operator decisions on a Blocked poll, by the
	// digest of its terminations.
	Release string `json:"release,omitempty"`
	Discard string `json:"discard,omitempty"`
	PollNow bool   `json:"poll_now,omitempty"`
	// FullNow: the next poll reads the whole source (PollNow with Full).
	FullNow bool `json:"full_now,omitempty"`
	// PollAt is when the poll of the next generation was first tried: its
	// events' effective time, the same in every retry (an event ID always
	// carries the same content).
	PollAt time.Time `json:"poll_at,omitzero"`
	// LastFull is when the source was last read whole (okta: deletions
	// are found by a full read).
	LastFull time.Time `json:"last_full,omitzero"`
	// Every is the poll interval the last poll reported (the policy's).
	Every  time.Duration `json:"every,omitempty"`
	Status SourceStatus  `json:"status"`
}

// SourceStatus is what `starter sources` shows of a poller.
type SourceStatus struct {
	Source      string    `json:"source"`
	State       string    `json:"state"` // Idle | Running | Retrying | Blocked
	LastPoll    time.Time `json:"last_poll,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	NextPoll    time.Time `json:"next_poll,omitzero"`
	Cursor      string    `json:"cursor,omitempty"`
	People      int       `json:"people"`
	Polls       int       `json:"polls"`
	// Emitted counts the events delivered, by type (hire, change, …),
	// since the poller started.
	Emitted map[string]int `json:"emitted,omitempty"`
	// LastError is the last failed poll's error; Failures counts the
	// failures in a row (0 once a poll succeeds).
	LastError string `json:"last_error,omitempty"`
	Failures  int    `json:"failures,omitempty"`
	// Problems are the last poll's bad rows (skipped) and held changes.
	Problems []string     `json:"problems,omitempty"`
	Blocked  *SourceBlock `json:"blocked,omitempty"`
}

// SourceBlock is a poll held for an operator: it would terminate more
// than the source's share of the people known.
type SourceBlock struct {
	Digest     string    `json:"digest"` // of the terminations; names the poll in decisions
	Terminate  int       `json:"terminate"`
	Known      int       `json:"known"`
	Percent    float64   `json:"percent"`
	Limit      float64   `json:"limit"`
	Hire       int       `json:"hire"`
	Change     int       `json:"change"`
	At         time.Time `json:"at"`
	Terminated []string  `json:"terminated,omitempty"` // employee IDs (the first 20)
}

// SourceDecision is the ReleaseSnapshot / DiscardSnapshot argument.
type SourceDecision struct {
	// Digest, when set, must name the Blocked poll (SourceBlock.Digest):
	// a decision never applies to a poll the operator has not seen.
	Digest string `json:"digest,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SourcePollRequest is the PollNow argument.
type SourcePollRequest struct {
	// Full reads the whole source, not only the changes since the cursor
	// (okta): people gone from it are terminated.
	Full bool `json:"full,omitempty"`
}

// SourcePollInput is the SourcePoll activity's argument.
type SourcePollInput struct {
	Source     string    `json:"source"`
	Epoch      string    `json:"epoch"`
	Generation int       `json:"generation"` // of this poll (event IDs)
	At         time.Time `json:"at"`         // effective time of its events
	Cursor     string    `json:"cursor,omitempty"`
	Snapshot   []byte    `json:"snapshot,omitempty"`
	Release    string    `json:"release,omitempty"`
	Discard    string    `json:"discard,omitempty"`
	Full       bool      `json:"full,omitempty"`
	LastFull   time.Time `json:"last_full,omitzero"`
}

// SourceLabel names the source in the worker's metrics
// (jml_source_polls_total).
func (in SourcePollInput) SourceLabel() string { return in.Source }

// SourcePollResult is what a poll did. Blocked or Discarded: nothing was
// delivered and the state stays as it was. HeldBack: the terminations an
// operator discarded were left out, the rest delivered.
type SourcePollResult struct {
	Every     time.Duration  `json:"every"` // the source's poll interval
	Blocked   *SourceBlock   `json:"blocked,omitempty"`
	Discarded bool           `json:"discarded,omitempty"` // (older workers: the whole poll)
	HeldBack  int            `json:"held_back,omitempty"`
	Cursor    string         `json:"cursor,omitempty"`
	Snapshot  []byte         `json:"snapshot,omitempty"`
	People    int            `json:"people"`
	Emitted   map[string]int `json:"emitted,omitempty"`
	Problems  []string       `json:"problems,omitempty"`
	// Audit: the worker that polled has an audit store; the poller
	// records what the poll did.
	Audit bool `json:"audit,omitempty"`
	// More: the source has changes this poll did not deliver; the next
	// poll follows at once.
	More bool `json:"more,omitempty"`
	// FullAt is set when the poll read the whole source.
	FullAt time.Time `json:"full_at,omitzero"`
}

// Poll failures retry after pollBackoffMin, doubling up to the interval.
const pollBackoffMin = 10 * time.Second

// SourcePoller is a source's durable poller (ID source/<name>). Design:
//
//   - Every interval (or at once on PollNow) one SourcePoll activity reads
//     the whole change set, diffs it against Cursor/Snapshot and only then
//     delivers the events (intake.Submit, deterministic event IDs), so a
//     read that fails emits nothing. A delivery cut short is retried with
//     the same IDs: identities drop the duplicates.
//   - A failed poll shows its error in the current details, sets JmlState
//     Retrying and is tried again with backoff; the state is unchanged.
//   - A poll that would terminate too many people is not applied: the
//     poller waits Blocked for ReleaseSnapshot or DiscardSnapshot.
//   - Cursor and snapshot live in this workflow's input: it continues as
//     new after every applied poll, so a history holds one snapshot, and
//     a worker restart resumes from the last applied poll.
func SourcePoller(ctx workflow.Context, in SourcePollerInput) error {
	if in.Epoch == "" {
		in.Epoch = workflow.GetInfo(ctx).WorkflowExecution.RunID
	}
	in.Status.Source = in.Source
	polled := 0 // polls finished in this run (handlers wait for the next)
	trail := runTrail{version: "source-audit", kind: "source"}
	err := workflow.SetQueryHandler(ctx, contract.QuerySourceStatus, func() (SourceStatus, error) { return in.Status, nil })
	if err != nil {
		return err
	}
	waitPoll := func(ctx workflow.Context) (SourceStatus, error) {
		n := polled
		err := workflow.Await(ctx, func() bool { return polled > n })
		return in.Status, err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateSourcePoll, func(ctx workflow.Context, req SourcePollRequest) (SourceStatus, error) {
		in.PollNow, in.FullNow = true, in.FullNow || req.Full
		return waitPoll(ctx)
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req SourcePollRequest) error {
		if b := in.Status.Blocked; b != nil {
			return fmt.Errorf("the source is blocked (poll %s): release or discard it first", b.Digest)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	decide := func(ctx workflow.Context, d SourceDecision) error {
		b := in.Status.Blocked
		switch {
		case b == nil:
			return errors.New("the source is not blocked: nothing to release or discard")
		case d.Digest != "" && d.Digest != b.Digest:
			return fmt.Errorf("digest %s does not name the blocked poll (%s)", d.Digest, b.Digest)
		}
		return nil
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateSourceRelease, func(ctx workflow.Context, d SourceDecision) (SourceStatus, error) {
		trail.emit(ctx, in.Source, audit.Record{Action: audit.OperatorRelease, Detail: "poll " + in.Status.Blocked.Digest, Actor: "operator", Reason: d.Reason})
		in.Release, in.Status.Blocked, in.PollNow = in.Status.Blocked.Digest, nil, true
		workflow.GetLogger(ctx).Info("blocked poll released", "reason", d.Reason)
		return waitPoll(ctx)
	}, workflow.UpdateHandlerOptions{Validator: decide})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateSourceDiscard, func(ctx workflow.Context, d SourceDecision) (SourceStatus, error) {
		trail.emit(ctx, in.Source, audit.Record{Action: "operator.discard", Detail: "poll " + in.Status.Blocked.Digest, Actor: "operator", Reason: d.Reason})
		in.Discard, in.Status.Blocked, in.PollAt = in.Status.Blocked.Digest, nil, time.Time{}
		in.Status.Problems = nil
		workflow.GetLogger(ctx).Info("blocked poll discarded", "reason", d.Reason)
		setSourceState(ctx, &in.Status, contract.StateIdle)
		return in.Status, nil
	}, workflow.UpdateHandlerOptions{Validator: decide})
	if err != nil {
		return err
	}

	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID:          "source.poll",
		Summary:             "poll source " + in.Source,
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		// The poller retries itself, so the error shows between attempts.
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	for {
		// A source failing for days, or blocked, still keeps its history
		// short.
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() && workflow.AllHandlersFinished(ctx) {
			trail.wait(ctx)
			return workflow.NewContinueAsNewError(ctx, contract.SourcePollerWorkflowName, in)
		}
		if in.Status.Blocked != nil {
			setSourceState(ctx, &in.Status, contract.StateBlocked)
			if err := workflow.Await(ctx, func() bool { return in.Status.Blocked == nil }); err != nil {
				return err
			}
			continue
		}
		if wait := in.Status.NextPoll.Sub(workflow.Now(ctx)); !in.PollNow && wait > 0 {
			if in.Status.State != contract.StateRetrying {
				setSourceState(ctx, &in.Status, contract.StateIdle)
			}
			_, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "next poll"},
			}, func() bool { return in.PollNow || in.Status.Blocked != nil })
			if err != nil {
				return err
			}
			if in.Status.Blocked != nil {
				continue
			}
		}
		in.PollNow = false
		if in.Status.State != contract.StateRetrying {
			setSourceState(ctx, &in.Status, contract.StateRunning)
		}
		if in.PollAt.IsZero() {
			in.PollAt = workflow.Now(ctx)
		}
		req := SourcePollInput{
			Source: in.Source, Epoch: in.Epoch, Generation: in.Generation + 1, At: in.PollAt,
			Cursor: in.Cursor, Snapshot: in.Snapshot, Release: in.Release, Discard: in.Discard,
			Full: in.FullNow, LastFull: in.LastFull,
		}
		var res SourcePollResult
		err := workflow.ExecuteActivity(actx, contract.SourcePollActivityName, req).Get(ctx, &res)
		in.Status.LastPoll = workflow.Now(ctx)
		in.Status.Polls++
		polled++
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == SourceRemovedError {
			in.Status.LastError = errorText(err)
			setSourceState(ctx, &in.Status, contract.StateCompleted)
			trail.wait(ctx)
			return nil
		}
		if err != nil {
			in.Status.LastError, in.Status.Failures = errorText(err), in.Status.Failures+1
			backoff := pollBackoffMin << min(in.Status.Failures-1, 16)
			if in.Every > 0 {
				backoff = min(backoff, in.Every)
			}
			in.Status.NextPoll = in.Status.LastPoll.Add(min(backoff, time.Hour))
			setSourceState(ctx, &in.Status, contract.StateRetrying)
			continue
		}
		trail.decide(ctx, res.Audit)
		trail.emit(ctx, in.Source, pollRecord(res)...)
		if res.Every > 0 {
			in.Every = res.Every
		}
		in.Status.NextPoll = in.Status.LastPoll.Add(in.Every)
		in.Status.LastError, in.Status.Failures, in.Status.Problems = "", 0, res.Problems
		if !res.More {
			in.Release = "" // a released poll delivered in parts stays released
		}
		switch {
		case res.Blocked != nil:
			in.Status.Blocked = res.Blocked
			continue
		case res.Discarded:
			in.PollAt = time.Time{} // nothing was delivered
			setSourceState(ctx, &in.Status, contract.StateIdle)
			continue
		}
		if res.HeldBack == 0 {
			in.Discard = "" // (still held back: the discard stands)
		}
		in.FullNow, in.PollAt = false, time.Time{}
		if res.More {
			in.Status.NextPoll = in.Status.LastPoll
		}
		if !res.FullAt.IsZero() {
			in.LastFull = res.FullAt
		}
		in.Generation++
		in.Cursor, in.Snapshot = res.Cursor, res.Snapshot
		in.Status.Cursor, in.Status.People, in.Status.LastSuccess = res.Cursor, res.People, in.Status.LastPoll
		if in.Status.Emitted == nil {
			in.Status.Emitted = map[string]int{}
		}
		for _, k := range slices.Sorted(maps.Keys(res.Emitted)) {
			in.Status.Emitted[k] += res.Emitted[k]
		}
		setSourceState(ctx, &in.Status, contract.StateIdle)
		// Handlers waiting for a poll asked after this one keep the run
		// going for one more poll.
		if err := workflow.Await(ctx, func() bool { return in.PollNow || workflow.AllHandlersFinished(ctx) }); err != nil {
			return err
		}
		if !in.PollNow {
			trail.wait(ctx)
			return workflow.NewContinueAsNewError(ctx, contract.SourcePollerWorkflowName, in)
		}
	}
}

// setSourceState keeps the search attributes and the current details in
// line with the status.
func setSourceState(ctx workflow.Context, st *SourceStatus, state string) {
	st.State = state
	_ = workflow.UpsertTypedSearchAttributes(ctx, saState.ValueSet(state), saEvent.ValueSet(SourceEventKind))
	workflow.SetCurrentDetails(ctx, st.Details())
}

// Details renders the status as the UI's current details (markdown).
func (st SourceStatus) Details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**source %s: %s**\n\n", st.Source, st.State)
	if !st.LastPoll.IsZero() {
		fmt.Fprintf(&b, "last poll %s, last success %s, %d people", st.LastPoll.UTC().Format(time.RFC3339), fmtTime(st.LastSuccess), st.People)
		if st.Cursor != "" {
			fmt.Fprintf(&b, ", cursor %s", st.Cursor)
		}
		b.WriteString("\n\n")
	}
	if len(st.Emitted) > 0 {
		b.WriteString("emitted:")
		for _, k := range slices.Sorted(maps.Keys(st.Emitted)) {
			fmt.Fprintf(&b, " %s %d", k, st.Emitted[k])
		}
		b.WriteString("\n\n")
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, "last error (%d in a row, retrying with backoff): %s\n\n", st.Failures, st.LastError)
	}
	if bl := st.Blocked; bl != nil {
		fmt.Fprintf(&b, "Blocked: this poll would terminate %d of %d people (%.1f %% > %.1f %%); %d hires and %d changes wait with it. Operator: ReleaseSnapshot or DiscardSnapshot {\"digest\": %q}\n\n",
			bl.Terminate, bl.Known, bl.Percent, bl.Limit, bl.Hire, bl.Change, bl.Digest)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(&b, "- %s\n", p)
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
