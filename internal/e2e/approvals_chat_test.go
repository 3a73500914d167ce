package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/notify/chattest"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/workflows"
)

// TestAccessRequestAskedInChat: the approver's message goes to the Slack
// and Teams webhooks of approvals.chat besides the mail, each carrying
// the mail's signed link; the link taken from Slack approves (granted at
// SCIMMY), after which the same link from the mail is refused as used.
func TestAccessRequestAskedInChat(t *testing.T) {
	slack, teams := chattest.Start(t, http.StatusOK), chattest.Start(t, http.StatusAccepted)
	s := newApprovalStack(t, policy.Approval{Approvers: []string{"manager"}, Timeout: "2m"})
	s.policy.Approvals.Chat = []policy.ApprovalChat{{Channel: policy.ChannelSlack, URLEnv: "APPROVALS_SLACK_URL"},
		{Channel: policy.ChannelTeams, URLEnv: "APPROVALS_TEAMS_URL"}}
	slackURL, teamsURL := slack.URL+"/services/T0/B0/slack-hook-secret", teams.URL+"/webhookb2/teams-hook-secret"
	s.env = map[string]string{"APPROVALS_SLACK_URL": slackURL, "APPROVALS_TEAMS_URL": teamsURL}
	s.startWorker(t)
	s.people(t, "prod-admin")

	s.request(t, "chat1", "group:prod-admin@app", "1h")
	mailLink := link(t, s.waitMail(t, "grace@acme.test", "Approve", 1)[0])
	require.Eventually(t, func() bool { return len(slack.Messages()) == 1 && len(teams.Messages()) == 1 }, time.Minute, 50*time.Millisecond)

	// Slack: text + blocks, the link as <url|label>.
	sm := slack.Messages()[0]
	assert.Contains(t, sm["text"], "prod-admin")
	assert.Contains(t, sm["text"], "For grace@acme.test")
	blocks := sm["blocks"].([]any)
	require.Len(t, blocks, 2)
	button := blocks[1].(map[string]any)["elements"].([]any)[0].(map[string]any)["text"].(string)
	assert.Equal(t, "<"+mailLink+"|Approve or deny (grace@acme.test)>", button, "the mail's link")
	slackLink := strings.TrimSuffix(strings.TrimPrefix(button, "<"), "|Approve or deny (grace@acme.test)>")
	// Teams: an Adaptive Card whose action opens the same link.
	card := teams.Messages()[0]["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)
	act := card["actions"].([]any)[0].(map[string]any)
	assert.Equal(t, "Action.OpenUrl", act["type"])
	assert.Equal(t, mailLink, act["url"])

	st := s.status(t, "chat1")
	assert.Contains(t, st.Mails[0], "2 chat message(s) posted")

	code, page := s.answer(t, tokenOf(t, slackLink), "approve", "from Slack")
	require.Equal(t, http.StatusOK, code, page)
	require.Eventually(t, func() bool { return s.memberOf(t, "E1", "prod-admin") }, time.Minute, 50*time.Millisecond)
	st = s.waitRequest(t, "chat1", func(st workflows.RequestStatus) bool { return st.State == contract.StateGranted })
	assert.Equal(t, "link", st.Decisions[0].Via)
	code, _ = s.answer(t, tokenOf(t, mailLink), "approve", "again, from the mail")
	assert.Equal(t, http.StatusConflict, code, "one link, used once, whichever channel carried it")
	s.assertNoSecrets(t, []string{approvalKey, tokenOf(t, mailLink), "slack-hook-secret", "teams-hook-secret"})
}
