package logging

import (
	"bytes"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Capture returns a debug-level JSON logger, with the production secret
// filter, that records everything it logs, and a function returning all of
// it so far. Tests scan the output for leaked secrets.
func Capture() (*zap.Logger, func() string) {
	buf := &lockedBuffer{}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	l := zap.New(zapcore.NewCore(enc, buf, zapcore.DebugLevel), Redact())
	return l, buf.String
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) Sync() error { return nil }

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
