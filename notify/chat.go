package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
)

// Channels of a notify step.
const (
	ChannelWebhook = "webhook" // a REST request (connectors/rest), today's notify
	ChannelEmail   = "email"
	ChannelSlack   = "slack"
	ChannelTeams   = "teams"
)

// Chat is one rendered chat message.
type Chat struct {
	// Title is an optional bold first line (Teams: a large TextBlock).
	Title string
	// Text is the message (plain text; chat markup is escaped).
	Text string
	// Link, when set, is shown as a button/link LinkText (default "Open
	// in Temporal UI").
	Link, LinkText string
	// Secret: the message carries a secret (refused without TLS).
	Secret bool
}

// SlackPayload is a Slack incoming-webhook message
// (https://api.slack.com/messaging/webhooks): "text" is the notification
// fallback, "blocks" the layout; &, < and > are escaped as Slack asks.
func SlackPayload(m Chat) []byte {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
	text := esc(m.Text)
	if m.Title != "" {
		text = "*" + esc(m.Title) + "*\n" + text
	}
	type textObj struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string    `json:"type"`
		Text     *textObj  `json:"text,omitempty"`
		Elements []textObj `json:"elements,omitempty"`
	}
	fallback := text
	label := linkText(m)
	blocks := []block{{Type: "section", Text: &textObj{Type: "mrkdwn", Text: text}}}
	if m.Link != "" {
		blocks = append(blocks, block{Type: "context", Elements: []textObj{{Type: "mrkdwn", Text: "<" + m.Link + "|" + esc(label) + ">"}}})
	}
	b, _ := json.Marshal(struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{fallback, blocks})
	return b
}

// TeamsPayload is a Microsoft Teams incoming-webhook message carrying an
// Adaptive Card (the format Teams Workflows "post to a channel when a
// webhook request is received" and incoming webhooks accept):
// {"type":"message","attachments":[{"contentType":
// "application/vnd.microsoft.card.adaptive","content":{AdaptiveCard}}]}.
func TeamsPayload(m Chat) []byte {
	body := []map[string]any{}
	if m.Title != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": m.Title, "weight": "Bolder", "size": "Medium", "wrap": true})
	}
	body = append(body, map[string]any{"type": "TextBlock", "text": m.Text, "wrap": true})
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
	}
	if m.Link != "" {
		card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": linkText(m), "url": m.Link}}
	}
	b, _ := json.Marshal(map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	})
	return b
}

func linkText(m Chat) string {
	if m.LinkText != "" {
		return m.LinkText
	}
	return "Open in Temporal UI"
}

// Webhook posts chat messages to incoming-webhook URLs. The URL is a
// secret (it carries the webhook's token): it never appears in errors.
type Webhook struct {
	HTTPClient *http.Client // nil: a client with a 30 s timeout
	// AllowInsecureLoopback lets a message go to http://127.0.0.1 (tests).
	AllowInsecureLoopback bool
}

// Post sends the channel's payload of m to rawURL.
func (w Webhook) Post(ctx context.Context, channel, rawURL string, m Chat) error {
	var payload []byte
	switch channel {
	case ChannelSlack:
		payload = SlackPayload(m)
	case ChannelTeams:
		payload = TeamsPayload(m)
	default:
		return connectors.Permanentf(ErrTypeInvalid, "channel %q: want slack or teams", channel)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return connectors.Permanentf(ErrTypeInvalid, "%s webhook: not an absolute URL", channel)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && w.AllowInsecureLoopback && isLoopback(u.Hostname())) {
		// A webhook URL is a credential: it never travels in clear text.
		return connectors.Permanentf(ErrTypeInsecure, "%s webhook: https required", channel)
	}
	hc := w.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return connectors.Permanentf(ErrTypeInvalid, "%s webhook: bad request", channel)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		// (A webhook URL is a credential.)
		return connectors.Transient(fmt.Errorf("%s webhook %s: %v", channel, u.Host, connectors.WithoutURL(err)))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	summary := strings.TrimSpace(string(body))
	if len(summary) > 200 {
		summary = summary[:200] + "…"
	}
	v := connectors.Classify(resp.StatusCode, resp.Header, time.Now())
	if v.Class == connectors.ClassOK {
		return nil
	}
	// A webhook that is not found is refused, not a lookup's answer.
	return connectors.HTTPError(v, map[connectors.Class]string{connectors.ClassNotFound: ErrTypeRejected}, ErrTypeRejected,
		fmt.Errorf("%s webhook %s: %d %s", channel, u.Host, resp.StatusCode, summary))
}
