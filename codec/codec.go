// Package codec encrypts every Temporal payload jml writes (workflow inputs,
// results, activity arguments, failure messages) with AES-256-GCM, so names
// and emails in history are ciphertext to anyone without the key.
//
// Keys come from the environment, never from a file:
//
//	JML_CODEC_KEYS="2026-01:<base64 32 bytes>,2026-07:<base64 32 bytes>"
//	JML_CODEC_ACTIVE_KEY=2026-07   # default: the last key listed
//
// Generate a key with `openssl rand -base64 32`. Each payload records the
// ID of the key that sealed it, so rotation is: add the new key to
// JML_CODEC_KEYS, make it active, restart workers and starters; keep the old
// key listed until no open workflow or retained history still uses it.
//
// Worker and starter build their client with the same codec:
//
//	c, err := codec.FromEnv(os.Getenv, dev, logger)
//	opts := client.Options{HostPort: ...}
//	codec.Apply(&opts, c) // DataConverter + FailureConverter{EncodeCommonAttributes: true}
//	cl, err := client.Dial(opts)
//
// The Web UI decodes through Handler, mounted at /codec on an address the
// operator's browser reaches (UI setting "codec endpoint": http(s)://host:port/codec).
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

const (
	// EnvKeys lists the keys: "id:base64key,id:base64key".
	EnvKeys = "JML_CODEC_KEYS"
	// EnvActiveKey names the key new payloads are sealed with.
	EnvActiveKey = "JML_CODEC_ACTIVE_KEY"

	// Encoding is the metadata "encoding" of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID is the payload metadata entry naming the key.
	MetadataKeyID = "encryption-key-id"

	keySize = 32 // AES-256
)

// Codec is a converter.PayloadCodec sealing payloads with AES-256-GCM.
type Codec struct {
	aeads  map[string]cipher.AEAD
	active string
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec that encrypts with keys[activeKeyID] and decrypts
// with any key in keys (rotation). Every key must be 32 bytes.
func New(keys map[string][]byte, activeKeyID string) (converter.PayloadCodec, error) {
	if _, ok := keys[activeKeyID]; !ok {
		return nil, fmt.Errorf("codec: active key %q is not among the keys", activeKeyID)
	}
	c := &Codec{aeads: make(map[string]cipher.AEAD, len(keys)), active: activeKeyID}
	for id, k := range keys {
		if err := validKeyID(id); err != nil {
			return nil, err
		}
		if len(k) != keySize {
			return nil, fmt.Errorf("codec: key %q is %d bytes, want %d (AES-256)", id, len(k), keySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		c.aeads[id] = gcm
	}
	return c, nil
}

func validKeyID(id string) error {
	if id == "" || strings.ContainsAny(id, " \t\r\n,:") {
		return fmt.Errorf("codec: invalid key ID %q (no spaces, commas or colons)", id)
	}
	return nil
}

// Encode seals each payload (its encoding, metadata and data) with the
// active key. The key ID is bound into the ciphertext as additional data.
func (c *Codec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	gcm := c.aeads[c.active]
	for i, p := range ps {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plain)+gcm.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(c.active),
			},
			Data: gcm.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode opens encrypted payloads with the key named in their metadata and
// passes others through unchanged (history written before the codec).
func (c *Codec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		gcm, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload sealed with unknown key %q (add it to %s)", id, EnvKeys)
		}
		data := p.GetData()
		if len(data) < gcm.NonceSize() {
			return nil, errors.New("codec: encrypted payload too short")
		}
		plain, err := gcm.Open(nil, data[:gcm.NonceSize()], data[gcm.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: decrypt with key %q: %w", id, err)
		}
		var dp commonpb.Payload
		if err := proto.Unmarshal(plain, &dp); err != nil {
			return nil, fmt.Errorf("codec: unmarshal decrypted payload: %w", err)
		}
		out[i] = &dp
	}
	return out, nil
}

// KeysFromEnv reads JML_CODEC_KEYS and JML_CODEC_ACTIVE_KEY. It returns no
// keys and no error when JML_CODEC_KEYS is unset. Error messages name key
// IDs, never key material.
func KeysFromEnv(getenv func(string) string) (keys map[string][]byte, activeKeyID string, err error) {
	raw := strings.TrimSpace(getenv(EnvKeys))
	if raw == "" {
		if getenv(EnvActiveKey) != "" {
			return nil, "", fmt.Errorf("codec: %s is set but %s is empty", EnvActiveKey, EnvKeys)
		}
		return nil, "", nil
	}
	keys = map[string][]byte{}
	for n, item := range strings.Split(raw, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return nil, "", fmt.Errorf("codec: %s entry %d: want id:base64key", EnvKeys, n+1)
		}
		if err := validKeyID(id); err != nil {
			return nil, "", fmt.Errorf("%w in %s entry %d", err, EnvKeys, n+1)
		}
		if _, dup := keys[id]; dup {
			return nil, "", fmt.Errorf("codec: %s: key %q listed twice", EnvKeys, id)
		}
		k, err := decodeKey(b64)
		if err != nil {
			return nil, "", fmt.Errorf("codec: %s: key %q is not base64", EnvKeys, id)
		}
		if len(k) != keySize {
			return nil, "", fmt.Errorf("codec: %s: key %q is %d bytes, want %d", EnvKeys, id, len(k), keySize)
		}
		keys[id] = k
		activeKeyID = id
	}
	if a := strings.TrimSpace(getenv(EnvActiveKey)); a != "" {
		if _, ok := keys[a]; !ok {
			return nil, "", fmt.Errorf("codec: %s=%q is not listed in %s", EnvActiveKey, a, EnvKeys)
		}
		activeKeyID = a
	}
	return keys, activeKeyID, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("not base64")
}

// FromEnv builds the codec from the environment. Without keys it fails,
// unless dev is set: then it logs a loud warning and returns a nil codec
// (payloads in plain JSON), which Apply and DataConverter accept.
func FromEnv(getenv func(string) string, dev bool, l *zap.Logger) (converter.PayloadCodec, error) {
	keys, active, err := KeysFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if !dev {
			return nil, fmt.Errorf("codec: %s is not set: refusing to write names and emails to Temporal history in clear text (use --dev to run without encryption)", EnvKeys)
		}
		if l != nil {
			l.Warn("!!! PAYLOAD ENCRYPTION IS OFF: " + EnvKeys + " is not set, so workflow history stores names and emails in clear text. Dev mode only. !!!")
		}
		return nil, nil
	}
	return New(keys, active)
}

// DataConverter is the default data converter with payloads passed through
// c; a nil c gives the default converter.
func DataConverter(c converter.PayloadCodec) converter.DataConverter {
	if c == nil {
		return converter.GetDefaultDataConverter()
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter encodes failure messages and stack traces with dc, so an
// error text that quotes an email is ciphertext in history too.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// Apply sets the data and failure converters of client options (worker and
// starter alike) for codec c, and turns the transport's gzip off. With a
// nil c it leaves the defaults.
func Apply(o *client.Options, c converter.PayloadCodec) {
	if c == nil {
		return
	}
	o.DataConverter = DataConverter(c)
	o.FailureConverter = FailureConverter(o.DataConverter)
	// Encrypted payloads do not compress: gzip on the gRPC transport would
	// cost CPU on both sides (the worker compresses every request, the
	// server every answer) and save next to nothing.
	o.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
}
