package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func payloads(t *testing.T, vs ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(vs...)
	require.NoError(t, err)
	return ps.Payloads
}

func TestRoundTripAndCiphertext(t *testing.T) {
	c, err := codec.New(map[string][]byte{"k1": key(t)}, "k1")
	require.NoError(t, err)
	in := payloads(t, map[string]string{"email": "ada.lovelace@acme.com"}, "Ada Lovelace")

	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, 2)
	for _, p := range enc {
		assert.Equal(t, codec.Encoding, string(p.Metadata[converter.MetadataEncoding]))
		assert.Equal(t, "k1", string(p.Metadata[codec.MetadataKeyID]))
		assert.NotContains(t, string(p.Data), "lovelace")
		assert.NotContains(t, string(p.Data), "Ada")
	}
	// A fresh nonce per payload: the same plaintext never seals the same way.
	again, err := c.Encode(in)
	require.NoError(t, err)
	assert.False(t, bytes.Equal(enc[0].Data, again[0].Data))

	dec, err := c.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		assert.Equal(t, in[i].Data, dec[i].Data)
		assert.Equal(t, in[i].Metadata, dec[i].Metadata)
	}
}

func TestRotationAndFailures(t *testing.T) {
	k1, k2 := key(t), key(t)
	old, err := codec.New(map[string][]byte{"k1": k1}, "k1")
	require.NoError(t, err)
	sealedOld, err := old.Encode(payloads(t, "before rotation"))
	require.NoError(t, err)

	rotated, err := codec.New(map[string][]byte{"k1": k1, "k2": k2}, "k2")
	require.NoError(t, err)
	dec, err := rotated.Decode(sealedOld)
	require.NoError(t, err, "old payloads stay readable after rotation")
	assert.Equal(t, payloads(t, "before rotation")[0].Data, dec[0].Data)
	sealedNew, err := rotated.Encode(payloads(t, "after"))
	require.NoError(t, err)
	assert.Equal(t, "k2", string(sealedNew[0].Metadata[codec.MetadataKeyID]))

	_, err = old.Decode(sealedNew)
	assert.ErrorContains(t, err, `unknown key "k2"`)

	tampered := &commonpb.Payload{Metadata: sealedOld[0].Metadata, Data: bytes.Clone(sealedOld[0].Data)}
	tampered.Data[len(tampered.Data)-1] ^= 1
	_, err = rotated.Decode([]*commonpb.Payload{tampered})
	assert.Error(t, err)

	// The key ID is authenticated: relabelling a payload breaks it.
	relabelled := &commonpb.Payload{Metadata: map[string][]byte{
		converter.MetadataEncoding: []byte(codec.Encoding), codec.MetadataKeyID: []byte("k2"),
	}, Data: sealedOld[0].Data}
	sameKeyOtherID, err := codec.New(map[string][]byte{"k2": k1}, "k2")
	require.NoError(t, err)
	_, err = sameKeyOtherID.Decode([]*commonpb.Payload{relabelled})
	assert.Error(t, err)

	// Plain payloads (history written before the codec) pass through.
	plain := payloads(t, "plain")
	dec, err = rotated.Decode(plain)
	require.NoError(t, err)
	assert.Equal(t, plain[0].Data, dec[0].Data)
}

func TestNewRejectsBadKeys(t *testing.T) {
	_, err := codec.New(map[string][]byte{"k1": make([]byte, 16)}, "k1")
	assert.ErrorContains(t, err, "16 bytes")
	_, err = codec.New(map[string][]byte{"k1": key(t)}, "k2")
	assert.ErrorContains(t, err, `active key "k2"`)
	_, err = codec.New(map[string][]byte{"a b": key(t)}, "a b")
	assert.ErrorContains(t, err, "invalid key ID")
}

func TestKeysFromEnv(t *testing.T) {
	k1, k2 := key(t), key(t)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.RawURLEncoding.EncodeToString(k2)
	tests := []struct {
		name       string
		env        map[string]string
		wantActive string
		wantKeys   int
		wantErr    string
	}{
		{name: "unset", env: nil},
		{name: "one key", env: map[string]string{codec.EnvKeys: "k1:" + b1}, wantActive: "k1", wantKeys: 1},
		{name: "last is active", env: map[string]string{codec.EnvKeys: "k1:" + b1 + ", k2:" + b2}, wantActive: "k2", wantKeys: 2},
		{name: "explicit active", env: map[string]string{codec.EnvKeys: "k1:" + b1 + ",k2:" + b2, codec.EnvActiveKey: "k1"}, wantActive: "k1", wantKeys: 2},
		{name: "unknown active", env: map[string]string{codec.EnvKeys: "k1:" + b1, codec.EnvActiveKey: "k9"}, wantErr: `"k9" is not listed`},
		{name: "active without keys", env: map[string]string{codec.EnvActiveKey: "k1"}, wantErr: "JML_CODEC_KEYS is empty"},
		{name: "no colon", env: map[string]string{codec.EnvKeys: b1}, wantErr: "entry 1: want id:base64key"},
		{name: "short key", env: map[string]string{codec.EnvKeys: "k1:" + base64.StdEncoding.EncodeToString(k1[:16])}, wantErr: "16 bytes"},
		{name: "not base64", env: map[string]string{codec.EnvKeys: "k1:***"}, wantErr: "not base64"},
		{name: "duplicate", env: map[string]string{codec.EnvKeys: "k1:" + b1 + ",k1:" + b2}, wantErr: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, active, err := codec.KeysFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.NotContains(t, err.Error(), b1, "errors never quote key material")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantActive, active)
			assert.Len(t, keys, tt.wantKeys)
		})
	}
}

func TestFromEnv(t *testing.T) {
	empty := func(string) string { return "" }
	_, err := codec.FromEnv(empty, false, nil)
	require.ErrorContains(t, err, "JML_CODEC_KEYS is not set")

	l, out := logging.Capture()
	c, err := codec.FromEnv(empty, true, l)
	require.NoError(t, err)
	assert.Nil(t, c)
	assert.Contains(t, out(), "PAYLOAD ENCRYPTION IS OFF")

	b := base64.StdEncoding.EncodeToString(key(t))
	c, err = codec.FromEnv(func(k string) string {
		if k == codec.EnvKeys {
			return "prod:" + b
		}
		return ""
	}, false, nil)
	require.NoError(t, err)
	require.NotNil(t, c)
}
