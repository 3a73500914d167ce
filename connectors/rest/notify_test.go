package rest_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/transform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubscribed(t *testing.T) {
	tests := []struct {
		on   []string
		kind string
		want bool
	}{
		{nil, contract.OnCompleted, true},
		{nil, contract.OnNeedsAttention, false},
		{[]string{contract.OnNeedsAttention, contract.OnFailed}, contract.OnNeedsAttention, true},
		{[]string{contract.OnNeedsAttention}, contract.OnCompleted, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, contract.Subscribed(tt.on, tt.kind), "%v %s", tt.on, tt.kind)
	}
}

func TestNotify(t *testing.T) {
	srv := newRecorder(t, true, reply(200, `ok`))
	c := rest.New(rest.Options{HTTPClient: srv.Client()})
	ev := rest.Event{Kind: contract.OnNeedsAttention, Workflow: "joiner", WorkflowID: "joiner/E1001/ev1",
		EmployeeID: "E1001", FailedStep: "hr.send_rest_request", Error: `400 "bad" login`,
		UIURL: "http://localhost:8233/namespaces/default/workflows/joiner%2FE1001%2Fev1"}

	// Default body: a chat webhook text that names the run and the step only.
	sent, err := c.Notify(context.Background(), rest.Request{Spec: rest.Spec{
		URL: srv.URL + "/hooks/T000", On: []string{contract.OnNeedsAttention}}}, ev)
	require.NoError(t, err)
	require.True(t, sent)
	var msg map[string]string
	require.NoError(t, json.Unmarshal(srv.all()[0].Body, &msg))
	assert.Equal(t, "jml joiner joiner/E1001/ev1 needs attention: step hr.send_rest_request failed — "+ev.UIURL, msg["text"])

	// A ticketing API with its own template; the error text is escaped.
	sent, err = c.Notify(context.Background(), rest.Request{
		Spec: rest.Spec{URL: srv.URL + "/tickets", On: []string{contract.OnNeedsAttention},
			Body: `{"title": "{first_name}: {Run.workflow} stuck at {Run.failed_step}", "detail": "{Run.error}"}`},
		Templates: &transform.Env{Attrs: map[string]string{"first_name": "Ada"}, Outputs: map[string]map[string]string{"Run": ev.Fields()}}}, ev)
	require.NoError(t, err)
	require.True(t, sent)
	var ticket map[string]string
	require.NoError(t, json.Unmarshal(srv.all()[1].Body, &ticket))
	assert.Equal(t, map[string]string{"title": "Ada: joiner stuck at hr.send_rest_request", "detail": `400 "bad" login`}, ticket)

	// Not subscribed: nothing sent.
	sent, err = c.Notify(context.Background(), rest.Request{Spec: rest.Spec{URL: srv.URL + "/hooks/T000"}}, ev)
	require.NoError(t, err)
	assert.False(t, sent)
	assert.Len(t, srv.all(), 2)
}
