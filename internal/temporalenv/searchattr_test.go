package temporalenv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/grpc"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/internal/temporalenv"
)

func TestEnsureSearchAttributesRegistersMissing(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	ns := ts.GetDefaultNamespace()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	registered, err := temporalenv.EnsureSearchAttributes(ctx, c.OperatorService(), ns)
	require.NoError(t, err)
	assert.Equal(t, []string{contract.SAEmployeeID, contract.SAEvent, contract.SAState, contract.SAFailedStep}, registered)

	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	require.NoError(t, err)
	for name := range temporalenv.SearchAttributes() {
		assert.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, list.CustomAttributes[name], name)
	}

	// A second start finds them all.
	registered, err = temporalenv.EnsureSearchAttributes(ctx, c.OperatorService(), ns)
	require.NoError(t, err)
	assert.Empty(t, registered)
}

// refusingOperator has JmlEmployeeId only and refuses to add attributes.
type refusingOperator struct {
	operatorservice.OperatorServiceClient
	refuse error
	added  int
}

func (o *refusingOperator) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: map[string]enumspb.IndexedValueType{
		contract.SAEmployeeID: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}}, nil
}

func (o *refusingOperator) AddSearchAttributes(context.Context, *operatorservice.AddSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error) {
	o.added++
	return nil, o.refuse
}

func TestEnsureSearchAttributesRefusedGivesCommands(t *testing.T) {
	for _, refuse := range []error{
		serviceerror.NewPermissionDenied("request unauthorized", ""),
		serviceerror.NewUnimplemented("method AddSearchAttributes not implemented"),
	} {
		op := &refusingOperator{refuse: refuse}
		_, err := temporalenv.EnsureSearchAttributes(context.Background(), op, "jml-prod")
		var missing *temporalenv.MissingSearchAttributesError
		require.True(t, errors.As(err, &missing), "%v", err)
		assert.Equal(t, 1, op.added)
		assert.Equal(t, []string{contract.SAEvent, contract.SAState, contract.SAFailedStep}, missing.Missing)
		assert.Contains(t, err.Error(), "lacks jml's search attributes JmlEvent, JmlState, JmlFailedStep")
		assert.Contains(t, err.Error(), "\n  TEMPORAL_NAMESPACE=jml-prod starter setup\n")
		assert.NotContains(t, err.Error(), "JmlEmployeeId")
		assert.Contains(t, err.Error(), refuse.Error())
	}
}
