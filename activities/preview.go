package activities

import "context"

type previewKey struct{}

// Preview marks ctx as a preview (starter preview): the connectors send
// over a targets.Recorder, which answers writes itself, so the read-back a
// run sends after a write is sent (and shown) but its answer, which cannot
// show an unsent write, is not judged.
func Preview(ctx context.Context) context.Context {
	return context.WithValue(ctx, previewKey{}, true)
}

func previewing(ctx context.Context) bool {
	v, _ := ctx.Value(previewKey{}).(bool)
	return v
}
