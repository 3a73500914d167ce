package logging_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

const pw = "Sup3r-S3cret!pw"

func TestRedactsSecretFields(t *testing.T) {
	tests := []struct {
		name string
		log  func(*zap.Logger)
	}{
		{"password key", func(l *zap.Logger) { l.Info("m", zap.String("password", pw)) }},
		{"mixed-case key", func(l *zap.Logger) { l.Info("m", zap.String("ClientSecret", pw)) }},
		{"api token key", func(l *zap.Logger) { l.Info("m", zap.String("okta_api_token", pw)) }},
		{"secret.Secret value", func(l *zap.Logger) { l.Info("m", zap.Any("value", secret.New(pw))) }},
		{"secret.Secret stringer", func(l *zap.Logger) { l.Info("m", zap.Stringer("value", secret.New(pw))) }},
		{"bearer under innocent key", func(l *zap.Logger) { l.Info("m", zap.String("h", "Bearer "+pw)) }},
		{"attribute map", func(l *zap.Logger) {
			l.Info("m", zap.Any("attrs", map[string]string{"login": "a@b.c", "password": pw}))
		}},
		{"nested any map", func(l *zap.Logger) {
			l.Info("m", zap.Any("body", map[string]any{"user": map[string]any{"credentials": pw}}))
		}},
		{"http header", func(l *zap.Logger) {
			l.Info("m", zap.Any("headers", http.Header{"Authorization": {"Basic " + pw}}))
		}},
		{"With fields", func(l *zap.Logger) { l.With(zap.String("token", pw)).Info("m") }},
		{"temporal adapter", func(l *zap.Logger) { logging.Temporal(l).Info("m", "password", pw) }},
		{"temporal adapter With", func(l *zap.Logger) {
			log.With(logging.Temporal(l), "Authorization", pw).Warn("m")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, out := logging.Capture()
			tt.log(l)
			require.NotEmpty(t, out())
			assert.NotContains(t, out(), pw)
			assert.Contains(t, out(), secret.Redacted)
		})
	}
}

func TestKeepsOrdinaryFields(t *testing.T) {
	l, out := logging.Capture()
	tl := logging.Temporal(l)
	tl.Info("step done", "step", "okta.sync_identity", "attempt", 2, "err", errors.New("boom"), "odd")
	s := out()
	for _, want := range []string{`"msg":"step done"`, `"step":"okta.sync_identity"`, `"attempt":2`, `boom`, `"_extra":"odd"`} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, secret.Redacted)
}

func TestNew(t *testing.T) {
	for _, dev := range []bool{false, true} {
		l, err := logging.New(dev)
		require.NoError(t, err)
		require.NotNil(t, l)
	}
}
