package workflows

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/temporal"
)

// A terminated run's error says so (the worker logged "error": "error").
func TestErrorTextNamesTermination(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("child: %w", &temporal.TerminatedError{}), "terminated"},
		{temporal.NewApplicationError("boom", "Transient"), "Transient: boom"},
		{errors.New("x"), "error"},
	} {
		assert.Equal(t, tt.want, errorText(tt.err))
	}
}
