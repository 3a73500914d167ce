package activities

import (
	"context"

	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/contract"
)

// RESTSender sends Send REST Request and Notify steps. *rest.Client is the
// implementation; tests and benchmarks may put a stand-in in Config.REST.
type RESTSender interface {
	Send(ctx context.Context, r rest.Request) (map[string]string, error)
	Notify(ctx context.Context, r rest.Request, ev rest.Event) (bool, error)
}

// RESTRequest is the request a RESTSender receives.
type RESTRequest = rest.Request

// RESTSenderFunc adapts a function to RESTSender (benchmarks, tests). A
// notification reaches it as a request whose spec subscribes to the event,
// without the {Run.…} outputs.
type RESTSenderFunc func(ctx context.Context, r rest.Request) (map[string]string, error)

// Send calls f.
func (f RESTSenderFunc) Send(ctx context.Context, r rest.Request) (map[string]string, error) {
	return f(ctx, r)
}

// Notify calls f when r subscribes to ev.
func (f RESTSenderFunc) Notify(ctx context.Context, r rest.Request, ev rest.Event) (bool, error) {
	if !contract.Subscribed(r.Spec.On, ev.Kind) {
		return false, nil
	}
	_, err := f(ctx, r)
	return err == nil, err
}
