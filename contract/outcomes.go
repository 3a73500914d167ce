package contract

import "slices"

// Notification outcomes: what a run raises and a notify step subscribes to
// (policy notify.on). Workflows raise them; activities, the chat channels
// and the REST sender act on them. They live here so that workflows import
// no channel or connector for them.
const (
	OnCompleted      = "completed"
	OnNeedsAttention = "needs_attention"
	OnFailed         = "failed"
	OnBlocked        = "blocked" // the run waits for the mass-change limit
	OnAborted        = "aborted" // an operator aborted the run
)

// NotifyOutcomes lists the outcomes a notify step may subscribe to.
func NotifyOutcomes() []string {
	return []string{OnCompleted, OnNeedsAttention, OnFailed, OnBlocked, OnAborted}
}

// Subscribed reports whether a notify step with these on values fires for
// outcome (an empty on means completed only).
func Subscribed(on []string, outcome string) bool {
	if len(on) == 0 {
		return outcome == OnCompleted
	}
	return slices.Contains(on, outcome)
}
