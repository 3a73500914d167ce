package codec

import (
	"context"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
)

// JWKSVerifier checks a JWT bearer token (the OIDC access token the Web UI
// forwards) against the signing keys published at jwksURL: signature,
// issuer, expiry and, when audience is set, audience. Keys are fetched on
// first use and again when a token names an unknown key.
func JWKSVerifier(ctx context.Context, jwksURL, issuer, audience string) func(context.Context, string) error {
	v := oidc.NewVerifier(issuer, oidc.NewRemoteKeySet(ctx, jwksURL),
		&oidc.Config{ClientID: audience, SkipClientIDCheck: audience == ""})
	return func(ctx context.Context, token string) error {
		if _, err := v.Verify(ctx, token); err != nil {
			return fmt.Errorf("codec: bearer token: %w", err)
		}
		return nil
	}
}
