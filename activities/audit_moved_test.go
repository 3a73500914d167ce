package activities

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
)

func TestMovedEffect(t *testing.T) {
	at := func(dn string) *connectors.Account {
		return &connectors.Account{ID: "g1", Attributes: connectors.Attributes{connectors.AttrDN: dn}}
	}
	sales, eng := "CN=Ann,OU=Sales,DC=x", "CN=Ann,OU=Engineering,DC=x"
	for _, tc := range []struct {
		name          string
		before, after *connectors.Account
		want          []audit.Effect
	}{
		{"moved", at(sales), at(eng), []audit.Effect{{Action: audit.AccountMoved, Target: "dir", AccountID: "g1",
			Detail: "from " + sales + " to " + eng, Verified: true}}},
		{"same DN, other case", at(sales), at("cn=Ann,ou=Sales,dc=x"), nil},
		{"not read before", nil, at(eng), nil},
		{"gone", at(sales), nil, nil},
		{"no DN (not a directory)", &connectors.Account{ID: "g1"}, &connectors.Account{ID: "g1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, movedEffect("dir", tc.before, tc.after))
		})
	}
}
