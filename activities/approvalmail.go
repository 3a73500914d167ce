package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/connectors/rest"
	"github.com/jml-dev/jml/notify"
	"github.com/jml-dev/jml/policy"
)

// Kinds of request mail.
const (
	MailAsk        = "ask"        // an approver is asked
	MailReminder   = "reminder"   // an approver who has not answered, again
	MailEscalation = "escalation" // someone asked because nobody answered
	MailOutcome    = "outcome"    // the person and the requester: granted, denied, revoked, expired
)

// RequestMail is one mail of an access request.
type RequestMail struct {
	Workflow string        `json:"workflow"`
	Kind     string        `json:"kind"`
	Round    int           `json:"round,omitempty"`
	To       []Approver    `json:"to"`
	Request  AccessRequest `json:"request"`
	Person   Approver      `json:"person"`
	// Expires: links stop working then (the approval's timeout).
	Expires time.Time `json:"expires,omitzero"`
	// Outcome (MailOutcome): one line, e.g. "granted until …".
	Outcome string `json:"outcome,omitempty"`
	// Extension: the round asks to extend a grant.
	Extension bool `json:"extension,omitempty"`
	// Move: the round asks again whether a grant in force may stay after
	// the person moved (why: the attributes that changed).
	Move string `json:"move,omitempty"`
	// What is asked, in words, for an approval step of a run (empty: the
	// request's group, target and duration).
	What string `json:"what,omitempty"`
}

// SendRequestMail sends one message per recipient through the policy's
// approvals.mail target; an approver's message goes to the approvals.chat
// webhooks too. An approval message carries a link signed with the key in
// JML_APPROVAL_KEY (this worker's memory only; never in history or logs)
// when approvals.link_url is set: the mail and the chat message carry the
// same link, which answers once. Returns a note for the run.
func (a *Activities) SendRequestMail(ctx context.Context, m RequestMail) (string, error) {
	ap := a.cfg.Policy.Approvals
	chats := ap.Chat
	if m.Kind == MailOutcome {
		chats = nil // outcomes go to the person and the requester, by mail
	}
	if ap.Mail == "" && len(chats) == 0 {
		return m.Kind + " mail: no mail target (approvals.mail): not sent", nil
	}
	var key []byte
	if m.Kind != MailOutcome && ap.LinkURL != "" {
		k, err := approval.Key(a.getenv(approval.KeyEnv))
		if err != nil {
			return "", permanent("ApprovalKey", err)
		}
		key = k
	}
	sent, posted := 0, 0
	var chatErrs []string
	for _, to := range m.To {
		if to.Email == "" {
			continue
		}
		msg, err := requestMessage(m, to, key, ap.LinkURL)
		if err != nil {
			return "", permanent("ApprovalKey", err)
		}
		if ap.Mail != "" {
			out := rendered{to: []string{to.Email}, subject: msg.subject, text: msg.text, html: msg.html}
			step := PlannedStep{Name: "request.mail." + m.Kind}
			owner := fmt.Sprintf("%s/%d/%s", m.Workflow, m.Round, to.Email)
			if err := a.sendEmail(ctx, StepInput{Owner: owner, Step: step}, &policy.RESTRequest{Target: ap.Mail}, restEvent(m.Kind), out); err != nil {
				return "", err
			}
			sent++
		}
		for _, ch := range chats {
			if err := a.postChat(ctx, ch, msg, to); err != nil {
				// Best effort, like the mail: the approver has the mail
				// and the CLI; the run's note says what failed.
				chatErrs = append(chatErrs, ch.Channel+": "+err.Error())
				continue
			}
			posted++
		}
	}
	a.log.Info("request mail sent", zap.String("workflow", m.Workflow), zap.String("kind", m.Kind),
		zap.Int("recipients", sent), zap.Int("chat_messages", posted))
	note := fmt.Sprintf("%s mail sent to %d recipient(s)", m.Kind, sent)
	if len(chats) > 0 {
		note += fmt.Sprintf("; %d chat message(s) posted", posted)
	}
	if len(chatErrs) > 0 {
		slices.Sort(chatErrs)
		note += "; chat failed: " + strings.Join(slices.Compact(chatErrs), "; ")
	}
	return note, nil
}

// postChat posts an approver's message to a chat webhook: the same text
// and link as the mail, addressed to the approver (the link acts as them).
func (a *Activities) postChat(ctx context.Context, ch policy.ApprovalChat, msg requestMsg, to Approver) error {
	u := a.getenv(ch.URLEnv)
	if u == "" {
		return fmt.Errorf("environment variable %s (url_env) is empty or unset", ch.URLEnv)
	}
	c := notify.Chat{Title: msg.subject, Text: "For " + to.Email + ":\n" + msg.body, Link: msg.link}
	if msg.link != "" {
		c.LinkText = "Approve or deny (" + to.Email + ")"
	}
	return notify.Webhook{HTTPClient: a.cfg.HTTPClient, AllowInsecureLoopback: a.cfg.AllowInsecureLoopback}.Post(ctx, ch.Channel, u, c)
}

// requestMsg is one recipient's rendered message: body is the text
// without the link, for chat, which shows the link as a button.
type requestMsg struct {
	subject, text, html, body, link string
}

// requestMessage renders one recipient's message; the link (when key is
// set) names the request, the round and the recipient.
func requestMessage(m RequestMail, to Approver, key []byte, base string) (requestMsg, error) {
	var out requestMsg
	r := m.Request
	who := m.Person.Name
	if who == "" {
		who = r.EmployeeID
	}
	what := fmt.Sprintf("group %s in %s for %s", r.Group, r.Target, r.For)
	if m.What != "" {
		what = m.What
	}
	if m.Kind == MailOutcome {
		out.subject = fmt.Sprintf("Access request for %s: %s", what, m.Outcome)
		out.text = fmt.Sprintf("The request of %s (%s) for %s: %s.\nReason given: %s\n", who, r.EmployeeID, what, m.Outcome, r.Reason)
		out.body, out.html = out.text, "<p>"+html.EscapeString(out.text)+"</p>"
		return out, nil
	}
	verb := "Approve"
	switch {
	case m.Move != "":
		verb = "Approve again after a move"
	case m.Extension:
		verb = "Approve an extension"
	}
	switch m.Kind {
	case MailReminder:
		out.subject = "Reminder: "
	case MailEscalation:
		out.subject = "Escalated: "
	}
	out.subject += fmt.Sprintf("%s: %s for %s?", verb, what, who)
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) asks for %s.\nRequested by: %s\nReason: %s\n", who, r.EmployeeID, what, r.Requester, r.Reason)
	if m.Move != "" {
		fmt.Fprintf(&b, "The access is granted and the person has %s: may they keep it? Denied or unanswered, it is revoked.\n", m.Move)
	}
	if m.Kind == MailEscalation {
		b.WriteString("You are asked because the approvers did not answer in time.\n")
	}
	id, _ := strings.CutPrefix(m.Workflow, "request/")
	cli := fmt.Sprintf("\nOr: starter approve %s --reason … · starter deny %s --reason …\n", id, id)
	out.body = b.String() + cli
	if len(key) > 0 {
		var nonce [8]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return out, err
		}
		tok, err := approval.Sign(key, approval.Link{Workflow: m.Workflow, Round: m.Round, Approver: to.Email,
			Expires: m.Expires.Unix(), Nonce: hex.EncodeToString(nonce[:])})
		if err != nil {
			return out, err
		}
		out.link = strings.TrimRight(base, "/") + "/v1/approvals?t=" + url.QueryEscape(tok)
		fmt.Fprintf(&b, "\nOpen to approve or deny (single use, until %s):\n%s\n", m.Expires.UTC().Format("2006-01-02 15:04 MST"), out.link)
	}
	out.text = b.String() + cli
	out.html = "<pre>" + html.EscapeString(out.text) + "</pre>"
	if out.link != "" {
		out.html += `<p><a href="` + html.EscapeString(out.link) + `">Open the request</a></p>`
	}
	return out, nil
}

// restEvent gives request mails a Message-ID of their own per kind.
func restEvent(kind string) rest.Event { return rest.Event{Kind: "request." + kind} }
