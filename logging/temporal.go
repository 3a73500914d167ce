package logging

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Temporal adapts l to the Temporal SDK's logger interface (client and
// worker options, workflow.GetLogger, activity.GetLogger). The SDK's
// key/value pairs become zap fields and go through the same secret filter.
func Temporal(l *zap.Logger) log.Logger {
	return temporalLogger{l.WithOptions(zap.AddCallerSkip(1))}
}

type temporalLogger struct{ l *zap.Logger }

var (
	_ log.WithLogger      = temporalLogger{}
	_ log.WithSkipCallers = temporalLogger{}
)

func (t temporalLogger) Debug(msg string, kv ...any) { t.l.Debug(msg, fields(kv)...) }
func (t temporalLogger) Info(msg string, kv ...any)  { t.l.Info(msg, fields(kv)...) }
func (t temporalLogger) Warn(msg string, kv ...any)  { t.l.Warn(msg, fields(kv)...) }
func (t temporalLogger) Error(msg string, kv ...any) { t.l.Error(msg, fields(kv)...) }

func (t temporalLogger) With(kv ...any) log.Logger {
	return temporalLogger{t.l.With(fields(kv)...)}
}

func (t temporalLogger) WithCallerSkip(n int) log.Logger {
	return temporalLogger{t.l.WithOptions(zap.AddCallerSkip(n))}
}

func fields(kv []any) []zap.Field {
	fs := make([]zap.Field, 0, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		if i+1 == len(kv) {
			fs = append(fs, zap.Any("_extra", kv[i]))
			break
		}
		fs = append(fs, zap.Any(key, kv[i+1]))
	}
	return fs
}
