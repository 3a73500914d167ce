package notify

import "slices"

// Outcomes a notify step may subscribe to (policy notify.on). The workflows
// raise them, the activities and the REST sender act on them; they live here
// so that neither side imports the other (workflows import no connector).
const (
	OnCompleted      = "completed"
	OnNeedsAttention = "needs_attention"
	OnFailed         = "failed"
	OnAborted        = "aborted" // an operator aborted the run
	OnBlocked        = "blocked" // the run waits for the mass-change limit
)

// Subscribed reports whether a notify step with these on values fires for
// kind (an empty on means completed only).
func Subscribed(on []string, kind string) bool {
	if len(on) == 0 {
		return kind == OnCompleted
	}
	return slices.Contains(on, kind)
}
