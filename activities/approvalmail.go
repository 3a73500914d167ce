package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/connectors/rest"
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
	// What is asked, in words, for an approval step of a run (empty: the
	// request's group, target and duration).
	What string `json:"what,omitempty"`
}

// SendRequestMail sends one message per recipient through the policy's
// approvals.mail target. An approval mail carries a link signed with the
// key in JML_APPROVAL_KEY (this worker's memory only; never in history or
// logs) when approvals.link_url is set. Returns a note for the run.
func (a *Activities) SendRequestMail(ctx context.Context, m RequestMail) (string, error) {
	ap := a.cfg.Policy.Approvals
	if ap.Mail == "" {
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
	sent := 0
	for _, to := range m.To {
		if to.Email == "" {
			continue
		}
		subject, text, htm, err := requestMessage(m, to, key, ap.LinkURL)
		if err != nil {
			return "", permanent("ApprovalKey", err)
		}
		msg := rendered{to: []string{to.Email}, subject: subject, text: text, html: htm}
		step := PlannedStep{Name: "request.mail." + m.Kind}
		owner := fmt.Sprintf("%s/%d/%s", m.Workflow, m.Round, to.Email)
		if err := a.sendEmail(ctx, StepInput{Owner: owner, Step: step}, &policy.RESTRequest{Target: ap.Mail}, restEvent(m.Kind), msg); err != nil {
			return "", err
		}
		sent++
	}
	a.log.Info("request mail sent", zap.String("workflow", m.Workflow), zap.String("kind", m.Kind), zap.Int("recipients", sent))
	return fmt.Sprintf("%s mail sent to %d recipient(s)", m.Kind, sent), nil
}

// requestMessage renders one recipient's message; the link (when key is
// set) names the request, the round and the recipient.
func requestMessage(m RequestMail, to Approver, key []byte, base string) (subject, text, htm string, err error) {
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
		subject = fmt.Sprintf("Access request for %s: %s", what, m.Outcome)
		text = fmt.Sprintf("The request of %s (%s) for %s: %s.\nReason given: %s\n", who, r.EmployeeID, what, m.Outcome, r.Reason)
		return subject, text, "<p>" + html.EscapeString(text) + "</p>", nil
	}
	verb := "Approve"
	if m.Extension {
		verb = "Approve an extension"
	}
	switch m.Kind {
	case MailReminder:
		subject = "Reminder: "
	case MailEscalation:
		subject = "Escalated: "
	}
	subject += fmt.Sprintf("%s: %s for %s?", verb, what, who)
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) asks for %s.\nRequested by: %s\nReason: %s\n", who, r.EmployeeID, what, r.Requester, r.Reason)
	if m.Kind == MailEscalation {
		b.WriteString("You are asked because the approvers did not answer in time.\n")
	}
	link := ""
	if len(key) > 0 {
		var nonce [8]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return "", "", "", err
		}
		tok, err := approval.Sign(key, approval.Link{Workflow: m.Workflow, Round: m.Round, Approver: to.Email,
			Expires: m.Expires.Unix(), Nonce: hex.EncodeToString(nonce[:])})
		if err != nil {
			return "", "", "", err
		}
		link = strings.TrimRight(base, "/") + "/v1/approvals?t=" + url.QueryEscape(tok)
		fmt.Fprintf(&b, "\nOpen to approve or deny (single use, until %s):\n%s\n", m.Expires.UTC().Format("2006-01-02 15:04 MST"), link)
	}
	id, _ := strings.CutPrefix(m.Workflow, "request/")
	fmt.Fprintf(&b, "\nOr: starter approve %s --reason … · starter deny %s --reason …\n", id, id)
	text = b.String()
	htm = "<pre>" + html.EscapeString(text) + "</pre>"
	if link != "" {
		htm += `<p><a href="` + html.EscapeString(link) + `">Open the request</a></p>`
	}
	return subject, text, htm, nil
}

// restEvent gives request mails a Message-ID of their own per kind.
func restEvent(kind string) rest.Event { return rest.Event{Kind: "request." + kind} }
