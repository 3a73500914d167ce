package temporalenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jml-dev/jml/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.uber.org/zap"
)

// searchAttributeNames are jml's custom search attributes, in the order
// they are reported.
var searchAttributeNames = []string{contract.SAEmployeeID, contract.SAEvent, contract.SAState, contract.SAFailedStep}

// SearchAttributes are jml's custom search attributes, all Keyword: the
// one list the dev server, the worker and the intake register.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	m := make(map[string]enumspb.IndexedValueType, len(searchAttributeNames))
	for _, name := range searchAttributeNames {
		m[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	return m
}

// SetupCommand is the command that registers jml's search attributes in
// namespace, run with operator rights.
func SetupCommand(namespace string) string {
	return "TEMPORAL_NAMESPACE=" + namespace + " starter setup"
}

// MissingSearchAttributesError is a namespace that lacks some of jml's
// search attributes, which jml could not register (no operator rights, or
// Temporal Cloud, where only the CLI/UI with an admin key can). Error()
// has one line per attribute with the command that registers it.
type MissingSearchAttributesError struct {
	Namespace string
	Missing   []string // names, in searchAttributeNames order
	// WrongType are attributes that exist with another type than Keyword:
	// name → type. They cannot be fixed by registering.
	WrongType map[string]string
	Err       error // why registering was refused
}

func (e *MissingSearchAttributesError) Error() string {
	var b strings.Builder
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "namespace %s lacks jml's search attributes %s", e.Namespace, strings.Join(e.Missing, ", "))
		if e.Err != nil {
			fmt.Fprintf(&b, " and registering them was refused (%v)", e.Err)
		}
		b.WriteString("; register them, with operator rights, with:\n  " + SetupCommand(e.Namespace) +
			"\n(Temporal Cloud: add them as Keyword in the namespace's settings)")
	}
	for _, name := range searchAttributeNames {
		if t, ok := e.WrongType[name]; ok {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "namespace %s has search attribute %s of type %s, jml needs Keyword: remove it and create it as Keyword", e.Namespace, name, t)
		}
	}
	return b.String()
}

// EnsureSearchAttributes checks at start-up that namespace has jml's four
// Keyword search attributes (workflows.SAEmployeeID, SAEvent, SAState,
// SAFailedStep) and registers the missing ones; it returns the names it
// registered. The dev server and a self-hosted cluster with operator rights
// accept the registration; when it is refused (permission denied, or
// unimplemented on Temporal Cloud) the error is a
// *MissingSearchAttributesError naming them and the command to run.
// Any other error means the check itself could not be made (Temporal
// unreachable, listing not allowed).
func EnsureSearchAttributes(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string) ([]string, error) {
	list, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("temporalenv: list search attributes of namespace %s: %w", namespace, err)
	}
	have := list.GetCustomAttributes()
	missing := &MissingSearchAttributesError{Namespace: namespace}
	add := map[string]enumspb.IndexedValueType{}
	for _, name := range searchAttributeNames {
		t, ok := have[name]
		switch {
		case !ok:
			missing.Missing = append(missing.Missing, name)
			add[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			if missing.WrongType == nil {
				missing.WrongType = map[string]string{}
			}
			missing.WrongType[name] = strings.TrimPrefix(t.String(), "INDEXED_VALUE_TYPE_")
		}
	}
	if len(add) > 0 {
		_, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{SearchAttributes: add, Namespace: namespace})
		var exists *serviceerror.AlreadyExists
		switch {
		case err == nil || errors.As(err, &exists):
			missing.Missing = nil // registered (or by someone else meanwhile)
		default:
			missing.Err = err
		}
	}
	if len(missing.Missing) > 0 || len(missing.WrongType) > 0 {
		return nil, missing
	}
	var registered []string
	for _, name := range searchAttributeNames {
		if _, ok := add[name]; ok {
			registered = append(registered, name)
		}
	}
	return registered, nil
}

// CheckSearchAttributes is the start-up check of the worker and the
// intake: EnsureSearchAttributes with a deadline, logging what it
// registered. It returns only a *MissingSearchAttributesError — the
// process should exit 2 with it, since every run would fail to start or
// to be found; when the check itself cannot be made (Temporal down,
// listing not allowed) it logs a warning and returns nil, and the intake's
// 503 and the worker's retries take over.
func CheckSearchAttributes(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string, logger *zap.Logger) error {
	if logger == nil {
		logger = zap.NewNop()
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	added, err := EnsureSearchAttributes(ctx, op, namespace)
	var missing *MissingSearchAttributesError
	switch {
	case errors.As(err, &missing):
		return missing
	case err != nil:
		logger.Warn("could not check jml's search attributes; continuing", zap.String("namespace", namespace), zap.Error(err))
	case len(added) > 0:
		logger.Info("registered jml's search attributes", zap.String("namespace", namespace), zap.Strings("names", added))
	}
	return nil
}
