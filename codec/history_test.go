package codec_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"
)

type person struct{ Name, Email string }

func greet(_ context.Context, p person) (string, error) {
	return "Welcome " + p.Name + " <" + p.Email + ">", nil
}

func reject(_ context.Context, p person) error {
	return temporal.NewNonRetryableApplicationError("target refused "+p.Email, "TestRefused", nil)
}

func onboard(ctx workflow.Context, p person) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var s string
	if err := workflow.ExecuteActivity(ctx, greet, p).Get(ctx, &s); err != nil {
		return "", err
	}
	err := workflow.ExecuteActivity(ctx, reject, p).Get(ctx, nil)
	if err == nil {
		return "", errors.New("reject did not fail")
	}
	return s + "; " + err.Error(), nil
}

// With the codec on, a plain client reading the raw history sees only
// ciphertext; the codec endpoint turns it back into the data.
func TestHistoryIsCiphertext(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	logger, logs := logging.Capture()
	opts := client.Options{Logger: logging.Temporal(logger)}
	codec.Apply(&opts, c)
	cl := ts.NewClientWithOptions(opts)

	const tq = "codec-test"
	w := worker.New(cl, tq, worker.Options{})
	w.RegisterWorkflow(onboard)
	w.RegisterActivity(greet)
	w.RegisterActivity(reject)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ada := person{Name: "Ada Lovelace", Email: "ada.lovelace@acme.com"}
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "joiner/E1001/ev1", TaskQueue: tq}, onboard, ada)
	require.NoError(t, err)
	var got string
	require.NoError(t, run.Get(ctx, &got))
	assert.Contains(t, got, "Welcome Ada Lovelace <ada.lovelace@acme.com>")
	assert.Contains(t, got, "target refused ada.lovelace@acme.com", "the failure message survives the round trip")

	// Raw history through a client without the codec.
	plain := ts.GetDefaultClient()
	var raw strings.Builder
	var sealed []*commonpb.Payload
	it := plain.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		b, err := protojson.Marshal(ev)
		require.NoError(t, err)
		raw.Write(b)
		switch {
		case ev.GetWorkflowExecutionStartedEventAttributes() != nil:
			sealed = append(sealed, ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()...)
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			f := ev.GetActivityTaskFailedEventAttributes().GetFailure()
			assert.Equal(t, "Encoded failure", f.GetMessage())
			sealed = append(sealed, f.GetEncodedAttributes())
		case ev.GetWorkflowExecutionCompletedEventAttributes() != nil:
			sealed = append(sealed, ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()...)
		}
	}
	history := raw.String()
	for _, pii := range []string{"Ada", "Lovelace", "lovelace", "acme.com", "target refused"} {
		assert.NotContains(t, history, pii)
		assert.NotContains(t, history, base64.StdEncoding.EncodeToString([]byte(pii)), "nor base64 of it")
	}
	assert.Contains(t, history, base64.StdEncoding.EncodeToString([]byte(codec.Encoding)))
	require.Len(t, sealed, 3, "input, failure attributes, result")

	// The codec server decodes what the UI would send it.
	srv := httptest.NewServer(codec.Handler(c, codec.HandlerOptions{AllowOrigins: []string{uiOrigin}}))
	t.Cleanup(srv.Close)
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: srv.URL + "/codec"})
	decoded, err := remote.Decode(sealed)
	require.NoError(t, err)
	var joined strings.Builder
	for _, p := range decoded {
		joined.Write(p.GetData())
	}
	assert.Contains(t, joined.String(), `"Email":"ada.lovelace@acme.com"`)
	assert.Contains(t, joined.String(), "target refused ada.lovelace@acme.com")
	assert.Contains(t, joined.String(), "Welcome Ada Lovelace")

	// The SDK logs through our zap adapter. Note that it logs an activity's
	// error text in clear on the worker: connector errors must never carry
	// a secret (connectors/rest redacts them), only PII an operator may see.
	assert.Contains(t, logs(), `"msg":"Activity error."`)
}
