package policy

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Approvals configures access requests: who may ask for what, and how a
// request is approved (docs/approvals.md).
type Approvals struct {
	// Mail is the smtp target approval and request mails go through.
	Mail string `yaml:"mail" json:"mail,omitempty"`
	// LinkURL is starter serve's public URL: an approval mail links to
	// LinkURL/v1/approvals?t=<token>. Empty: mails carry no link (answer
	// with starter approve|deny).
	LinkURL string `yaml:"link_url" json:"link_url,omitempty"`
	// Requestable lists what people may ask for, "group:NAME@TARGET", NAME
	// with * patterns ("group:prod-*@okta"). Anything else is refused.
	Requestable []string `yaml:"requestable" json:"requestable,omitempty"`
	// MaxDuration bounds a grant (default 30d).
	MaxDuration string `yaml:"max_duration" json:"max_duration,omitempty"`
	// Approval is how a request (and each extension) is approved.
	Approval Approval `yaml:"approval" json:"approval"`
	// Chat posts each approver's message (its signed link included) to
	// these Slack or Teams incoming webhooks too.
	Chat []ApprovalChat `yaml:"chat" json:"chat,omitempty"`
	// OnMove is what a mover does to the person's time-bound grants.
	OnMove OnMove `yaml:"on_move" json:"on_move,omitzero"`
}

// ApprovalChat is a chat channel approvers are asked in: an incoming
// webhook whose URL (a credential) is in the environment variable URLEnv.
type ApprovalChat struct {
	Channel string `yaml:"channel" json:"channel"` // slack | teams
	URLEnv  string `yaml:"url_env" json:"url_env"`
}

// OnMove: a mover whose attributes change in one of Attributes re-asks
// approval of the person's grants in force (reapprove), revokes them and
// withdraws the open requests (revoke), or leaves them (keep).
type OnMove struct {
	// Attributes whose change makes a mover review grants (default:
	// department, manager_id).
	Attributes []string `yaml:"attributes" json:"attributes,omitempty"`
	// Action is reapprove (default), revoke or keep.
	Action string `yaml:"action" json:"action,omitempty"`
}

// Actions of OnMove.
const (
	OnMoveReapprove = "reapprove"
	OnMoveRevoke    = "revoke"
	OnMoveKeep      = "keep"
)

// Review returns what a mover from old to attrs does to the person's
// grants (OnMoveKeep when no watched attribute changed) and why.
func (o OnMove) Review(old, attrs map[string]string) (action, why string) {
	action = o.Action
	if action == "" {
		action = OnMoveReapprove
	}
	watched := o.Attributes
	if len(watched) == 0 {
		watched = []string{"department", "manager_id"}
	}
	var changed []string
	for _, k := range watched {
		if old[k] != attrs[k] {
			changed = append(changed, fmt.Sprintf("%s %q → %q", k, old[k], attrs[k]))
		}
	}
	if len(changed) == 0 || action == OnMoveKeep {
		return OnMoveKeep, ""
	}
	return action, "moved: " + strings.Join(changed, ", ")
}

// Approval is one approval: who is asked, how many must agree, and what
// happens when nobody answers.
type Approval struct {
	// Approvers: "manager" (the person's manager, from manager_id),
	// "group:NAME@TARGET" (the members of a group at a target), an e-mail
	// address or an employee ID. Default: manager.
	Approvers []string `yaml:"approvers" json:"approvers,omitempty"`
	// Quorum is how many approvals grant (default 1). One denial denies.
	Quorum int `yaml:"quorum" json:"quorum,omitempty"`
	// Timeout ends the wait with OnTimeout (default 72h).
	Timeout string `yaml:"timeout" json:"timeout,omitempty"`
	// RemindAfter sends the asked approvers a reminder (empty: none).
	RemindAfter string `yaml:"remind_after" json:"remind_after,omitempty"`
	// EscalateAfter also asks EscalateTo (empty: no escalation).
	EscalateAfter string `yaml:"escalate_after" json:"escalate_after,omitempty"`
	// EscalateTo: "manager" (each approver's manager) and/or e-mail
	// addresses or employee IDs (the fallback list).
	EscalateTo []string `yaml:"escalate_to" json:"escalate_to,omitempty"`
	// OnTimeout is deny (default) or approve.
	OnTimeout string `yaml:"on_timeout" json:"on_timeout,omitempty"`
}

// Approver kinds of Approval.Approvers.
const (
	ApproverManager = "manager"
	GrantGroup      = "group:"
	OnTimeoutDeny   = "deny"
	OnTimeoutGrant  = "approve"
)

// ApprovalTimes are an approval's durations, parsed.
type ApprovalTimes struct {
	Timeout, RemindAfter, EscalateAfter time.Duration
}

// Times parses the approval's durations (defaults applied).
func (a Approval) Times() (ApprovalTimes, error) {
	var t ApprovalTimes
	var err error
	for _, f := range []struct {
		src string
		dst *time.Duration
		def time.Duration
	}{{a.Timeout, &t.Timeout, 72 * time.Hour}, {a.RemindAfter, &t.RemindAfter, 0}, {a.EscalateAfter, &t.EscalateAfter, 0}} {
		*f.dst = f.def
		if f.src != "" {
			if *f.dst, err = ParseDuration(f.src); err != nil {
				return t, err
			}
		}
	}
	return t, nil
}

// MaxGrant is the longest grant a request may ask for.
func (a Approvals) MaxGrant() time.Duration {
	if d, err := ParseDuration(a.MaxDuration); err == nil && d > 0 {
		return d
	}
	return 30 * 24 * time.Hour
}

// ParseGrant splits "group:NAME@TARGET".
func ParseGrant(s string) (group, target string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), GrantGroup)
	if !ok {
		return "", "", fmt.Errorf("grant %q: want group:NAME@TARGET", s)
	}
	i := strings.LastIndex(rest, "@")
	if i <= 0 || i == len(rest)-1 {
		return "", "", fmt.Errorf("grant %q: want group:NAME@TARGET", s)
	}
	return rest[:i], rest[i+1:], nil
}

// MayRequest reports whether group at target may be requested.
func (a Approvals) MayRequest(group, target string) bool {
	for _, r := range a.Requestable {
		g, t, err := ParseGrant(r)
		if err == nil && strings.EqualFold(t, target) && MatchGroup([]string{g}, group) {
			return true
		}
	}
	return false
}

// validateApprovals checks the approvals section.
func (c *checker) validateApprovals(p *Policy) {
	a := p.Approvals
	if a.Mail != "" {
		c.target(p, "approvals.mail", a.Mail, "smtp")
	}
	if a.LinkURL != "" {
		c.url("approvals.link_url", a.LinkURL, false)
	}
	for i, r := range a.Requestable {
		path := fmt.Sprintf("approvals.requestable[%d]", i)
		_, t, err := ParseGrant(r)
		if err != nil {
			c.at(path, "%v", err)
			continue
		}
		if _, ok := p.Targets[t]; !ok {
			c.at(path, "unknown target %q", t)
		}
	}
	if a.MaxDuration != "" {
		c.duration("approvals.max_duration", a.MaxDuration, false)
	}
	c.validateApproval(p, "approvals.approval", a.Approval)
	for i, ch := range a.Chat {
		path := fmt.Sprintf("approvals.chat[%d]", i)
		if ch.Channel != ChannelSlack && ch.Channel != ChannelTeams {
			c.at(path+".channel", "channel %q: want slack or teams", ch.Channel)
		}
		c.envName(path+".url_env", ch.URLEnv, true)
	}
	switch a.OnMove.Action {
	case "", OnMoveReapprove, OnMoveRevoke, OnMoveKeep:
	default:
		c.at("approvals.on_move.action", "action %q: want reapprove, revoke or keep", a.OnMove.Action)
	}
}

func (c *checker) validateApproval(p *Policy, path string, a Approval) {
	for i, s := range a.Approvers {
		c.approver(p, fmt.Sprintf("%s.approvers[%d]", path, i), s, true)
	}
	for i, s := range a.EscalateTo {
		c.approver(p, fmt.Sprintf("%s.escalate_to[%d]", path, i), s, false)
	}
	if a.Quorum < 0 {
		c.at(path+".quorum", "must not be negative")
	}
	t := map[string]time.Duration{}
	for k, v := range map[string]string{"timeout": a.Timeout, "remind_after": a.RemindAfter, "escalate_after": a.EscalateAfter} {
		if v != "" {
			t[k] = c.duration(path+"."+k, v, false)
		}
	}
	if to, ok := t["timeout"]; ok {
		for _, k := range []string{"remind_after", "escalate_after"} {
			if d, ok := t[k]; ok && d >= to {
				c.at(path+"."+k, "must be shorter than timeout")
			}
		}
	}
	if a.EscalateAfter != "" && len(a.EscalateTo) == 0 {
		c.at(path+".escalate_to", "required with escalate_after")
	}
	switch a.OnTimeout {
	case "", OnTimeoutDeny, OnTimeoutGrant:
	default:
		c.at(path+".on_timeout", "on_timeout %q: want deny or approve", a.OnTimeout)
	}
}

func (c *checker) approver(p *Policy, path, s string, groups bool) {
	switch {
	case s == ApproverManager:
	case strings.HasPrefix(s, GrantGroup):
		if !groups {
			c.at(path, "a group cannot be escalated to: name people")
			return
		}
		_, t, err := ParseGrant(s)
		if err != nil {
			c.at(path, "%v", err)
		} else if _, ok := p.Targets[t]; !ok {
			c.at(path, "unknown target %q", t)
		}
	case strings.Contains(s, "@"):
		if _, err := mail.ParseAddress(s); err != nil {
			c.at(path, "not an e-mail address")
		}
	case strings.TrimSpace(s) == "":
		c.at(path, "empty approver")
	}
}

// check validates an approval step.
func (a *Approval) check(c *checker, p *Policy, _ map[string]bool, ap string, _ scope) {
	c.validateApproval(p, ap, *a)
}
