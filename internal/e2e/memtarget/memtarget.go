// Package memtarget is an in-memory target system implementing the
// connectors capability interfaces with ensure semantics. It is for unit
// tests of jml's own workflow logic; connectors are proven against real
// peers in their own packages.
package memtarget

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Account is a stored account.
type Account struct {
	ID       string
	Active   bool
	Attrs    connectors.Attributes
	Groups   []string
	Password string
	Deleted  bool
}

// Target is a thread-safe in-memory target.
type Target struct {
	mu       sync.Mutex
	accounts map[string]*Account
	next     int
	calls    []string
	// Fail, when set, may fail an operation ("create", "update", "add", …).
	Fail func(op string) error
}

// New returns an empty target.
func New() *Target { return &Target{accounts: map[string]*Account{}} }

func (t *Target) op(name string) error {
	t.calls = append(t.calls, name)
	if t.Fail != nil {
		return t.Fail(name)
	}
	return nil
}

// Calls returns the operations so far, in order.
func (t *Target) Calls() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.calls)
}

// Find returns a copy of the live account whose attr equals value.
func (t *Target) Find(attr, value string) (Account, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.find(attr, value); a != nil {
		c := *a
		c.Attrs, c.Groups = maps.Clone(a.Attrs), slices.Clone(a.Groups)
		return c, true
	}
	return Account{}, false
}

// Accounts returns copies of every live account.
func (t *Target) Accounts() []Account {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Account
	for _, id := range slices.Sorted(maps.Keys(t.accounts)) {
		a := t.accounts[id]
		if a.Deleted {
			continue
		}
		c := *a
		c.Attrs, c.Groups = maps.Clone(a.Attrs), slices.Clone(a.Groups)
		out = append(out, c)
	}
	return out
}

func (t *Target) find(attr, value string) *Account {
	for _, a := range t.accounts {
		if !a.Deleted && strings.EqualFold(a.Attrs[attr], value) {
			return a
		}
	}
	return nil
}

func (a *Account) public() *connectors.Account {
	return &connectors.Account{ID: a.ID, Active: a.Active, Attributes: maps.Clone(a.Attrs)}
}

func (t *Target) FindAccount(_ context.Context, by connectors.Key) (*connectors.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("find"); err != nil {
		return nil, err
	}
	if a := t.find(by.Attribute, by.Value); a != nil {
		return a.public(), nil
	}
	return nil, connectors.ErrNotFound
}

// ReadAccount is the read-back by ID, with the account's groups.
func (t *Target) ReadAccount(_ context.Context, id string) (*connectors.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("read"); err != nil {
		return nil, err
	}
	a, err := t.get(id)
	if err != nil {
		return nil, err
	}
	acct := a.public()
	acct.Groups = []connectors.Group{}
	for _, g := range a.Groups {
		acct.Groups = append(acct.Groups, connectors.Group{ID: g, Name: g})
	}
	return acct, nil
}

func (t *Target) CreateAccount(_ context.Context, attrs connectors.Attributes, o connectors.CreateOptions) (*connectors.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("create"); err != nil {
		return nil, err
	}
	for _, k := range []string{"user_name", "login"} {
		if v := attrs[k]; v != "" {
			if a := t.find(k, v); a != nil {
				return a.public(), nil
			}
		}
	}
	t.next++
	a := &Account{ID: fmt.Sprintf("u%d", t.next), Active: o.Activate, Attrs: maps.Clone(attrs), Groups: slices.Clone(o.GroupIDs)}
	if o.Password != nil {
		a.Password = o.Password.Reveal()
	}
	t.accounts[a.ID] = a
	return a.public(), nil
}

func (t *Target) get(id string) (*Account, error) {
	a, ok := t.accounts[id]
	if !ok || a.Deleted {
		return nil, connectors.ErrNotFound
	}
	return a, nil
}

func (t *Target) UpdateAccount(_ context.Context, id string, d connectors.Diff) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("update"); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return err
	}
	maps.Copy(a.Attrs, d)
	return nil
}

func (t *Target) Memberships(_ context.Context, id string) ([]connectors.Group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, err := t.get(id)
	if err != nil {
		return nil, err
	}
	var gs []connectors.Group
	for _, g := range a.Groups {
		gs = append(gs, connectors.Group{ID: g, Name: g})
	}
	return gs, nil
}

func (t *Target) AddMember(_ context.Context, g, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("add " + g); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return err
	}
	if !slices.Contains(a.Groups, g) {
		a.Groups = append(a.Groups, g)
	}
	return nil
}

func (t *Target) RemoveMember(_ context.Context, g, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("remove " + g); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return err
	}
	a.Groups = slices.DeleteFunc(a.Groups, func(x string) bool { return x == g })
	return nil
}

func (t *Target) Deprovision(_ context.Context, id string, o connectors.DeprovisionOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("deprovision"); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return nil // ensure: a missing account is deprovisioned
	}
	a.Active = false
	if o.RemoveGroups {
		a.Groups = nil
	}
	return nil
}

func (t *Target) Reactivate(_ context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("activate"); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return err
	}
	a.Active = true
	return nil
}

func (t *Target) Delete(_ context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("delete"); err != nil {
		return err
	}
	if a, ok := t.accounts[id]; ok {
		a.Deleted = true
	}
	return nil
}

func (t *Target) SetPassword(_ context.Context, id string, pw secret.Secret) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("set_password"); err != nil {
		return err
	}
	a, err := t.get(id)
	if err != nil {
		return err
	}
	a.Password = pw.Reveal()
	return nil
}

// ResetPassword sets a random temporary password (RESET_PASSWORD) and
// returns it.
func (t *Target) ResetPassword(_ context.Context, id string) (secret.Secret, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.op("reset_password"); err != nil {
		return secret.Secret{}, err
	}
	a, err := t.get(id)
	if err != nil {
		return secret.Secret{}, err
	}
	a.Password = "Tmp-" + rand.Text()
	return secret.New(a.Password), nil
}

// CheckPassword reports whether pw is the account's password (a "login").
func (t *Target) CheckPassword(login, pw string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.find("user_name", login)
	return a != nil && pw != "" && a.Password == pw
}
