package notify_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/internal/peertest"
	"github.com/jml-dev/jml/notify"
	"github.com/jml-dev/jml/notify/chattest"
	"github.com/jml-dev/jml/notify/smtptest"
)

const pw = "Tmp-9f!Qz#r2Lk8wX"

func welcome() notify.Email {
	return notify.Email{
		From: "jml <jml@acme.test>", To: []string{"boss@acme.test"}, Cc: []string{"it@acme.test"},
		Subject:   "Account for Ada Lovelace",
		Text:      "Ada's first password: " + pw + "\n",
		HTML:      "<p>Ada&#39;s first password: <code>" + pw + "</code></p>",
		MessageID: "joiner.E1.welcome@jml.acme.test",
		Secret:    true,
	}
}

func server(s *smtptest.Server) notify.SMTP {
	return notify.SMTP{Host: s.Host, Port: s.Port, Username: "jml", Password: "smtp-secret", TLSConfig: s.TLSConfig(), Timeout: 5 * time.Second}
}

func TestEmailSTARTTLSAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "jml", Password: "smtp-secret"})
	require.NoError(t, server(s).Send(context.Background(), welcome()))
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.True(t, m.TLS, "sent after STARTTLS")
	assert.Equal(t, "jml", m.Auth)
	assert.Equal(t, "jml@acme.test", m.From)
	assert.ElementsMatch(t, []string{"boss@acme.test", "it@acme.test"}, m.To)
	p, err := smtptest.Parse(m.Data)
	require.NoError(t, err)
	assert.Equal(t, "multipart/alternative", p.ContentType)
	assert.Equal(t, "<joiner.E1.welcome@jml.acme.test>", p.Header.Get("Message-ID"))
	assert.Equal(t, "Account for Ada Lovelace", p.Header.Get("Subject"))
	assert.Contains(t, p.Text, "first password: "+pw)
	assert.Contains(t, p.HTML, "<code>"+pw+"</code>")
}

func TestEmailImplicitTLS(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.Implicit, Username: "jml", Password: "smtp-secret"})
	c := server(s)
	c.TLS = notify.TLSImplicit
	require.NoError(t, c.Send(context.Background(), welcome()))
	require.Len(t, s.Messages(), 1)
	assert.True(t, s.Messages()[0].TLS)
}

// A server that offers no STARTTLS: refused before MAIL FROM, with an
// error that says so and is not retried.
func TestEmailNoSTARTTLSRefused(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.None, Username: "jml", Password: "smtp-secret"})
	err := server(s).Send(context.Background(), welcome())
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err))
	assert.Contains(t, err.Error(), "does not offer STARTTLS")
	assert.Contains(t, err.Error(), "nothing was sent")
	assert.NotContains(t, err.Error(), pw)
	_, mailFrom := s.Counts()
	assert.Zero(t, mailFrom)
	assert.Empty(t, s.Messages())
}

// tls: none sends mail without a secret, refuses one with a secret
// (loopback allowed only when the worker says so).
func TestEmailNoTLS(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.None})
	c := notify.SMTP{Host: s.Host, Port: s.Port, TLS: notify.TLSNone, Timeout: 5 * time.Second}
	m := welcome()
	err := c.Send(context.Background(), m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "carries a password")
	assert.Empty(t, s.Messages())

	m.Secret, m.Text, m.HTML = false, "run completed", ""
	require.NoError(t, c.Send(context.Background(), m))
	p, err := smtptest.Parse(s.Messages()[0].Data)
	require.NoError(t, err)
	assert.Equal(t, "text/plain", p.ContentType)
	assert.Equal(t, "run completed", strings.TrimSpace(p.Text))

	c.AllowInsecureLoopback = true
	require.NoError(t, c.Send(context.Background(), welcome()))
}

func TestEmailServerDownIsTransient(t *testing.T) {
	port := peertest.FreePort(t) // nothing listens: the mail server is down
	err := notify.SMTP{Host: "127.0.0.1", Port: port, Timeout: 2 * time.Second}.Send(context.Background(), welcome())
	require.Error(t, err)
	assert.False(t, connectors.IsPermanent(err))
	assert.Contains(t, err.Error(), "connection refused")
}

func TestEmailBadCredentialsPermanent(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "jml", Password: "smtp-secret"})
	c := server(s)
	c.Password = "wrong"
	err := c.Send(context.Background(), welcome())
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err), err.Error())
	assert.Empty(t, s.Messages())
}

func TestEmailUntrustedCertificate(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "jml", Password: "smtp-secret"})
	c := server(s)
	c.TLSConfig = nil // system roots do not know the test CA
	err := c.Send(context.Background(), welcome())
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err), err.Error())
	assert.Empty(t, s.Messages())
}

// chatServer records what a Slack or Teams incoming webhook receives.
func chatServer(t *testing.T, status int) (*chattest.Server, func() []map[string]any) {
	srv := chattest.Start(t, status)
	return srv, srv.Messages
}

func TestSlackPayload(t *testing.T) {
	srv, got := chatServer(t, http.StatusOK)
	w := notify.Webhook{HTTPClient: srv.Client()}
	m := notify.Chat{Title: "joiner E1 needs attention", Text: "step okta.sync_identity failed: <400> & more", Link: "http://127.0.0.1:8233/namespaces/default/workflows/joiner%2FE1"}
	require.NoError(t, w.Post(context.Background(), notify.ChannelSlack, srv.URL+"/services/T0/B0/XXXX", m))
	require.Len(t, got(), 1)
	v := got()[0]
	// https://api.slack.com/messaging/webhooks: text (fallback) + blocks.
	assert.Equal(t, "*joiner E1 needs attention*\nstep okta.sync_identity failed: &lt;400&gt; &amp; more", v["text"])
	blocks := v["blocks"].([]any)
	require.Len(t, blocks, 2)
	sec := blocks[0].(map[string]any)
	assert.Equal(t, "section", sec["type"])
	assert.Equal(t, "mrkdwn", sec["text"].(map[string]any)["type"])
	ctxb := blocks[1].(map[string]any)
	assert.Equal(t, "context", ctxb["type"])
	assert.Equal(t, "<"+m.Link+"|Open in Temporal UI>", ctxb["elements"].([]any)[0].(map[string]any)["text"])
}

func TestTeamsPayload(t *testing.T) {
	srv, got := chatServer(t, http.StatusAccepted)
	w := notify.Webhook{HTTPClient: srv.Client()}
	m := notify.Chat{Title: "joiner E1 completed", Text: "Ada Lovelace has her accounts.", Link: "https://temporal.acme.test/x"}
	require.NoError(t, w.Post(context.Background(), notify.ChannelTeams, srv.URL+"/webhookb2/abc", m))
	require.Len(t, got(), 1)
	v := got()[0]
	assert.Equal(t, "message", v["type"])
	att := v["attachments"].([]any)
	require.Len(t, att, 1)
	a := att[0].(map[string]any)
	assert.Equal(t, "application/vnd.microsoft.card.adaptive", a["contentType"])
	assert.Contains(t, a, "contentUrl")
	card := a["content"].(map[string]any)
	assert.Equal(t, "AdaptiveCard", card["type"])
	assert.Equal(t, "http://adaptivecards.io/schemas/adaptive-card.json", card["$schema"])
	assert.Equal(t, "1.4", card["version"])
	body := card["body"].([]any)
	require.Len(t, body, 2)
	assert.Equal(t, "TextBlock", body[0].(map[string]any)["type"])
	assert.Equal(t, "joiner E1 completed", body[0].(map[string]any)["text"])
	assert.Equal(t, "Ada Lovelace has her accounts.", body[1].(map[string]any)["text"])
	act := card["actions"].([]any)[0].(map[string]any)
	assert.Equal(t, "Action.OpenUrl", act["type"])
	assert.Equal(t, m.Link, act["url"])
}

func TestWebhookErrors(t *testing.T) {
	srv, _ := chatServer(t, http.StatusForbidden)
	w := notify.Webhook{HTTPClient: srv.Client()}
	secretURL := srv.URL + "/services/T0/B0/sekrit-token"
	err := w.Post(context.Background(), notify.ChannelSlack, secretURL, notify.Chat{Text: "x"})
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err))
	assert.NotContains(t, err.Error(), "sekrit-token")

	srv5, _ := chatServer(t, http.StatusBadGateway)
	err = notify.Webhook{HTTPClient: srv5.Client()}.Post(context.Background(), notify.ChannelTeams, srv5.URL+"/x", notify.Chat{Text: "x"})
	require.Error(t, err)
	assert.False(t, connectors.IsPermanent(err))

	err = w.Post(context.Background(), notify.ChannelSlack, "http://hooks.slack.example/services/T0/B0/sekrit-token", notify.Chat{Text: "x"})
	require.Error(t, err)
	assert.True(t, connectors.IsPermanent(err))
	assert.NotContains(t, err.Error(), "sekrit-token")
}
