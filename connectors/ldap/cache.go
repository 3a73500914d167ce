package ldap

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/jml-dev/jml/connectors"
)

// dnCache remembers what the connector read: the DN of each ID and the
// employee ID of each DN, so a group change or a manager read-back costs
// no search. A DN is only a hint: a write to a DN the directory no longer
// has (moved outside jml) drops it and looks the ID up again.
type dnCache struct {
	mu       sync.Mutex
	dn       map[string]string // ID → DN
	employee map[string]string // lower-case DN → employee ID
}

func (d *dnCache) put(id, dn, employee string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dn == nil {
		d.dn, d.employee = map[string]string{}, map[string]string{}
	}
	if id != "" {
		d.dn[id] = dn
	}
	if employee != "" {
		d.employee[strings.ToLower(dn)] = employee
	}
}

func (d *dnCache) get(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dn[id]
}

func (d *dnCache) employeeOf(dn string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.employee[strings.ToLower(dn)]
}

// moved forgets dn (renamed or deleted): its IDs are looked up again.
func (d *dnCache) moved(dn string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, v := range d.dn {
		if sameDN(v, dn) {
			delete(d.dn, id)
		}
	}
	delete(d.employee, strings.ToLower(dn))
}

func (d *dnCache) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.dn, id)
}

// dnOf is the DN of the user (or group) id: remembered, else searched.
func (c *Connector) dnOf(ctx context.Context, id string, group bool) (string, error) {
	if dn := c.cache.get(id); dn != "" {
		return dn, nil
	}
	filter, what := c.userFilter(c.schema.idFilter(id)), "read account"
	if group {
		filter, what = c.groupFilter(c.schema.idFilter(id)), "read group"
	}
	e, err := c.findOne(ctx, what, filter, []string{c.schema.id})
	if err != nil {
		return "", err
	}
	return e.DN, nil
}

// withDNs runs write with the DNs of the group and the account; when the
// directory no longer has a remembered DN, once more with fresh ones.
func (c *Connector) withDNs(ctx context.Context, groupID, accountID string, write func(group, user string) error) error {
	for try := 0; ; try++ {
		g, err := c.dnOf(ctx, groupID, true)
		if err != nil {
			return err
		}
		u, err := c.dnOf(ctx, accountID, false)
		if err != nil {
			return err
		}
		err = write(g, u)
		if !errors.Is(err, connectors.ErrNotFound) || try > 0 {
			return err
		}
		c.cache.forget(groupID)
		c.cache.forget(accountID)
	}
}
