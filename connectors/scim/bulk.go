package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"

	"github.com/jml-dev/jml/connectors"
)

// maxBulkOps caps one /Bulk request even when the provider allows more, so
// a failed request costs little to retry.
const maxBulkOps = 100

// BulkResult is the outcome for one account of CreateAccounts.
type BulkResult struct {
	// Account is the created or adopted account. After a /Bulk create it
	// holds the ID and the attributes as sent.
	Account *connectors.Account
	Err     error
}

// CreateAccounts creates many accounts: in /Bulk requests where the provider
// supports them, else one CreateAccount at a time. Results are in input
// order; an account whose unique identifier is taken is found and adopted,
// as CreateAccount does. Passwords are per account, so o.Password is refused
// here; o.GroupIDs are not applied.
func (c *Client) CreateAccounts(ctx context.Context, accounts []connectors.Attributes, o connectors.CreateOptions) ([]BulkResult, error) {
	if o.Password != nil || len(o.GroupIDs) > 0 {
		return nil, connectors.Permanentf("ScimValidation", "scim: create users: passwords and groups are set per account, not in bulk")
	}
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]BulkResult, len(accounts))
	if !d.caps.Bulk {
		for i, a := range accounts {
			out[i].Account, out[i].Err = c.CreateAccount(ctx, a, o)
		}
		return out, nil
	}
	size := maxBulkOps
	if n := d.caps.BulkMaxOperations; n > 0 && n < size {
		size = n
	}
	for start := 0; start < len(accounts); start += size {
		end := min(start+size, len(accounts))
		if err := c.bulkCreate(ctx, d, accounts[start:end], o, out[start:end]); err != nil {
			return out, err
		}
	}
	return out, nil
}

type bulkOp struct {
	Method   string          `json:"method"`
	BulkID   string          `json:"bulkId,omitempty"`
	Path     string          `json:"path,omitempty"`
	Data     any             `json:"data,omitempty"`
	Location string          `json:"location,omitempty"`
	Status   json.RawMessage `json:"status,omitempty"` // "201" per the RFC, 201 on some servers
	Response json.RawMessage `json:"response,omitempty"`
}

func (c *Client) bulkCreate(ctx context.Context, d *discovery, accounts []connectors.Attributes, o connectors.CreateOptions, out []BulkResult) error {
	var ops []bulkOp
	index := map[string]int{} // bulkId → position in accounts
	for i, a := range accounts {
		r, err := c.userResource(d, a, o)
		if err != nil {
			out[i].Err = err
			continue
		}
		id := "u" + strconv.Itoa(i)
		index[id] = i
		ops = append(ops, bulkOp{Method: "POST", BulkID: id, Path: "/Users", Data: r})
	}
	if len(ops) == 0 {
		return nil
	}
	var resp struct {
		Operations []bulkOp `json:"Operations"`
	}
	body := map[string]any{"schemas": []string{bulkURN}, "Operations": ops}
	if err := c.do(ctx, request{op: "bulk create users", method: "POST", path: "/Bulk", body: body}, &resp); err != nil {
		return err
	}
	answered := map[string]bool{}
	for _, r := range resp.Operations {
		i, ok := index[r.BulkID]
		if !ok {
			continue
		}
		answered[r.BulkID] = true
		a := accounts[i]
		status, _ := strconv.Atoi(string(bytes.Trim(r.Status, `"`)))
		if status >= 200 && status < 300 && r.Location != "" {
			out[i].Account = &connectors.Account{ID: path.Base(r.Location), Active: activeOf(a, o), Attributes: a}
			out[i].Account.Status = map[bool]string{true: "ACTIVE", false: "INACTIVE"}[out[i].Account.Active]
			continue
		}
		err := classify("bulk create user", &http.Response{StatusCode: status, Header: http.Header{}}, r.Response, "")
		if errors.Is(err, connectors.ErrConflict) {
			out[i].Account, out[i].Err = c.adopt(ctx, a, err)
			continue
		}
		out[i].Err = err
	}
	for id, i := range index {
		if !answered[id] {
			out[i].Err = connectors.Transient(fmt.Errorf("scim: bulk create user: no answer for operation %s", id))
		}
	}
	return nil
}

func activeOf(a connectors.Attributes, o connectors.CreateOptions) bool {
	if v, ok := a["active"]; ok {
		b, _ := strconv.ParseBool(v)
		return b
	}
	return o.Activate
}
