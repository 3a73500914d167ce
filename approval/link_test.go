package approval

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLink(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	now := time.Unix(1_800_000_000, 0)
	l := Link{Workflow: "request/r1", Round: 1, Approver: "grace@acme.test", Expires: now.Add(time.Hour).Unix(), Nonce: "n1"}
	tok, err := Sign(key, l)
	require.NoError(t, err)
	p, sig, _ := strings.Cut(tok, ".")
	other, err := Sign(key, Link{Workflow: "request/r2", Round: 1, Approver: "grace@acme.test", Expires: l.Expires, Nonce: "n1"})
	require.NoError(t, err)
	op, _, _ := strings.Cut(other, ".")

	for _, tc := range []struct {
		name  string
		key   []byte
		token string
		at    time.Time
		want  error
	}{
		{"valid", key, tok, now, nil},
		{"other key", []byte(strings.Repeat("x", 32)), tok, now, ErrForged},
		{"payload swapped", key, op + "." + sig, now, ErrForged},
		{"signature truncated", key, p + "." + sig[:10], now, ErrForged},
		{"no signature", key, p, now, ErrMalformed},
		{"garbage", key, "%%%.%%%", now, ErrMalformed},
		{"expired", key, tok, now.Add(time.Hour), ErrExpired},
		{"no key", nil, tok, now, ErrNoKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.key, tc.token, tc.at)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, l, got)
		})
	}
	assert.NotEqual(t, ID(tok), ID(other))
	assert.NotContains(t, tok, key)
	_, err = Key("short")
	assert.Error(t, err)
}
