package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jml-dev/jml/connectors"
)

var _ connectors.ChangeLister = (*Connector)(nil)

// ListChanges reads users through Graph's delta query
// (https://learn.microsoft.com/en-us/graph/delta-query-users): an empty
// cursor starts a full round (GET /users/delta with the connector's
// $select); a cursor is an @odata.nextLink (the round goes on) or an
// @odata.deltaLink from an earlier round (only the users changed or
// removed since). A cycle keeps the delta link it gets and starts the
// next one from it, so the second cycle reads only what changed.
func (c *Connector) ListChanges(ctx context.Context, cursor string) ([]connectors.Account, []string, string, string, error) {
	const op = "list changes"
	var page struct {
		Value     []map[string]any `json:"value"`
		NextLink  string           `json:"@odata.nextLink"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	first := call{method: "GET", path: "/users/delta", query: query("$select", c.selectUser+",manager")}
	if err := c.page(ctx, op, cursor, "/users/delta?", first, &page); err != nil {
		// Graph forgets delta state (410 Gone with syncStateNotFound or
		// resyncRequired): the caller must start a full round again
		// (https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset).
		if e, ok := errors.AsType[*apiError](err); ok && e.Status == http.StatusGone {
			return nil, nil, "", "", fmt.Errorf("%w: %w", connectors.ErrResync, err)
		}
		return nil, nil, "", "", err
	}
	var changed []connectors.Account
	var removed []string
	for _, u := range page.Value {
		if _, gone := u["@removed"]; gone {
			if id, _ := u["id"].(string); id != "" {
				removed = append(removed, id)
			}
			continue
		}
		changed = append(changed, *toAccount(u))
	}
	if page.NextLink != "" {
		return changed, removed, page.NextLink, "", nil
	}
	if !strings.HasPrefix(page.DeltaLink, c.graph+"/users/delta?") {
		return nil, nil, "", "", connectors.Transient(fmt.Errorf("entra: %s: the last page carries no delta link of this tenant", op))
	}
	return changed, removed, "", page.DeltaLink, nil
}
