package activities

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
)

func TestGroupDiff(t *testing.T) {
	add, remove := GroupDiff([]string{"everyone", "dept-eng"}, []string{"everyone", "dept-sales"})
	assert.Equal(t, []string{"dept-sales"}, add)
	assert.Equal(t, []string{"dept-eng"}, remove)
}

func TestGeneratePassword(t *testing.T) {
	pw, err := GeneratePassword(policy.PasswordPolicy{Length: 24, Lower: true, Upper: true, Digits: true, Symbols: true, ExcludeSimilar: true}, nil)
	require.NoError(t, err)
	v := pw.Reveal()
	assert.Len(t, v, 24)
	for _, class := range []string{lowerChars, upperChars, digitChars, symbolChars} {
		assert.True(t, strings.ContainsAny(v, class), "has a character of %q", class)
	}
	assert.False(t, strings.ContainsAny(v, similarChars))
	_, err = GeneratePassword(policy.PasswordPolicy{Length: 2, Lower: true, Upper: true, Digits: true}, nil)
	assert.Error(t, err)
}

func TestToTemporalClassifiesAndRedacts(t *testing.T) {
	pw := secret.New(`p"w/1+x`)
	var app *temporal.ApplicationError

	b64 := base64.StdEncoding.EncodeToString([]byte(pw.Reveal()))
	err := toTemporal(connectors.Permanent("ScimValidation", errors.New(`bad password "p\"w/1+x" and `+b64)), pw)
	require.ErrorAs(t, err, &app)
	assert.True(t, app.NonRetryable())
	assert.Equal(t, "ScimValidation", app.Type())
	assert.NotContains(t, app.Error(), `p\"w/1+x`)
	assert.NotContains(t, app.Error(), b64)

	err = toTemporal(&connectors.RateLimitedError{RetryAfter: 7 * time.Second, Err: errors.New("429")})
	require.ErrorAs(t, err, &app)
	assert.False(t, app.NonRetryable())
	assert.Equal(t, 7*time.Second, app.NextRetryDelay())

	err = toTemporal(connectors.Transient(errors.New("503")))
	require.ErrorAs(t, err, &app)
	assert.False(t, app.NonRetryable())
}

func TestSchedule(t *testing.T) {
	a := New(Config{Policy: &policy.Policy{
		Joiner: policy.Flow{Offset: "-3d"},
		Leaver: policy.Flow{LocalTime: "17:00"},
	}})
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s, err := a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindJoiner, EffectiveAt: start})
	require.NoError(t, err)
	assert.Equal(t, start.Add(-72*time.Hour), s.RunAt)
	assert.Equal(t, start, s.EnableAt)
	s, err = a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindLeaver, EffectiveAt: start.Add(12 * time.Hour), Attributes: map[string]string{"time_zone": "Europe/Paris"}})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC), s.RunAt)
	_, err = a.Schedule(t.Context(), ScheduleInput{Kind: policy.KindLeaver, EffectiveAt: start, Attributes: map[string]string{"time_zone": "Mars/Base"}})
	assert.Error(t, err)
}
