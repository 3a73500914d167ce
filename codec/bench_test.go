package codec_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/jml-dev/jml/codec"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// BenchmarkEncodeDecode seals and opens one 1 KiB payload (about an
// identity's attributes).
func BenchmarkEncodeDecode(b *testing.B) {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	c, err := codec.New(map[string][]byte{"k1": k}, "k1")
	if err != nil {
		b.Fatal(err)
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"blob": strings.Repeat("x", 1000)})
	if err != nil {
		b.Fatal(err)
	}
	ps := []*commonpb.Payload{p}
	b.SetBytes(int64(len(p.Data)))
	for b.Loop() {
		enc, err := c.Encode(ps)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
