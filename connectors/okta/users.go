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
	for _, name := range requiredAttrs {
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

// UpdateAccount writes only the attributes in change (partial update). The
// login cannot change; required attributes cannot be cleared.
func (c *Client) UpdateAccount(ctx context.Context, id string, change connectors.Diff) error {
	if len(change) == 0 {
		return nil
	}
	profile := sdk.UserProfile{}
	for k, v := range change {
		if k == "login" {
			return connectors.Permanentf(TypeValidation, "okta: update account: login cannot change after creation")
		}
		if v == "" {
			for _, r := range requiredAttrs {
				if k == r {
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

// Deprovision ends the user's sessions (and OAuth tokens), drops every
// group membership Okta lets an admin remove, then suspends or deactivates.
// Suspend applies only to ACTIVE users; any other live state is
// deactivated instead so the leaver cannot sign in. The profile is kept.
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
	if o.ClearSessions && u.Status != "DEPROVISIONED" {
		if err := c.clearSessions(ctx, id); err != nil {
			return err
		}
	}
	if o.RemoveGroups {
		if err := c.removeAllGroups(ctx, id); err != nil {
			return err
		}
	}
	switch {
	case u.Status == "DEPROVISIONED", mode == ModeSuspend && u.Status == "SUSPENDED":
		return nil
	case mode == ModeSuspend && u.Status == "ACTIVE":
		return ignoreNotFound(call(ctx, "suspend", func(ctx context.Context) error {
			_, err := c.sdk.User.SuspendUser(ctx, id)
			return err
		}))
	default:
		if mode == ModeSuspend {
			c.log.Info("okta: user cannot be suspended in its status; deactivating", zap.String("user_id", id), zap.String("status", u.Status))
		}
		return c.deactivate(ctx, id)
	}
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

// ResetPassword expires the password and returns Okta's temporary one. It is
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

// SetPassword sets a known password. Setting the same password twice is
// harmless, so it may be retried.
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
