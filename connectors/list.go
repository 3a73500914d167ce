package connectors

import (
	"context"
	"errors"
)

// GroupMembers is a group with the IDs of its member accounts.
type GroupMembers struct {
	Group
	// Members are member account IDs when the read carried them (SCIM
	// lists members with the group); nil when they must be read with
	// ListMembers (Okta).
	Members []string
}

// GroupLister reads a target's groups and their members in pages, for
// reconciliation: one read per page, never one per person. An empty cursor
// starts at the beginning; an empty next cursor ends.
type GroupLister interface {
	ListGroups(ctx context.Context, cursor string, pageSize int) (groups []GroupMembers, next string, err error)
	// ListMembers reads one page of a group's member account IDs.
	ListMembers(ctx context.Context, groupID, cursor string, pageSize int) (ids []string, next string, err error)
}

// ChangeLister reads a target's accounts as changes (Microsoft Graph's
// delta query): a round started with an empty cursor lists every account;
// its last page hands out a delta link, and a round started from that link
// lists only the accounts changed or removed since. Pages of a round are
// chained by next; the last page has no next and returns delta, the link a
// later cycle keeps and starts from.
type ChangeLister interface {
	ListChanges(ctx context.Context, cursor string) (changed []Account, removed []string, next, delta string, err error)
}

// ErrResync means the target no longer knows a change link (Graph answers
// 410 Gone, syncStateNotFound): the caller starts over with a full round.
var ErrResync = errors.New("change link expired: start over with a full round")
