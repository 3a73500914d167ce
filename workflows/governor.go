package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
)

// governorWindow is the sliding window of the destructive-step limit.
const governorWindow = time.Hour

// Grant is one permit the governor gave: a person's lifecycle run (all
// its destructive steps), or one step of a run started before that.
type Grant struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// GovernorState is carried across continue-as-new.
type GovernorState struct {
	Grants []Grant `json:"grants,omitempty"`
}

// Governor is the long-lived mass-change safety limit (ID jml-governor).
// A run's first destructive step asks it through the Permit update, for
// the whole run (one person); it grants at most PermitRequest.Limit()
// people in a sliding hour (policy safety:
// max_destructive_per_hour, and max_destructive_percent of the active
// population counted by the asking activity) and answers "blocked" beyond,
// so a runaway HR feed stops at the limit and waits for an operator
// (Release or Abort on each blocked run). Asking again with the same key
// returns the same grant without counting twice.
func Governor(ctx workflow.Context, st GovernorState) error {
	err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdatePermit,
		func(ctx workflow.Context, req activities.PermitRequest) (activities.Permit, error) {
			now := workflow.Now(ctx)
			st.Grants = slices.DeleteFunc(st.Grants, func(g Grant) bool { return now.Sub(g.At) >= governorWindow })
			if slices.ContainsFunc(st.Grants, func(g Grant) bool { return g.Key == req.Key }) {
				return activities.Permit{Granted: true}, nil
			}
			if limit := req.Limit(); limit > 0 && len(st.Grants) >= limit {
				return activities.Permit{Reason: fmt.Sprintf("safety limit: %d people already had destructive changes in the last hour (limit %d); an operator releases or aborts", len(st.Grants), limit)}, nil
			}
			st.Grants = append(st.Grants, Grant{Key: req.Key, At: now})
			return activities.Permit{Granted: true}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req activities.PermitRequest) error {
			if req.Key == "" {
				return errors.New("key is required")
			}
			return nil
		}})
	if err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.GetInfo(ctx).GetContinueAsNewSuggested() }); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, contract.GovernorWorkflowName, st)
}
