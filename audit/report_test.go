package audit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/audit"
)

var t0 = time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// trail builds records in chain order; seq follows the slice.
func trail(recs ...audit.Record) []audit.Record {
	for i := range recs {
		recs[i].Seq = int64(i + 1)
	}
	return recs
}

func TestLeavers(t *testing.T) {
	hire := func(emp, acct string, when time.Duration) audit.Record {
		return audit.Record{Time: at(when), EmployeeID: emp, Action: audit.AccountCreated, Target: "okta", AccountID: acct,
			Detail: "account created; identifier " + emp + "@acme.test", WorkflowID: "joiner/" + emp}
	}
	term := func(emp string, when time.Duration) audit.Record {
		return audit.Record{Time: at(when), EmployeeID: emp, Action: audit.RunStarted, Kind: "leaver", EffectiveAt: t0,
			EventID: emp + "-term", WorkflowID: "leaver/" + emp}
	}
	disabled := func(emp, acct string, when time.Duration, verified bool) audit.Record {
		return audit.Record{Time: at(when), EmployeeID: emp, Action: audit.AccountDisabled, Target: "okta", AccountID: acct,
			Verified: verified, WorkflowID: "leaver/" + emp}
	}
	recs := trail(
		hire("A", "a1", -48*time.Hour), hire("B", "b1", -48*time.Hour), hire("C", "c1", -48*time.Hour), hire("D", "d1", -48*time.Hour),
		// A's disable landed in the store before its run.started (an
		// outage shuffles chain order): time decides.
		disabled("A", "a1", 10*time.Minute, true), term("A", time.Minute),
		term("B", time.Minute), disabled("B", "b1", 30*time.Hour, true),
		// C: a disable that did not read back is not done.
		term("C", time.Minute), disabled("C", "c1", 2*time.Minute, false),
		// D: rehired before anything was disabled.
		term("D", time.Minute), audit.Record{Time: at(time.Hour), EmployeeID: "D", Action: audit.RunStarted, Kind: "joiner"},
	)
	rep := audit.Leavers(recs, t0.Add(-time.Hour), 24*time.Hour, at(72*time.Hour))
	require.Len(t, rep.Terminations, 4)
	assert.Equal(t, 4, rep.Accounts)
	assert.Equal(t, 2, rep.Done)
	assert.Equal(t, 10*time.Minute, rep.P50)
	assert.Equal(t, 30*time.Hour, rep.P95)
	assert.Equal(t, 30*time.Hour, rep.Max)
	states := map[string]string{}
	for _, tm := range rep.Terminations {
		states[tm.EmployeeID] = tm.Accounts[0].State
	}
	assert.Equal(t, map[string]string{"A": audit.LeaverDisabled, "B": audit.LeaverDisabled, "C": audit.LeaverStillActive, "D": audit.LeaverRehired}, states)
	require.Len(t, rep.StillActive, 1)
	assert.Equal(t, "C", rep.StillActive[0].EmployeeID)
	assert.Equal(t, "C@acme.test", rep.StillActive[0].Identifier)
	var breaches []string
	for _, b := range rep.Breaches {
		breaches = append(breaches, b.EmployeeID)
	}
	assert.ElementsMatch(t, []string{"B", "C"}, breaches, "B took 30h; C is still active 72h after")

	// Terminations before since are not in the report.
	assert.Empty(t, audit.Leavers(recs, t0.Add(time.Hour), 24*time.Hour, at(72*time.Hour)).Terminations)
}

func TestAccessNamesEventOrOperator(t *testing.T) {
	recs := trail(
		audit.Record{Time: at(0), EmployeeID: "A", Action: audit.GroupAdded, Group: "admins", Target: "okta", AccountID: "a1",
			Kind: "joiner", EventID: "A-hire", Actor: audit.ActorJML, WorkflowID: "joiner/A", Step: "okta.groups"},
		audit.Record{Time: at(time.Minute), EmployeeID: "B", Action: audit.OperatorRetry, Actor: "alice", Reason: "fixed the group",
			WorkflowID: "joiner/B", Step: "okta.groups"},
		audit.Record{Time: at(2 * time.Minute), EmployeeID: "B", Action: audit.GroupAdded, Group: "admins", Target: "okta", AccountID: "b1",
			Kind: "joiner", EventID: "B-hire", Actor: audit.ActorJML, WorkflowID: "joiner/B", Step: "okta.groups"},
		audit.Record{Time: at(3 * time.Minute), EmployeeID: "C", Action: audit.GroupAdded, Group: "admins", Target: "entra"},
		audit.Record{Time: at(4 * time.Minute), EmployeeID: "A", Action: audit.GroupRemoved, Group: "admins", Target: "okta", AccountID: "a1",
			Kind: "leaver", EventID: "A-term", Actor: audit.ActorJML, WorkflowID: "leaver/A"},
	)
	gs := audit.Access(recs, "admins", "okta")
	require.Len(t, gs, 3)
	assert.Equal(t, []string{"A", "B", "A"}, []string{gs[0].EmployeeID, gs[1].EmployeeID, gs[2].EmployeeID})
	assert.Equal(t, "A-hire", gs[0].EventID)
	assert.Equal(t, audit.ActorJML, gs[0].Actor)
	assert.Equal(t, "alice", gs[1].Actor, "the operator whose retry made the change")
	assert.Equal(t, "fixed the group", gs[1].Reason)
	assert.Equal(t, audit.GroupRemoved, gs[2].Action)
}

func TestChainNamesFirstBadRecord(t *testing.T) {
	var recs []audit.Record
	prev := ""
	for i := range 4 {
		r := audit.Record{Seq: int64(i + 1), Key: string(rune('a' + i)), Time: at(time.Duration(i) * time.Second), Action: audit.GroupAdded, PrevHash: prev}
		r.Hash = r.ComputeHash()
		prev = r.Hash
		recs = append(recs, r)
	}
	check := func(recs []audit.Record) *audit.Break {
		c := audit.NewChain("", 0)
		for _, r := range recs {
			if b := c.Next(r); b != nil {
				return b
			}
		}
		return nil
	}
	assert.Nil(t, check(recs))
	edited := append([]audit.Record(nil), recs...)
	edited[2].AccountID = "x"
	assert.Equal(t, int64(3), check(edited).Seq)
	swapped := []audit.Record{recs[0], recs[2], recs[1], recs[3]}
	assert.Equal(t, int64(3), check(swapped).Seq)
}

// A run's last step and its end share an instant and may reach the store
// in either order: the timeline follows the run's own order.
func TestTimelineRunOrderAtOneInstant(t *testing.T) {
	const wf, run = "joiner/E1/ev1", "r1"
	rec := func(action, key string, d time.Duration) audit.Record {
		return audit.Record{Action: action, Key: wf + "/" + run + "/" + key, WorkflowID: wf, RunID: run, Time: at(d)}
	}
	got := audit.Timeline(trail(
		rec(audit.RunStarted, "1/0", 0),
		rec(audit.RunCompleted, "4/0", time.Second), // stored first
		rec(audit.GroupAdded, "3/0", time.Second),
		rec(audit.GroupAdded, "3/1", time.Second),
	))
	var actions []string
	for _, r := range got {
		actions = append(actions, r.Action+" "+r.Key[len(wf)+len(run)+2:])
	}
	assert.Equal(t, []string{"run.started 1/0", "group.added 3/0", "group.added 3/1", "run.completed 4/0"}, actions)
}
