package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/scim"
	"github.com/jml-dev/jml/connectors/scim/scimtest"
)

func benchClient(b *testing.B, p *scimtest.Peer) *scim.Client {
	b.Helper()
	c, err := scim.New(context.Background(), scim.Config{BaseURL: p.BaseURL, Auth: scim.Auth{BearerToken: p.Token},
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}})
	require.NoError(b, err)
	_, err = c.Discover(context.Background())
	require.NoError(b, err)
	return c
}

// BenchmarkJoiner is one joiner (lookup, create, 3 group PATCHes) against
// the SCIMMY peer, 8 in parallel.
func BenchmarkJoiner(b *testing.B) {
	ctx := context.Background()
	peer := scimtest.Start(b)
	c := benchClient(b, peer)
	var groups []string
	for _, n := range []string{"all", "eng", "vpn"} {
		g, err := c.EnsureGroup(ctx, connectors.Group{Name: n})
		require.NoError(b, err)
		groups = append(groups, g.ID)
	}
	peer.Reset()
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("joiner%06d", seq.Add(1))
			if _, err := c.FindAccount(ctx, connectors.Key{Value: name}); err == nil {
				b.Error("unexpected account")
			}
			a, err := c.CreateAccount(ctx, connectors.Attributes{"user_name": name, "email": name + "@acme.example",
				"given_name": "J", "family_name": "Oiner", "department": "Eng"}, connectors.CreateOptions{Activate: true})
			if err != nil {
				b.Error(err)
				return
			}
			for _, g := range groups {
				if err := c.AddMember(ctx, g, a.ID); err != nil {
					b.Error(err)
				}
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(peer.Requests())/float64(b.N), "requests/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joiners/s")
}

// BenchmarkFindAmong10k looks users up by userName in a 10,000-user target.
func BenchmarkFindAmong10k(b *testing.B) {
	ctx := context.Background()
	peer := scimtest.Start(b, scimtest.WithUsers(10000))
	c := benchClient(b, peer)
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)%10000 + 1
			if _, err := c.FindAccount(ctx, connectors.Key{Value: fmt.Sprintf("SEED%05d", n)}); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkListAll10k reads a 10,000-user target in pages of 100, as a
// reconciliation would.
func BenchmarkListAll10k(b *testing.B) {
	ctx := context.Background()
	peer := scimtest.Start(b, scimtest.WithUsers(10000))
	c := benchClient(b, peer)
	b.ResetTimer()
	for range b.N {
		n, cursor := 0, ""
		for {
			page, next, err := c.ListAccounts(ctx, cursor, 100)
			require.NoError(b, err)
			n += len(page)
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(b, 10000, n)
	}
}
