package sandbox

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkFindByUserName is the connector's lookup (userName eq) on a
// directory of n users, half of them in a group: by index (what GET
// /Users?filter=userName eq "…" does) and by a filter scan (any other
// filter).
func BenchmarkFindByUserName(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d, err := Open("")
			require.NoError(b, err)
			g, err := d.CreateGroup(object{"schemas": []any{coreGroupURN}, "displayName": "everyone"})
			require.NoError(b, err)
			var members []any
			for i := range n {
				u, err := d.CreateUser(user(fmt.Sprintf("user%d@example.com", i), nil))
				require.NoError(b, err)
				if i%2 == 0 {
					members = append(members, object{"value": u["id"]})
				}
			}
			_, err = d.ReplaceGroup(g["id"].(string), object{"schemas": []any{coreGroupURN}, "displayName": "everyone", "members": members})
			require.NoError(b, err)
			name := fmt.Sprintf("USER%d@example.com", n/2)
			f, err := parseFilter(`userName eq "` + name + `"`)
			require.NoError(b, err)
			b.Run("index", func(b *testing.B) {
				for range b.N {
					if _, ok := d.UserByName(name); !ok {
						b.Fatal("not found")
					}
				}
			})
			b.Run("scan", func(b *testing.B) {
				for range b.N {
					if got := d.Users(f); len(got) != 1 {
						b.Fatalf("found %d", len(got))
					}
				}
			})
		})
	}
}
