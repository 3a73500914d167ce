// Package secret holds passwords in worker memory only. A Secret refuses to
// be printed or serialized; a Vault maps opaque handles (safe for workflow
// history) to secrets and forgets them after use or after a TTL.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as.
const Redacted = "••••"

// Secret is a string that does not leak through fmt, JSON or logs.
type Secret struct{ v string }

// New wraps a plain value.
func New(v string) Secret { return Secret{v: v} }

// Reveal returns the plain value. Call it only at the point of use (the
// HTTP request body to a target), never to log or return it.
func (s Secret) Reveal() string { return s.v }

// Empty reports whether the secret has no value.
func (s Secret) Empty() bool { return s.v == "" }

func (s Secret) String() string               { return Redacted }
func (s Secret) GoString() string             { return Redacted }
func (s Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(Redacted)) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(Redacted) }
func (s *Secret) UnmarshalJSON(_ []byte) error {
	return fmt.Errorf("secret: refusing to decode a secret from JSON")
}
