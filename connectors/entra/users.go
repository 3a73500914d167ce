package entra

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/secret"
)

// Compile-time checks of the capabilities this connector offers.
var (
	_ connectors.AccountSyncer       = (*Connector)(nil)
	_ connectors.AccountReader       = (*Connector)(nil)
	_ connectors.AccountLister       = (*Connector)(nil)
	_ connectors.RelationshipManager = (*Connector)(nil)
	_ connectors.GroupFinder         = (*Connector)(nil)
	_ connectors.EntitlementCreator  = (*Connector)(nil)
	_ connectors.Deprovisioner       = (*Connector)(nil)
	_ connectors.Reactivator         = (*Connector)(nil)
	_ connectors.Deleter             = (*Connector)(nil)
	_ connectors.PasswordSetter      = (*Connector)(nil)
	_ connectors.PasswordResetter    = (*Connector)(nil)
)

const expandManager = "manager($select=id,userPrincipalName)"

type userList struct {
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

func userPath(id string) string { return "/users/" + url.PathEscape(id) }

func toAccount(props map[string]any) *connectors.Account {
	id, _ := props["id"].(string)
	enabled, _ := props["accountEnabled"].(bool)
	status := "DISABLED"
	if enabled {
		status = "ENABLED"
	}
	return &connectors.Account{ID: id, Active: enabled, Status: status, Attributes: fromGraph(props)}
}

func requireID(op, id string) error {
	if strings.TrimSpace(id) == "" {
		return connectors.Permanentf(TypeValidation, "entra: %s: account id is empty", op)
	}
	return nil
}

// FindAccount looks an account up by id, user_principal_name (user_name),
// employee_id, mail, mail_nickname, display_name or
// on_premises_immutable_id. More than one match is a permanent
// EntraConflict: Entra does not keep employeeId unique.
func (c *Connector) FindAccount(ctx context.Context, by connectors.Key) (*connectors.Account, error) {
	if by.Attribute == "" {
		by.Attribute = "user_principal_name"
	}
	op := "find account by " + by.Attribute
	if by.Value == "" {
		return nil, connectors.Permanentf(TypeValidation, "entra: %s: empty value", op)
	}
	if by.Attribute == attrID {
		var u map[string]any
		err := c.do(ctx, op, call{method: "GET", path: userPath(by.Value),
			query: query("$select", c.selectUser, "$expand", expandManager)}, &u)
		if err != nil {
			return nil, err
		}
		return toAccount(u), nil
	}
	a, ok := lookupAttribute(by.Attribute)
	if !ok || !a.findable {
		return nil, connectors.Permanentf(TypeValidation, "entra: %s: not a lookup attribute (use id, user_principal_name, user_name, employee_id, mail, mail_nickname, display_name or on_premises_immutable_id)", op)
	}
	var list userList
	err := c.do(ctx, op, call{method: "GET", path: "/users", query: query(
		"$filter", a.graph+" eq "+escape(by.Value), "$select", c.selectUser, "$expand", expandManager)}, &list)
	if err != nil {
		return nil, err
	}
	switch len(list.Value) {
	case 0:
		return nil, fmt.Errorf("entra: %s: %w", op, connectors.ErrNotFound)
	case 1:
		return toAccount(list.Value[0]), nil
	}
	return nil, connectors.Permanent(TypeConflict, fmt.Errorf("entra: %s: %d accounts match; %w", op, len(list.Value), connectors.ErrConflict))
}

// ReadAccount reads the account by its object ID in one request (GET
// /users/{id} with the $select FindAccount uses, accountEnabled included):
// the read-back that verifies a write. Active is accountEnabled. A missing
// account is ErrNotFound.
func (c *Connector) ReadAccount(ctx context.Context, id string) (*connectors.Account, error) {
	const op = "read account"
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var u map[string]any
	err := c.do(ctx, op, call{method: "GET", path: userPath(id),
		query: query("$select", c.selectUser, "$expand", expandManager)}, &u)
	if err != nil {
		return nil, err
	}
	return toAccount(u), nil
}

// ListAccounts reads users in pages; the cursor is Graph's @odata.nextLink.
func (c *Connector) ListAccounts(ctx context.Context, cursor string, pageSize int) ([]connectors.Account, string, error) {
	const op = "list accounts"
	var list userList
	var err error
	if cursor == "" {
		err = c.do(ctx, op, call{method: "GET", path: "/users", query: query(
			"$select", c.selectUser, "$expand", expandManager, "$top", fmt.Sprint(pageTop(pageSize)))}, &list)
	} else {
		// The cursor came back through workflow history: never send the
		// token anywhere but this tenant's Graph.
		if !strings.HasPrefix(cursor, c.graph+"/users?") {
			return nil, "", connectors.Permanentf(TypeValidation, "entra: %s: cursor is not a Graph users link", op)
		}
		err = c.doURL(ctx, op, cursor, call{method: "GET"}, &list)
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]connectors.Account, 0, len(list.Value))
	for _, u := range list.Value {
		out = append(out, *toAccount(u))
	}
	return out, list.NextLink, nil
}

// CreateAccount creates an enabled (o.Activate) user whose first sign-in
// must change the password. Without o.Password a random password is set
// and forgotten: the user then signs in through a Temporary Access Pass or
// self-service reset. display_name defaults to "given_name surname",
// mail_nickname to the UPN's local part.
//
// When the UPN is taken, the existing account is returned — unless its
// employee_id differs from ours, which is a different person: ErrConflict,
// so the caller can try its fallback names. The manager and o.GroupIDs are
// applied in one $batch, also to an adopted account, so a retry after a
// crash completes the joiner.
func (c *Connector) CreateAccount(ctx context.Context, a connectors.Attributes, o connectors.CreateOptions) (*connectors.Account, error) {
	const op = "create account"
	body, manager, err := toGraph(a, false)
	if err != nil {
		return nil, err
	}
	upn, _ := body["userPrincipalName"].(string)
	if err := c.checkUPN(upn); err != nil {
		return nil, err
	}
	if body["displayName"] == nil {
		name := strings.TrimSpace(first(a, "given_name", "first_name") + " " + first(a, "surname", "family_name", "last_name"))
		if name == "" {
			return nil, invalidAttr("display_name", "required (or given_name and surname)")
		}
		body["displayName"] = name
	}
	if body["mailNickname"] == nil {
		local, _, _ := strings.Cut(upn, "@")
		nick := mailNickname(local)
		if nick == "" {
			return nil, invalidAttr("mail_nickname", "required: the user_principal_name has no usable local part")
		}
		body["mailNickname"] = nick[:min(len(nick), 64)]
	}
	if body["accountEnabled"] == nil {
		body["accountEnabled"] = o.Activate
	}
	pw := secret.Secret{}
	if o.Password != nil {
		pw = *o.Password
	}
	if pw.Empty() {
		pw = generatePassword()
	}
	if err := checkPassword(op, pw); err != nil {
		return nil, err
	}
	send := map[string]any{"passwordProfile": passwordProfile(pw, true)}
	for k, v := range body {
		send[k] = v
	}

	var created map[string]any
	err = c.do(ctx, op, call{method: "POST", path: "/users", body: send}, &created)
	var acc *connectors.Account
	switch {
	case err == nil:
		for k, v := range body {
			if _, ok := created[k]; !ok {
				created[k] = v
			}
		}
		acc = toAccount(created)
	case isConflictOn(err, "userPrincipalName"):
		acc, err = c.adopt(ctx, upn, body)
		if err != nil {
			return nil, err
		}
	default:
		return nil, lifecycleHint(body, err)
	}
	calls, err := c.managerCalls(ctx, acc.ID, manager)
	if err != nil {
		return acc, err
	}
	for _, g := range o.GroupIDs {
		calls = append(calls, addMemberCall(c.graph, g, acc.ID))
	}
	// The account may not have reached every replica yet: a 404 for it
	// (or a manager just created) is retried by its ID, never by a
	// $filter that lags as well.
	err = c.eventually(ctx, func() error { return c.run(ctx, "grant manager and groups", calls) })
	if err != nil {
		return acc, err
	}
	if manager != nil && *manager != "" {
		acc.Attributes[attrManager] = *manager
	}
	return acc, nil
}

// first returns the first non-empty value of names.
func first(a connectors.Attributes, names ...string) string {
	for _, n := range names {
		if v := a[n]; v != "" {
			return v
		}
	}
	return ""
}

// adopt returns the existing account with our UPN, or ErrConflict when it
// belongs to someone else (another employee ID). Graph just said the UPN
// is taken, so the account exists: it is read by its UPN (GET
// /users/{upn}, not a $filter) until a replica shows it.
func (c *Connector) adopt(ctx context.Context, upn string, body map[string]any) (*connectors.Account, error) {
	var u map[string]any
	err := c.eventually(ctx, func() error {
		return c.do(ctx, "find account by user_principal_name", call{method: "GET", path: userPath(upn),
			query: query("$select", c.selectUser, "$expand", expandManager)}, &u)
	})
	if err != nil {
		return nil, err
	}
	acc := toAccount(u)
	want, _ := body["employeeId"].(string)
	if have := acc.Attributes["employee_id"]; want != "" && have != "" && !strings.EqualFold(want, have) {
		return nil, connectors.Permanent(TypeConflict, fmt.Errorf(
			"entra: create account: the user_principal_name belongs to another employee: %w", connectors.ErrConflict))
	}
	return acc, nil
}

func isConflictOn(err error, prop string) bool {
	var e *apiError
	return errors.As(err, &e) && e.conflict(prop)
}

// checkUPN refuses locally what Graph would refuse with a 400.
func (c *Connector) checkUPN(upn string) error {
	if upn == "" {
		return invalidAttr("user_principal_name", "required")
	}
	local, domain, ok := strings.Cut(upn, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(upn, " \t") || strings.Contains(domain, "@") {
		return invalidAttr("user_principal_name", "want alias@domain")
	}
	if len(c.domains) > 0 && !slices.ContainsFunc(c.domains, func(d string) bool { return strings.EqualFold(d, domain) }) {
		return invalidAttr("user_principal_name", "domain %q is not a verified domain of the tenant (%s)", domain, strings.Join(c.domains, ", "))
	}
	return nil
}

// managerCalls sets (PUT $ref) or clears (DELETE $ref, absent = done) the
// manager. A UPN is resolved to its object ID first. (An HR employee ID
// never gets here: sync_identity resolves it through the manager's link,
// connectors.AttributeSpec.Reference.)
func (c *Connector) managerCalls(ctx context.Context, id string, manager *string) ([]call, error) {
	if manager == nil {
		return nil, nil
	}
	ref := userPath(id) + "/manager/$ref"
	if *manager == "" {
		return []call{{method: "DELETE", path: ref, ok: notFound}}, nil
	}
	mid := *manager
	if !isGUID(mid) {
		var m struct {
			ID string `json:"id"`
		}
		err := c.do(ctx, "resolve manager", call{method: "GET", path: userPath(mid), query: query("$select", "id")}, &m)
		if errors.Is(err, connectors.ErrNotFound) {
			return nil, invalidAttr(attrManager, "no user %q in the tenant", mid)
		}
		if err != nil {
			return nil, err
		}
		mid = m.ID
	}
	return []call{{method: "PUT", path: ref, body: map[string]string{"@odata.id": c.graph + "/users/" + mid}}}, nil
}

// UpdateAccount patches only the attributes in change (an empty value
// clears one) and sets or clears the manager, in one request or $batch.
func (c *Connector) UpdateAccount(ctx context.Context, id string, change connectors.Diff) error {
	const op = "update account"
	if err := requireID(op, id); err != nil {
		return err
	}
	body, manager, err := toGraph(change, true)
	if err != nil {
		return err
	}
	if upn, ok := body["userPrincipalName"].(string); ok {
		if err := c.checkUPN(upn); err != nil {
			return err
		}
	}
	calls, err := c.managerCalls(ctx, id, manager)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		calls = append([]call{{method: "PATCH", path: userPath(id), body: body}}, calls...)
	}
	return lifecycleHint(body, c.run(ctx, op, calls))
}

// lifecycleHint names the permission a refused lifecycle date needs.
func lifecycleHint(body map[string]any, err error) error {
	var p *connectors.PermanentError
	if _, ok := body["employeeHireDate"]; ok && errors.As(err, &p) && p.Type == TypeAuth {
		return connectors.Permanent(TypeAuth, fmt.Errorf("%w (writing employee_hire_date needs the application permission User-LifeCycleInfo.ReadWrite.All: https://learn.microsoft.com/en-us/graph/api/user-update#permissions)", err))
	}
	return err
}

// Deprovision disables the account (accountEnabled=false) first, and only
// once Graph has confirmed that: with o.RemoveGroups removes its group
// memberships, then with o.ClearSessions revokes its sign-in sessions
// (revokeSignInSessions). Groups Graph cannot change (dynamic, synced from
// on-premises AD, mail-enabled security or distribution lists) are left
// alone: their owners manage them. o.Mode is accepted for symmetry with
// Okta: suspend and deactivate both disable sign-in. A missing account is
// success.
//
// Requests: without o.RemoveGroups the disable is one PATCH; with it, the
// disable and the memberOf read travel in one $batch (the read changes
// nothing, so its order does not matter), then the removals are one more
// request (a $batch per 20 groups; none when there is nothing to remove).
// o.ClearSessions adds one POST after those.
//
// A failure after the disable never undoes it and never stops the later
// steps: sessions are revoked even when the group step failed, and the
// error (of the class that matters most for a retry: rate limited, then
// transient, then permanent) says the account was disabled and what
// failed. Rerunning is safe.
func (c *Connector) Deprovision(ctx context.Context, id string, o connectors.DeprovisionOptions) error {
	const op = "deprovision"
	if err := requireID(op, id); err != nil {
		return err
	}
	switch o.Mode {
	case "", "suspend", "deactivate", "disable":
	default:
		return connectors.Permanentf(TypeValidation, "entra: %s: mode %q: want suspend or deactivate (both disable sign-in)", op, o.Mode)
	}
	var failed []error
	if o.RemoveGroups {
		groups, readErr, err := c.disableReadingGroups(ctx, id)
		if errors.Is(err, connectors.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if readErr != nil {
			failed = append(failed, fmt.Errorf("reading its groups failed: %w", readErr))
		} else {
			var calls []call
			for _, g := range groups {
				if g.changeable() {
					calls = append(calls, removeMemberCall(g.ID, id))
				}
			}
			if err := c.run(ctx, "remove groups", calls); err != nil {
				failed = append(failed, fmt.Errorf("removing its groups failed: %w", err))
			}
		}
	} else {
		err := c.do(ctx, "disable", call{method: "PATCH", path: userPath(id), body: map[string]any{"accountEnabled": false}}, nil)
		if errors.Is(err, connectors.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if o.ClearSessions {
		err := c.do(ctx, "revoke sessions", call{method: "POST", path: userPath(id) + "/revokeSignInSessions", ok: notFound}, nil)
		if err != nil {
			failed = append(failed, fmt.Errorf("revoking its sign-in sessions failed: %w", err))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	msgs := make([]string, len(failed))
	for i, err := range failed {
		msgs[i] = err.Error()
	}
	msg := fmt.Errorf("entra: deprovision: account %s was disabled, but %s", id, strings.Join(msgs, "; and "))
	return reclass(worst(failed), msg)
}

// disableReadingGroups sends the disable and the first memberOf page in
// one $batch and reads any further pages. err means the account was not
// (known to be) disabled — ErrNotFound when it does not exist; readErr
// means it was disabled but its groups could not be read.
func (c *Connector) disableReadingGroups(ctx context.Context, id string) (groups []group, readErr, err error) {
	reqs := []batchRequest{
		{ID: "1", Method: "PATCH", URL: userPath(id), Headers: map[string]string{"Content-Type": "application/json"},
			Body: map[string]any{"accountEnabled": false}},
		{ID: "2", Method: "GET", URL: memberOfURL(id)},
	}
	var out batchResponse
	if err := c.do(ctx, "disable", call{method: "POST", path: "/$batch", body: map[string]any{"requests": reqs}}, &out); err != nil {
		return nil, nil, err
	}
	answers := map[string]int{}
	for i, r := range out.Responses {
		answers[r.ID] = i
	}
	i, ok := answers["1"]
	if !ok {
		return nil, nil, connectors.Transient(fmt.Errorf("entra: disable: $batch answered without the disable"))
	}
	if r := out.Responses[i]; r.Status >= 300 {
		return nil, nil, classify("disable", parseAPIError(r.Status, r.Body, header(r.Headers, "Retry-After")))
	}
	j, ok := answers["2"]
	if !ok {
		return nil, connectors.Transient(fmt.Errorf("entra: list memberships: $batch answered without the read")), nil
	}
	r := out.Responses[j]
	if r.Status >= 300 {
		e := classify("list memberships", parseAPIError(r.Status, r.Body, header(r.Headers, "Retry-After")))
		if errors.Is(e, connectors.ErrNotFound) {
			return nil, nil, e // deleted meanwhile: nothing left to do
		}
		return nil, e, nil
	}
	var page groupPage
	if err := json.Unmarshal(r.Body, &page); err != nil {
		return nil, connectors.Transient(fmt.Errorf("entra: list memberships: decode response: %w", err)), nil
	}
	groups, err = c.memberPages(ctx, page.NextLink, page.groups())
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, nil, err
	}
	return groups, err, nil
}

// Reactivate enables the account again (rehire).
func (c *Connector) Reactivate(ctx context.Context, id string) error {
	if err := requireID("reactivate", id); err != nil {
		return err
	}
	return c.do(ctx, "reactivate", call{method: "PATCH", path: userPath(id), body: map[string]any{"accountEnabled": true}}, nil)
}

// Delete soft-deletes the user: it stays restorable in deleted items for
// 30 days. A missing account is success.
func (c *Connector) Delete(ctx context.Context, id string) error {
	if err := requireID("delete", id); err != nil {
		return err
	}
	return c.do(ctx, "delete", call{method: "DELETE", path: userPath(id), ok: notFound}, nil)
}

// SetPassword sets a known password (password sync): the user keeps it.
func (c *Connector) SetPassword(ctx context.Context, id string, pw secret.Secret) error {
	return c.setPassword(ctx, "set password", id, pw, false)
}

// SetTemporaryPassword sets a password the user must change at next
// sign-in (re-issuing a generated joiner password).
func (c *Connector) SetTemporaryPassword(ctx context.Context, id string, pw secret.Secret) error {
	return c.setPassword(ctx, "set temporary password", id, pw, true)
}

// ResetPassword sets a new random temporary password and returns it.
func (c *Connector) ResetPassword(ctx context.Context, id string) (secret.Secret, error) {
	pw := generatePassword()
	if err := c.setPassword(ctx, "reset password", id, pw, true); err != nil {
		return secret.Secret{}, err
	}
	return pw, nil
}

func (c *Connector) setPassword(ctx context.Context, op, id string, pw secret.Secret, force bool) error {
	if err := requireID(op, id); err != nil {
		return err
	}
	if pw.Empty() {
		return connectors.Permanentf(TypeValidation, "entra: %s: empty password", op)
	}
	if err := checkPassword(op, pw); err != nil {
		return err
	}
	return c.do(ctx, op, call{method: "PATCH", path: userPath(id),
		body: map[string]any{"passwordProfile": passwordProfile(pw, force)}}, nil)
}

// passwordProfile is the only place a password is revealed: the request
// body. Errors never include bodies.
func passwordProfile(pw secret.Secret, force bool) map[string]any {
	return map[string]any{"forceChangePasswordNextSignIn": force, "password": pw.Reveal()}
}

// pwSymbols are the symbols Entra allows in a password, space included.
const pwSymbols = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> "

// checkPassword refuses, before anything is sent, a password Entra's
// policy for cloud accounts refuses: 8–256 characters, three of lower
// case, upper case, digits and symbols, ASCII letters, digits and the
// listed symbols only ("Characters not allowed: Unicode characters",
// https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy#password-policies-that-only-apply-to-cloud-user-accounts).
// The reason never quotes the password.
func checkPassword(op string, pw secret.Secret) error {
	v := pw.Reveal()
	var lower, upper, digit, other int
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z':
			lower = 1
		case r >= 'A' && r <= 'Z':
			upper = 1
		case r >= '0' && r <= '9':
			digit = 1
		case strings.ContainsRune(pwSymbols, r):
			other = 1
		default:
			return connectors.Permanentf(TypeValidation, "entra: %s: the password holds a character Entra refuses (ASCII letters, digits, spaces and @#$%%^&*-_!+=[]{}|\\:',.?/`~\"();<> only)", op)
		}
	}
	if len(v) < 8 || len(v) > 256 || lower+upper+digit+other < 3 {
		return connectors.Permanentf(TypeValidation, "entra: %s: the password breaks Entra's policy (8 to 256 characters, three of lower case, upper case, digits and symbols)", op)
	}
	return nil
}

// generatePassword makes a 24-character password with all four character
// classes (Entra wants three of four).
func generatePassword() secret.Secret {
	const (
		lower  = "abcdefghijkmnopqrstuvwxyz"
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits = "23456789"
		symbol = "!#$%&*+-=?@^_"
	)
	pick := func(set string) byte {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		return set[n.Int64()]
	}
	all := lower + upper + digits + symbol
	b := []byte{pick(lower), pick(upper), pick(digits), pick(symbol)}
	for len(b) < 24 {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- { // shuffle so the classes are not in fixed places
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		j := int(n.Int64())
		b[i], b[j] = b[j], b[i]
	}
	return secret.New(string(b))
}
