package harness

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/hr"
)

// SubmitPaced delivers events open-loop at perSecond: event i leaves at
// start + i/perSecond whether or not earlier deliveries have returned, the
// way HR events arrive. It returns each event's scheduled send time, so a
// slow engine cannot hide its queueing by delaying later sends. Each
// delivery is retried like SubmitAll's (Deliver); the error lists the
// events not delivered.
func (c *Cluster) SubmitPaced(ctx context.Context, evs []hr.Event, perSecond float64) (map[string]time.Time, error) {
	sent := make(map[string]time.Time, len(evs))
	gap := time.Duration(float64(time.Second) / perSecond)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i, ev := range evs {
		at := start.Add(time.Duration(i) * gap)
		time.Sleep(time.Until(at)) // the arrival schedule, not synchronisation
		sent[ev.EventID] = at
		wg.Go(func() {
			if _, err := Deliver(ctx, c.Client, ev); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return sent, deliveryError(errs, len(evs))
}

// Milestones of one hire on its way to an account, in order. Each is the
// history event timestamp of the first matching event. A run of the
// current shape (plan as a local activity, no worker session) has no
// "plan started" or "session created"; runs of the session shape have all.
const (
	MAccepted      = "update accepted"       // Identity: WorkflowExecutionUpdateAccepted
	MChildStarting = "child start initiated" // Identity: StartChildWorkflowExecutionInitiated
	MJoinerStarted = "joiner started"        // Joiner: WorkflowExecutionStarted
	MJoinerTask    = "joiner first task"     // Joiner: first WorkflowTaskStarted
	MPlanStarted   = "plan started"          // Joiner: ActivityTaskStarted of Plan (session shape)
	MPlanDone      = "plan completed"        // Joiner: ActivityTaskCompleted of Plan, or the plan's local-activity marker
	MSession       = "session created"       // Joiner: the session-creation signal (session shape)
	MSyncScheduled = "sync scheduled"        // Joiner: ActivityTaskScheduled of SyncIdentity
	MSyncStarted   = "sync started"          // Joiner: ActivityTaskStarted of SyncIdentity
	MCreated       = "POST /Users answered"  // proxy stamp, added by the caller
	MSent          = "HR event sent"         // bench stamp, added by the caller
)

// Milestones lists the milestones in the order a hire passes them.
func Milestones() []string {
	return []string{MSent, MAccepted, MChildStarting, MJoinerStarted, MJoinerTask, MPlanStarted,
		MPlanDone, MSession, MSyncScheduled, MSyncStarted, MCreated}
}

// Activity type names as registered (the session one is the SDK's prefix).
const (
	activityPlan    = "Plan"
	activitySync    = "SyncIdentity"
	activitySession = "internalSessionCreation"
	// markerLocalActivity is the SDK's marker of a local activity's result
	// (the plan is the joiner's first and only one).
	markerLocalActivity = "LocalActivity"
)

// Timeline reads the identity and joiner histories of a hire and returns
// the milestones found (missing ones are absent).
func (c *Cluster) Timeline(ctx context.Context, ev hr.Event) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	set := func(k string, t time.Time) {
		if _, ok := out[k]; !ok {
			out[k] = t
		}
	}
	err := c.history(ctx, contract.IdentityWorkflowID(ev.EmployeeID()), func(e historyEvent) {
		switch e.Type {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			set(MAccepted, e.Time)
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			set(MChildStarting, e.Time)
		}
	})
	if err != nil {
		return nil, err
	}
	sessionScheduled := false
	err = c.history(ctx, JoinerID(ev), func(e historyEvent) {
		switch e.Type {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			set(MJoinerStarted, e.Time)
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			set(MJoinerTask, e.Time)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			switch {
			case e.Activity == activitySync:
				set(MSyncScheduled, e.Time)
			case strings.HasPrefix(e.Activity, activitySession):
				sessionScheduled = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			switch e.Activity {
			case activityPlan:
				set(MPlanStarted, e.Time)
			case activitySync:
				set(MSyncStarted, e.Time)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if e.Activity == activityPlan {
				set(MPlanDone, e.Time)
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if e.Marker == markerLocalActivity {
				set(MPlanDone, e.Time)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			// The SDK's session worker signals the workflow once the
			// session exists on a host.
			if sessionScheduled {
				set(MSession, e.Time)
			}
		}
	})
	return out, err
}

type historyEvent struct {
	Type     enumspb.EventType
	Time     time.Time
	Activity string // activity type, for activity events
	Marker   string // marker name, for marker events
}

// history calls fn for each event of the workflow's latest run, with the
// activity type resolved for started/completed events.
func (c *Cluster) history(ctx context.Context, id string, fn func(historyEvent)) error {
	types := map[int64]string{} // scheduled event ID → activity type
	it := c.Client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", id, err)
		}
		he := historyEvent{Type: e.EventType, Time: e.EventTime.AsTime()}
		switch {
		case e.GetActivityTaskScheduledEventAttributes() != nil:
			he.Activity = e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			types[e.EventId] = he.Activity
		case e.GetActivityTaskStartedEventAttributes() != nil:
			he.Activity = types[e.GetActivityTaskStartedEventAttributes().ScheduledEventId]
		case e.GetActivityTaskCompletedEventAttributes() != nil:
			he.Activity = types[e.GetActivityTaskCompletedEventAttributes().ScheduledEventId]
		case e.GetMarkerRecordedEventAttributes() != nil:
			he.Marker = e.GetMarkerRecordedEventAttributes().GetMarkerName()
		}
		fn(he)
	}
	return nil
}

// EventList is a workflow's history (latest run) as one line per event:
// its type and, where there is one, the activity type, marker, signal or
// timer it is about. For reading where a run's events go (bench --history).
func (c *Cluster) EventList(ctx context.Context, id string) ([]string, error) {
	var out []string
	types := map[int64]string{}
	it := c.Client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return out, fmt.Errorf("history of %s: %w", id, err)
		}
		what := ""
		switch {
		case e.GetActivityTaskScheduledEventAttributes() != nil:
			a := e.GetActivityTaskScheduledEventAttributes()
			what = a.GetActivityType().GetName() + " " + a.GetActivityId()
			types[e.EventId] = what
		case e.GetActivityTaskStartedEventAttributes() != nil:
			what = types[e.GetActivityTaskStartedEventAttributes().ScheduledEventId]
		case e.GetActivityTaskCompletedEventAttributes() != nil:
			what = types[e.GetActivityTaskCompletedEventAttributes().ScheduledEventId]
		case e.GetMarkerRecordedEventAttributes() != nil:
			m := e.GetMarkerRecordedEventAttributes()
			what = m.GetMarkerName()
			if p, ok := m.GetDetails()["change-id"]; ok && len(p.GetPayloads()) > 0 {
				if dec, err := c.Codec.Decode(p.GetPayloads()[:1]); err == nil {
					what += " " + string(dec[0].GetData())
				}
			}
		case e.GetWorkflowExecutionSignaledEventAttributes() != nil:
			what = e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
		case e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes() != nil:
			what = e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName()
		case e.GetUpsertWorkflowSearchAttributesEventAttributes() != nil:
			for k := range e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields() {
				what += k + " "
			}
		case e.GetWorkflowPropertiesModifiedEventAttributes() != nil:
			for k := range e.GetWorkflowPropertiesModifiedEventAttributes().GetUpsertedMemo().GetFields() {
				what += "memo:" + k + " "
			}
		}
		out = append(out, fmt.Sprintf("%3d %s %s", e.EventId, strings.TrimPrefix(e.EventType.String(), "EVENT_TYPE_"), what))
	}
	return out, nil
}
