package activities

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
)

type notifications []string

func (n *notifications) Notification(channel, event, result string) {
	*n = append(*n, channel+" "+event+" "+result)
}

func (n *notifications) AuditWriteFailed() { *n = append(*n, "audit failed") }

// Each notify attempt is counted once, by channel, outcome and result.
func TestNotifyIsCounted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	env := map[string]string{"CHAT_URL": srv.URL + "/hook", "DOWN_URL": srv.URL + "/down"}
	var got notifications
	a := New(Config{Metrics: &got, AllowInsecureLoopback: true, Getenv: func(k string) string { return env[k] }})
	step := func(urlEnv string) StepInput {
		return StepInput{Owner: "joiner/E1/evt", Kind: "joiner", Attributes: map[string]string{"employee_id": "E1"},
			Step: PlannedStep{Name: "chat", Action: policy.ActionNotify, Spec: policy.Step{Notify: &policy.RESTRequest{
				Channel: policy.ChannelSlack, URLEnv: urlEnv, On: []string{contract.OnCompleted}, Text: "{Run.message}"}}}}
	}
	_, err := a.Notify(context.Background(), step("CHAT_URL"))
	require.NoError(t, err)
	in := step("CHAT_URL")
	in.Outcome = contract.OnAborted
	_, err = a.Notify(context.Background(), in)
	require.NoError(t, err)
	_, err = a.Notify(context.Background(), step("DOWN_URL"))
	require.Error(t, err)
	assert.Equal(t, notifications{"slack completed sent", "slack aborted not_subscribed", "slack completed failed"}, got)
}
