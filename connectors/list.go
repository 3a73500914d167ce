package connectors

import "context"

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
