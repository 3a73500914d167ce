package secret

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// ErrUnknownHandle means the handle does not resolve in this worker: it was
// wiped, expired, or lived in a worker that has since died.
var ErrUnknownHandle = errors.New("secret: handle does not resolve in this worker")

// Handle is an opaque reference to a secret held in a Vault. It is the only
// form of a password that may enter workflow history.
type Handle string

type entry struct {
	s       Secret
	owner   string // e.g. the workflow run that created it
	expires time.Time
}

// Vault keeps secrets in process memory. It is safe for concurrent use.
type Vault struct {
	mu      sync.Mutex
	ttl     time.Duration
	now     func() time.Time
	entries map[Handle]entry
}

// NewVault returns a vault whose entries expire after ttl.
func NewVault(ttl time.Duration) *Vault {
	return &Vault{ttl: ttl, now: time.Now, entries: map[Handle]entry{}}
}

// Put stores s for owner and returns a fresh random handle.
func (v *Vault) Put(owner string, s Secret) Handle {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := Handle("vault:" + hex.EncodeToString(b[:]))
	v.mu.Lock()
	defer v.mu.Unlock()
	v.entries[h] = entry{s: s, owner: owner, expires: v.now().Add(v.ttl)}
	return h
}

// Get resolves a handle; ErrUnknownHandle when it is gone or expired.
func (v *Vault) Get(h Handle) (Secret, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.entries[h]
	if !ok || v.now().After(e.expires) {
		delete(v.entries, h)
		return Secret{}, ErrUnknownHandle
	}
	return e.s, nil
}

// Delete wipes one handle. Deleting an unknown handle is not an error.
func (v *Vault) Delete(h Handle) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.entries, h)
}

// DeleteOwner wipes every secret of owner (a finished workflow run).
func (v *Vault) DeleteOwner(owner string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for h, e := range v.entries {
		if e.owner == owner {
			delete(v.entries, h)
		}
	}
}

// Owners lists the owners that hold live entries.
func (v *Vault) Owners() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range v.entries {
		if !seen[e.owner] {
			seen[e.owner] = true
			out = append(out, e.owner)
		}
	}
	return out
}

// Len is the number of live entries (for metrics and tests).
func (v *Vault) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.entries)
}

// Sweep removes expired entries until ctx is done, every interval.
func (v *Vault) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.mu.Lock()
			now := v.now()
			for h, e := range v.entries {
				if now.After(e.expires) {
					delete(v.entries, h)
				}
			}
			v.mu.Unlock()
		}
	}
}
