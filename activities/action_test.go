package activities

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/policy"
)

// TestActionTable holds the table to the policy's actions and the
// activity names running histories record: renaming an activity method
// strands every run that scheduled it.
func TestActionTable(t *testing.T) {
	want := map[string]string{
		policy.ActionSyncIdentity:        "SyncIdentity",
		policy.ActionManageRelationships: "ManageRelationships",
		policy.ActionDeprovisionIdentity: "DeprovisionIdentity",
		policy.ActionDeleteIdentity:      "DeleteIdentity",
		policy.ActionCreateEntitlement:   "CreateEntitlement",
		policy.ActionResetPassword:       "ResetPassword",
		policy.ActionSendRESTRequest:     "SendRESTRequest",
		policy.ActionNotify:              "Notify",
		policy.ActionApproval:            "ApprovalStep",
	}
	require.Len(t, actionTable(), len(want), "one action per policy action")
	for name, activity := range want {
		a := ActionOf(name)
		require.NotNil(t, a, name)
		assert.Equal(t, name, a.Name())
		fn := PlannedStep{Action: name}.Activity()
		require.NotNil(t, fn, name)
		// The SDK names a method value's activity by the method.
		full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		got := strings.TrimSuffix(full[strings.LastIndex(full, ".")+1:], "-fm")
		assert.Equal(t, activity, got, "activity of %s", name)
	}
	assert.Nil(t, ActionOf("enable"), "a pre-hire's enable is no policy action")
	assert.Equal(t, Traits{}, PlannedStep{Action: "enable"}.Traits())
	assert.Nil(t, PlannedStep{Action: "enable"}.Activity())
}
