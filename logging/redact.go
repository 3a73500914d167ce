package logging

import (
	"net/http"
	"strings"

	"github.com/jml-dev/jml/secret"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// secretKeyParts mark a field (or map key) as secret when its lower-cased
// name contains one of them.
var secretKeyParts = []string{
	"password", "passwd", "secret", "token", "authorization", "api_key",
	"apikey", "cookie", "credential", "private_key", "client_secret",
}

// IsSecretKey reports whether a field or attribute named key holds a secret
// value and must print as secret.Redacted.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// redactCore filters the fields of every entry before the wrapped core
// encodes them.
type redactCore struct{ zapcore.Core }

func (c redactCore) With(fields []zapcore.Field) zapcore.Core {
	return redactCore{c.Core.With(redactFields(fields))}
}

func (c redactCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c redactCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.Core.Write(e, redactFields(fields))
}

func redactFields(fields []zapcore.Field) []zapcore.Field {
	var out []zapcore.Field // copied on first change: callers may reuse their slice
	for i, f := range fields {
		r, changed := redactField(f)
		if !changed {
			continue
		}
		if out == nil {
			out = append([]zapcore.Field(nil), fields...)
		}
		out[i] = r
	}
	if out == nil {
		return fields
	}
	return out
}

func redactField(f zapcore.Field) (zapcore.Field, bool) {
	if IsSecretKey(f.Key) {
		return zap.String(f.Key, secret.Redacted), true
	}
	switch f.Type {
	case zapcore.StringType:
		if looksLikeCredential(f.String) {
			return zap.String(f.Key, secret.Redacted), true
		}
	case zapcore.ReflectType, zapcore.StringerType:
		switch v := f.Interface.(type) {
		case secret.Secret, *secret.Secret:
			return zap.String(f.Key, secret.Redacted), true
		case map[string]string:
			return zap.Any(f.Key, redactStringMap(v)), true
		case map[string]any:
			return zap.Any(f.Key, redactAnyMap(v)), true
		case http.Header:
			h := make(map[string][]string, len(v))
			for k, vs := range v {
				if IsSecretKey(k) {
					vs = []string{secret.Redacted}
				}
				h[k] = vs
			}
			return zap.Any(f.Key, h), true
		}
	}
	return f, false
}

// looksLikeCredential catches an Authorization header value logged under
// an innocent key.
func looksLikeCredential(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "bearer ") || strings.HasPrefix(l, "basic ") || strings.HasPrefix(l, "ssws ")
}

func redactStringMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if IsSecretKey(k) || looksLikeCredential(v) {
			v = secret.Redacted
		}
		out[k] = v
	}
	return out
}

func redactAnyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch {
		case IsSecretKey(k):
			v = secret.Redacted
		default:
			switch x := v.(type) {
			case map[string]any:
				v = redactAnyMap(x)
			case map[string]string:
				v = redactStringMap(x)
			case string:
				if looksLikeCredential(x) {
					v = secret.Redacted
				}
			}
		}
		out[k] = v
	}
	return out
}
