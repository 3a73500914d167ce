// Package registry lists the connectors jml knows, each by its own
// description. Adding a connector is its package plus one line here.
package registry

import (
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/entra"
	"github.com/jml-dev/jml/connectors/ldap"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/connectors/scim"
)

// All are the descriptions of every connector, in a stable order.
func All() []*connectors.Description {
	return []*connectors.Description{
		okta.Describe(),
		scim.Describe(),
		entra.Describe(),
		ldap.DescribeAD(),
		ldap.DescribeOpenLDAP(),
		rest.Describe(),
	}
}

// Describe is the description of target type typ.
func Describe(typ string) (*connectors.Description, bool) {
	for _, d := range All() {
		if d.Type == typ {
			return d, true
		}
	}
	return nil, false
}

// Types are the target types with a connector.
func Types() []string {
	var out []string
	for _, d := range All() {
		out = append(out, d.Type)
	}
	return out
}
