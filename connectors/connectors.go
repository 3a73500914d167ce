// Package connectors defines the small capability interfaces that every
// target system (Okta, SCIM, Entra, REST) implements, the normalized data
// they exchange, and the error classes that activities turn into Temporal
// retry decisions.
//
// A connector implements only the interfaces its target supports; callers
// discover capabilities by type assertion. Every method has "ensure"
// semantics: creating an existing account returns it, adding a present
// member or removing an absent one succeeds, deleting a missing account
// succeeds.
package connectors

import (
	"context"
	"time"

	"github.com/jml-dev/jml/secret"
)

// Attributes are normalized attribute names mapped to values. Names are
// snake_case (user_name, email, given_name, department, employee_id, …).
// Multi-valued attributes are flattened by type: "emails.home",
// "phone_numbers.work", "addresses.work.locality". Booleans are "true" or
// "false". A missing key and an empty value mean the same thing.
type Attributes map[string]string

// Diff is the set of attributes to change on an account. An empty value
// clears the attribute.
type Diff map[string]string

// Key names an account by its unique identifier, e.g. {user_name, jdoe}.
type Key struct {
	Attribute string
	Value     string
}

// AttrDN is the read-only attribute in which a directory (LDAP, AD)
// reports where an account is, its distinguished name: a change of it
// between the read before a write and the read-back is a move
// (audit.AccountMoved). Not a secret.
const AttrDN = "dn"

// Account is one account in a target system.
type Account struct {
	ID         string     // the target's own ID
	Active     bool       // false when suspended/deactivated
	Status     string     // the target's raw status, e.g. ACTIVE, SUSPENDED, DEPROVISIONED
	Attributes Attributes // normalized attributes as read back
	// Groups are the account's memberships when the read returned them
	// (a SCIM User's groups attribute); nil when the read says nothing.
	Groups []Group
}

// Group is an entitlement (a group) in a target system.
type Group struct {
	ID          string
	Name        string
	Description string
}

// CreateOptions tune CreateAccount.
type CreateOptions struct {
	// Password, when set, becomes the account's initial password. It is a
	// secret.Secret so it cannot be logged or serialized by accident.
	Password *secret.Secret
	// GroupIDs are granted in the same call where the target supports it (Okta).
	GroupIDs []string
	// Activate makes the account active at creation (default true for joiners).
	Activate bool
}

// DeprovisionOptions tune Deprovision.
type DeprovisionOptions struct {
	Mode          string // "suspend" or "deactivate" (Okta); SCIM always sets active=false
	RemoveGroups  bool   // drop every group membership
	ClearSessions bool   // end the user's sessions where the target supports it
}

// AccountSyncer is SYNC_IDENTITIES.
type AccountSyncer interface {
	// FindAccount returns ErrNotFound when no account has that key.
	FindAccount(ctx context.Context, by Key) (*Account, error)
	// CreateAccount returns the existing account when one with the same
	// unique identifier already exists (find-and-adopt on conflict).
	CreateAccount(ctx context.Context, a Attributes, o CreateOptions) (*Account, error)
	// UpdateAccount writes only the attributes in change.
	UpdateAccount(ctx context.Context, id string, change Diff) error
}

// Correlator finds the account of a person by the target's own
// correlation key (LDAP: employeeID or employeeNumber) before the unique
// identifier is tried: an account found this way is the person's whatever
// its login. ErrNotFound when none has the key, or attrs carry none.
type Correlator interface {
	Correlate(ctx context.Context, attrs Attributes) (*Account, error)
}

// AccountReader reads one account by the target's own ID: the read-back
// that verifies a write. ErrNotFound when the account is absent.
type AccountReader interface {
	ReadAccount(ctx context.Context, id string) (*Account, error)
}

// AccountLister reads a target in pages for reconciliation.
// An empty cursor starts at the beginning; an empty next cursor ends.
type AccountLister interface {
	ListAccounts(ctx context.Context, cursor string, pageSize int) (accounts []Account, next string, err error)
}

// RelationshipManager is MANAGE_RELATIONSHIPS. Group arguments are target IDs.
type RelationshipManager interface {
	Memberships(ctx context.Context, accountID string) ([]Group, error)
	AddMember(ctx context.Context, groupID, accountID string) error    // present member: success
	RemoveMember(ctx context.Context, groupID, accountID string) error // absent member: success
}

// GroupFinder resolves a group name to the target's group. ErrNotFound when absent.
type GroupFinder interface {
	FindGroup(ctx context.Context, name string) (*Group, error)
}

// EntitlementCreator is CREATE_ENTITLEMENT: find the group by name or create it.
type EntitlementCreator interface {
	EnsureGroup(ctx context.Context, g Group) (*Group, error)
}

// Deprovisioner is DEPROVISION_IDENTITY: disable, drop groups, end sessions.
// A missing account is success.
type Deprovisioner interface {
	Deprovision(ctx context.Context, id string, o DeprovisionOptions) error
}

// Reactivator undoes Deprovision (rehire).
type Reactivator interface {
	Reactivate(ctx context.Context, id string) error
}

// Deleter is DELETE_IDENTITY. A missing account is success.
type Deleter interface {
	Delete(ctx context.Context, id string) error
}

// PasswordSetter sets a known password (password sync, or re-issuing a
// generated password whose vault entry was lost with its worker).
type PasswordSetter interface {
	SetPassword(ctx context.Context, id string, pw secret.Secret) error
}

// PasswordResetter is RESET_PASSWORD: expire the password and return a
// temporary one. Not idempotent: callers must not retry blindly.
type PasswordResetter interface {
	ResetPassword(ctx context.Context, id string) (secret.Secret, error)
}

// Identity is a normalized person read from a source of identity.
type Identity struct {
	EmployeeID string
	Attributes Attributes
	UpdatedAt  time.Time
	Active     bool
}

// IdentitySource lists identities changed since a cursor (SOURCE_OF_IDENTITY).
type IdentitySource interface {
	Changes(ctx context.Context, since string) (ids []Identity, next string, err error)
}
