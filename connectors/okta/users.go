package okta

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// FindAccount looks a user up by login (the default), by Okta ID ("id"), or
// by another attribute. Login and ID use GET /api/v1/users/{key}; list
// filters are never trusted for one user, so any other attribute is searched
// and every hit checked for an exact match.
func (c *Client) FindAccount(ctx context.Context, by connectors.Key) (*connectors.Account, error) {
	if by.Value == "" {
		return nil, connectors.Permanentf(TypeValidation, "okta: find account: empty %s", keyName(by.Attribute))
	}
	switch by.Attribute {
	case "", "login", "id":
		u, err := c.getUser(ctx, "find account", by.Value)
		if err != nil {
			return nil, err
		}
		return toAccount(u), nil
	}
	prop := ProfileName(by.Attribute)
	expr := fmt.Sprintf("profile.%s eq %s", prop, quote(by.Value))
	var found []*sdk.User
	err := c.eachUserPage(ctx, "find account", query.NewQueryParams(query.WithSearch(expr), query.WithLimit(200)), func(us []*sdk.User) {
		for _, u := range us {
			if v, ok := profileValue(profileGet(u, prop)); ok && strings.EqualFold(v, by.Value) {
				found = append(found, u)
			}
		}
	})
	switch {
	case err != nil:
		return nil, err
	case len(found) == 0:
		return nil, fmt.Errorf("okta: find account by %s: %w", by.Attribute, connectors.ErrNotFound)
	case len(found) > 1:
		return nil, connectors.Permanentf(TypeConflict, "okta: find account: %d users share the %s value: %w", len(found), by.Attribute, connectors.ErrConflict)
	}
	return toAccount(found[0]), nil
}

// ReadAccount reads the user by its Okta ID in one request (GET
// /api/v1/users/{id}): the read-back that verifies a write. Active follows
// the status as FindAccount maps it (SUSPENDED, DEPROVISIONED and STAGED are
// not active). A missing user is ErrNotFound.
func (c *Client) ReadAccount(ctx context.Context, id string) (*connectors.Account, error) {
	if id == "" {
		return nil, connectors.Permanentf(TypeValidation, "okta: read account: empty id")
	}
	u, err := c.getUser(ctx, "read account", id)
	if err != nil {
		return nil, err
	}
	return toAccount(u), nil
}

func keyName(attr string) string {
	if attr == "" {
		return "login"
	}
	return attr
}

func profileGet(u *sdk.User, prop string) any {
	if u.Profile == nil {
		return nil
	}
	return (*u.Profile)[prop]
}

// quote renders an Okta filter string literal.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (c *Client) getUser(ctx context.Context, op, idOrLogin string) (*sdk.User, error) {
	var u *sdk.User
	err := call(ctx, op, func(ctx context.Context) (err error) {
		u, _, err = c.sdk.User.GetUser(ctx, url.PathEscape(idOrLogin))
		return err
	})
	return u, err
}

// CreateAccount creates the user — active when o.Activate, with o.GroupIDs
// granted in the same request and o.Password as its password. When the login
// is taken it adopts the existing user (and grants it o.GroupIDs).
func (c *Client) CreateAccount(ctx context.Context, a connectors.Attributes, o connectors.CreateOptions) (*connectors.Account, error) {
	a = normalize(a)
	for _, name := range requiredAttrs() {
		if a[name] == "" {
			return nil, connectors.Permanentf(TypeValidation, "okta: create account: required attribute %s is missing", name)
		}
	}
	body := sdk.CreateUserRequest{GroupIds: o.GroupIDs}
	profile := toProfile(a)
	body.Profile = &profile
	if o.Password != nil && !o.Password.Empty() {
		body.Credentials = &sdk.UserCredentials{Password: &sdk.PasswordCredential{Value: o.Password.Reveal()}}
	}
	var u *sdk.User
	err := call(ctx, "create account", func(ctx context.Context) (err error) {
		u, _, err = c.sdk.User.CreateUser(ctx, body, query.NewQueryParams(query.WithActivate(o.Activate)))
		return err
	})
	if errors.Is(err, connectors.ErrConflict) {
		return c.adopt(ctx, a["login"], o.GroupIDs, err)
	}
	if err != nil {
		return nil, err
	}
	return toAccount(u), nil
}

// adopt returns the user that holds login after a create conflict, so a
// rerun (or a pre-existing account) never makes a duplicate.
func (c *Client) adopt(ctx context.Context, login string, groupIDs []string, conflict error) (*connectors.Account, error) {
	acct, err := c.FindAccount(ctx, connectors.Key{Attribute: "login", Value: login})
	if errors.Is(err, connectors.ErrNotFound) {
		// The unique value taken is not the login (e.g. email): nothing to adopt.
		return nil, conflict
	}
	if err != nil {
		return nil, err
	}
	for _, g := range groupIDs {
		if err := c.AddMember(ctx, g, acct.ID); err != nil {
			return nil, err
		}
	}
	c.log.Info("okta: adopted existing user", zap.String("user_id", acct.ID), zap.String("status", acct.Status))
	return acct, nil
}

// UpdateAccount writes only the attributes in change (partial update).
// Required attributes cannot be cleared. The login (the unique identifier,
// normalized name "login") cannot change after creation: a change naming it
// is refused as a whole with the permanent type OktaImmutable, before
// anything is sent.
func (c *Client) UpdateAccount(ctx context.Context, id string, change connectors.Diff) error {
	if len(change) == 0 {
		return nil
	}
	if _, ok := normalize(connectors.Attributes(change))["login"]; ok {
		return connectors.Permanentf(TypeImmutable, "okta: login cannot be changed after creation")
	}
	profile := sdk.UserProfile{}
	for k, v := range change {
		if v == "" {
			for _, r := range requiredAttrs() {
				if canonical(k) == r {
					return connectors.Permanentf(TypeValidation, "okta: update account: required attribute %s cannot be cleared", k)
				}
			}
			// Okta's spec types the standard properties as strings, so they
			// are cleared with ""; a custom property may be of any type, so null.
			if isStandard(k) {
				profile[ProfileName(k)] = ""
			} else {
				profile[k] = nil
			}
			continue
		}
		profile[ProfileName(k)] = v
	}
	return call(ctx, "update account", func(ctx context.Context) error {
		_, _, err := c.sdk.User.PartialUpdateUser(ctx, id, sdk.User{Profile: &profile}, nil)
		return err
	})
}

// ListAccounts reads users (all but DEPROVISIONED, as Okta lists them) a
// page at a time. The cursor is Okta's opaque "next" link.
func (c *Client) ListAccounts(ctx context.Context, cursor string, pageSize int) ([]connectors.Account, string, error) {
	if pageSize <= 0 || pageSize > 200 {
		pageSize = 200
	}
	var (
		users []*sdk.User
		resp  *sdk.Response
	)
	err := call(ctx, "list accounts", func(ctx context.Context) (err error) {
		if cursor == "" {
			users, resp, err = c.sdk.User.ListUsers(ctx, query.NewQueryParams(query.WithLimit(int64(pageSize))))
			return err
		}
		resp, err = c.getPage(ctx, cursor, "/api/v1/users", &users)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]connectors.Account, 0, len(users))
	for _, u := range users {
		out = append(out, *toAccount(u))
	}
	return out, resp.NextPage, nil
}

// getPage follows a "next" link through the SDK's request executor.
func (c *Client) getPage(ctx context.Context, next, prefix string, v any) (*sdk.Response, error) {
	if !strings.HasPrefix(next, prefix+"?") {
		return nil, connectors.Permanentf(TypeValidation, "okta: page cursor is not a %s link", prefix)
	}
	rq := c.sdk.CloneRequestExecutor()
	req, err := rq.WithAccept("application/json").NewRequest("GET", next, nil)
	if err != nil {
		return nil, err
	}
	return rq.Do(ctx, req, v)
}

// eachUserPage lists users matching qp and follows every "next" link.
func (c *Client) eachUserPage(ctx context.Context, op string, qp *query.Params, fn func([]*sdk.User)) error {
	var (
		users []*sdk.User
		resp  *sdk.Response
	)
	err := call(ctx, op, func(ctx context.Context) (err error) {
		users, resp, err = c.sdk.User.ListUsers(ctx, qp)
		return err
	})
	for err == nil {
		fn(users)
		if !resp.HasNextPage() {
			return nil
		}
		users = nil
		err = call(ctx, op, func(ctx context.Context) (err error) {
			resp, err = resp.Next(ctx, &users)
			return err
		})
	}
	return err
}

// Changes lists users whose lastUpdated is after since (an RFC 3339 time;
// empty reads everyone), oldest first, following every "next" link. Users
// deactivated since are included: Okta leaves DEPROVISIONED users out of a
// list unless the filter names that status, so they are asked for apart.
// next is the newest lastUpdated seen.
func (c *Client) Changes(ctx context.Context, since string) ([]connectors.Identity, string, error) {
	var after time.Time
	filters := []string{"", `status eq "DEPROVISIONED"`}
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return nil, "", connectors.Permanentf(TypeValidation, "okta: changes: cursor %q is not an RFC 3339 time", since)
		}
		after = t
		gt := fmt.Sprintf("lastUpdated gt %s", quote(oktaTime(t)))
		filters = []string{gt, gt + ` and status eq "DEPROVISIONED"`}
	}
	seen := map[string]bool{}
	var out []connectors.Identity
	newest := after
	for _, f := range filters {
		qp := query.NewQueryParams(query.WithLimit(200))
		if f != "" {
			qp = query.NewQueryParams(query.WithFilter(f), query.WithLimit(200))
		}
		err := c.eachUserPage(ctx, "changes", qp, func(us []*sdk.User) {
			for _, u := range us {
				// Re-check the time: a stand-in (or a replayed page) may not filter.
				if seen[u.Id] || (u.LastUpdated != nil && !u.LastUpdated.After(after)) {
					continue
				}
				seen[u.Id] = true
				id := toIdentity(u)
				if id.UpdatedAt.After(newest) {
					newest = id.UpdatedAt
				}
				out = append(out, id)
			}
		})
		if err != nil {
			return nil, "", err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].UpdatedAt.Before(out[j].UpdatedAt) })
	next := since
	if !newest.IsZero() {
		next = newest.UTC().Format(time.RFC3339Nano)
	}
	return out, next, nil
}

// Deprovision disables the user first — suspend, or deactivate per
// o.Mode (default: the client's DeprovisionMode) — and only then, with
// o.RemoveGroups, drops every group membership Okta lets an admin remove,
// and then, with o.ClearSessions, ends the user's sessions and OAuth
// tokens. Suspend applies only to ACTIVE users; any other live state is
// deactivated instead so the leaver cannot sign in. The profile is kept.
//
// Requests: GET the user, the disable (none when already disabled), then
// with o.RemoveGroups one GET of the groups plus one DELETE per removable
// group, then with o.ClearSessions one DELETE of the sessions.
//
// A failure after the disable never undoes it and never stops the later
// steps: the session step runs even when the group step failed, and the
// error (of the class of the failure that matters most for a retry: rate
// limited, then transient, then permanent) says the account was disabled
// and what failed. Rerunning is safe. A missing user is success.
func (c *Client) Deprovision(ctx context.Context, id string, o connectors.DeprovisionOptions) error {
	mode := o.Mode
	if mode == "" {
		mode = c.mode
	}
	if mode != ModeSuspend && mode != ModeDeactivate {
		return connectors.Permanentf(TypeValidation, "okta: deprovision: mode %q: want %q or %q", mode, ModeSuspend, ModeDeactivate)
	}
	u, err := c.getUser(ctx, "deprovision", id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	id = u.Id
	disabled, err := c.disable(ctx, u, mode)
	if err != nil {
		return err
	}
	var failed []error
	if o.RemoveGroups {
		if err := c.removeAllGroups(ctx, id); err != nil {
			failed = append(failed, fmt.Errorf("removing its groups failed: %w", err))
		}
	}
	if o.ClearSessions {
		if err := c.clearSessions(ctx, id); err != nil {
			failed = append(failed, fmt.Errorf("clearing its sessions failed: %w", err))
		}
	}
	return afterDisable(id, disabled, failed)
}

// disable suspends or deactivates u as mode asks and says what the user
// now is ("suspended", "deactivated"). A user already in that state (or
// DEPROVISIONED) is left alone.
func (c *Client) disable(ctx context.Context, u *sdk.User, mode string) (string, error) {
	switch {
	case u.Status == "DEPROVISIONED":
		return "deactivated", nil
	case mode == ModeSuspend && u.Status == "SUSPENDED":
		return "suspended", nil
	case mode == ModeSuspend && u.Status == "ACTIVE":
		err := ignoreNotFound(call(ctx, "suspend", func(ctx context.Context) error {
			_, err := c.sdk.User.SuspendUser(ctx, u.Id)
			return err
		}))
		return "suspended", err
	default:
		if mode == ModeSuspend {
			c.log.Info("okta: user cannot be suspended in its status; deactivating", zap.String("user_id", u.Id), zap.String("status", u.Status))
		}
		return "deactivated", c.deactivate(ctx, u.Id)
	}
}

// afterDisable reports the steps that failed once the user was disabled.
// The error keeps the class of the failure a retry depends on most (rate
// limited, then transient, then permanent with its type).
func afterDisable(id, disabled string, failed []error) error {
	if len(failed) == 0 {
		return nil
	}
	msgs := make([]string, len(failed))
	for i, err := range failed {
		msgs[i] = err.Error()
	}
	msg := fmt.Errorf("okta: deprovision: user %s was %s, but %s", id, disabled, strings.Join(msgs, "; and "))
	var rl *connectors.RateLimitedError
	for _, err := range failed {
		var r *connectors.RateLimitedError
		if errors.As(err, &r) && (rl == nil || r.RetryAfter > rl.RetryAfter) {
			rl = r
		}
	}
	if rl != nil {
		return &connectors.RateLimitedError{RetryAfter: rl.RetryAfter, Err: msg}
	}
	for _, err := range failed {
		var p *connectors.PermanentError
		if !errors.As(err, &p) {
			return connectors.Transient(msg)
		}
	}
	var p *connectors.PermanentError
	errors.As(failed[0], &p)
	return connectors.Permanent(p.Type, msg)
}

func (c *Client) clearSessions(ctx context.Context, id string) error {
	return ignoreNotFound(call(ctx, "clear sessions", func(ctx context.Context) error {
		_, err := c.sdk.User.ClearUserSessions(ctx, id, query.NewQueryParams(query.WithOauthTokens(true)))
		return err
	}))
}

func (c *Client) removeAllGroups(ctx context.Context, id string) error {
	groups, err := c.userGroups(ctx, id)
	if err != nil {
		return ignoreNotFound(err)
	}
	for _, g := range groups {
		// BUILT_IN (Everyone) and APP_GROUP memberships are not Okta's to drop.
		if g.Type != "" && g.Type != "OKTA_GROUP" {
			continue
		}
		if err := c.RemoveMember(ctx, g.Id, id); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) deactivate(ctx context.Context, id string) error {
	return ignoreNotFound(call(ctx, "deactivate", func(ctx context.Context) error {
		_, err := c.sdk.User.DeactivateUser(ctx, id, query.NewQueryParams(query.WithSendEmail(false)))
		return err
	}))
}

func ignoreNotFound(err error) error {
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// Reactivate undoes Deprovision: unsuspend a SUSPENDED user, activate a
// DEPROVISIONED or STAGED one (without an activation email). A missing user
// is ErrNotFound.
func (c *Client) Reactivate(ctx context.Context, id string) error {
	u, err := c.getUser(ctx, "reactivate", id)
	if err != nil {
		return err
	}
	switch u.Status {
	case "SUSPENDED":
		return call(ctx, "unsuspend", func(ctx context.Context) error {
			_, err := c.sdk.User.UnsuspendUser(ctx, u.Id)
			return err
		})
	case "DEPROVISIONED", "STAGED":
		return call(ctx, "activate", func(ctx context.Context) error {
			_, _, err := c.sdk.User.ActivateUser(ctx, u.Id, query.NewQueryParams(query.WithSendEmail(false)))
			return err
		})
	}
	return nil
}

// Delete deactivates the user if needed, then deletes it. A missing user
// counts as deleted.
func (c *Client) Delete(ctx context.Context, id string) error {
	u, err := c.getUser(ctx, "delete", id)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.Status != "DEPROVISIONED" {
		if err := c.deactivate(ctx, u.Id); err != nil {
			return err
		}
	}
	return ignoreNotFound(call(ctx, "delete", func(ctx context.Context) error {
		_, err := c.sdk.User.DeactivateOrDeleteUser(ctx, u.Id, query.NewQueryParams(query.WithSendEmail(false)))
		return err
	}))
}

// ResetPassword expires the password and returns Okta's temporary one, in
// one request: POST /api/v1/users/{id}/lifecycle/expire_password?tempPassword=true.
// It never sets a permanent password. Calling it again (a worker holding the
// first temporary password died) expires that one and returns a new one. It is
// not idempotent: when the request may have reached Okta but no clear answer
// came back (timeout, lost connection, 5xx, unreadable body), it fails with
// the permanent type OktaAmbiguousReset so an operator decides, rather than
// resetting again.
func (c *Client) ResetPassword(ctx context.Context, id string) (secret.Secret, error) {
	ctx, p := withProbe(ctx)
	tp, _, err := c.sdk.User.ExpirePasswordAndGetTemporaryPassword(ctx, id)
	if err == nil && (tp == nil || tp.TempPassword == "") {
		err = errors.New("no temporary password in the response")
	}
	if err != nil {
		if p.sent && (p.status == 0 || p.status >= 500 || p.status < 300) {
			what := "no response"
			if p.status != 0 {
				what = fmt.Sprintf("HTTP %d", p.status)
			}
			return secret.Secret{}, connectors.Permanentf(TypeAmbiguousReset,
				"okta: reset password: outcome unknown (%s); the password may have been expired — check the user in Okta before retrying", what)
		}
		return secret.Secret{}, classify("reset password", err, p)
	}
	return secret.New(tp.TempPassword), nil
}

// SetPassword sets a known, permanent password (POST /api/v1/users/{id}
// with credentials.password): the user is not asked to change it. Use it
// for password sync only; re-issuing a generated password whose holder was
// lost goes through ResetPassword, which hands out a temporary one. Setting
// the same password twice is harmless, so it may be retried.
func (c *Client) SetPassword(ctx context.Context, id string, pw secret.Secret) error {
	if pw.Empty() {
		return connectors.Permanentf(TypeValidation, "okta: set password: empty password")
	}
	body := sdk.User{Credentials: &sdk.UserCredentials{Password: &sdk.PasswordCredential{Value: pw.Reveal()}}}
	return call(ctx, "set password", func(ctx context.Context) error {
		_, _, err := c.sdk.User.PartialUpdateUser(ctx, id, body, nil)
		return err
	})
}
