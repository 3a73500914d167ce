package audit

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Timeline orders a person's records as they happened: by time, then,
// within one run, in the order the run decided them (the key's step and
// index: a run's last step and its end share an instant, and their
// records may reach the store in either order), then chain order.
func Timeline(recs []Record) []Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b Record) int {
		an, ai := keyOrder(a.Key)
		bn, bi := keyOrder(b.Key)
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.WorkflowID, b.WorkflowID), cmp.Compare(a.RunID, b.RunID),
			cmp.Compare(an, bn), cmp.Compare(ai, bi), cmp.Compare(a.Seq, b.Seq))
	})
	return out
}

// keyOrder is the step and index of a run's record key
// (<workflow ID>/<run ID>/<n>/<i>); -1, -1 for another key.
func keyOrder(key string) (n, i int) {
	parts := strings.Split(key, "/")
	if len(parts) < 4 {
		return -1, -1
	}
	n, err1 := strconv.Atoi(parts[len(parts)-2])
	i, err2 := strconv.Atoi(parts[len(parts)-1])
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return n, i
}

// Account states in the leavers report.
const (
	LeaverDisabled    = "disabled"
	LeaverDeleted     = "deleted"
	LeaverAbsent      = "absent" // no account found in the target
	LeaverStillActive = "still active"
	LeaverRehired     = "rehired" // a later hire re-enabled it before it was disabled
)

// LeaverAccount is one account of a terminated person.
type LeaverAccount struct {
	EmployeeID string    `json:"employee_id"`
	Target     string    `json:"target"`
	AccountID  string    `json:"account_id,omitempty"`
	Identifier string    `json:"identifier,omitempty"`
	State      string    `json:"state"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	// Latency is from the HR effective time to the record of the account
	// read back disabled (or deleted).
	Latency time.Duration `json:"latency_ns,omitempty"`
	Breach  bool          `json:"breach"`
}

// Termination is one leaver event and what became of each account.
type Termination struct {
	EmployeeID  string          `json:"employee_id"`
	EventID     string          `json:"event_id"`
	EffectiveAt time.Time       `json:"effective_at"`
	WorkflowID  string          `json:"workflow_id"`
	Accounts    []LeaverAccount `json:"accounts"`
}

// LeaversReport answers "was every leaver's access removed within the
// SLA of the termination?".
type LeaversReport struct {
	Since        time.Time       `json:"since"`
	SLA          time.Duration   `json:"sla_ns"`
	Terminations []Termination   `json:"terminations"`
	Accounts     int             `json:"accounts"`
	Done         int             `json:"done"`
	P50          time.Duration   `json:"p50_ns"`
	P95          time.Duration   `json:"p95_ns"`
	Max          time.Duration   `json:"max_ns"`
	Breaches     []LeaverAccount `json:"breaches"`
	StillActive  []LeaverAccount `json:"still_active"`
}

// Leavers computes the leavers report from the trail: each leaver run started for an event effective at or
// after since, the accounts the person had then (created, adopted or
// linked before, not deleted), and for each the first record that it read
// back disabled or deleted. now decides whether an account still active
// is past its SLA.
func Leavers(recs []Record, since time.Time, sla time.Duration, now time.Time) LeaversReport {
	// A run's records land in the order the store takes them, which a
	// store outage can shuffle: what happened first is told by Time.
	recs = Timeline(recs)
	rep := LeaversReport{Since: since, SLA: sla, Breaches: []LeaverAccount{}, StillActive: []LeaverAccount{}, Terminations: []Termination{}}
	var lat []time.Duration
	for i, start := range recs {
		if start.Action != RunStarted || start.Kind != "leaver" || start.EffectiveAt.Before(since) {
			continue
		}
		t := Termination{EmployeeID: start.EmployeeID, EventID: start.EventID, EffectiveAt: start.EffectiveAt, WorkflowID: start.WorkflowID}
		// The person's accounts when the termination started.
		type acct struct{ id, ident string }
		known := map[string]acct{}
		var order []string
		see := func(target, id, ident string) {
			if _, ok := known[target]; !ok {
				order = append(order, target)
			}
			known[target] = acct{cmp.Or(id, known[target].id), cmp.Or(ident, known[target].ident)}
		}
		for _, r := range recs[:i] {
			if r.EmployeeID != start.EmployeeID || r.Target == "" {
				continue
			}
			switch r.Action {
			case AccountCreated, AccountAdopted, AccountLinked:
				see(r.Target, r.AccountID, r.Detail)
			case AccountDeleted:
				delete(known, r.Target)
				order = slices.DeleteFunc(order, func(s string) bool { return s == r.Target })
			}
		}
		// Accounts the leaver run itself found.
		for _, r := range recs[i+1:] {
			if r.WorkflowID == start.WorkflowID && r.Target != "" &&
				(r.Action == AccountDisabled || r.Action == AccountDeleted || r.Action == AccountAbsent) {
				see(r.Target, r.AccountID, "")
			}
		}
		for _, target := range order {
			a := LeaverAccount{EmployeeID: start.EmployeeID, Target: target, AccountID: known[target].id, Identifier: identifierOf(known[target].ident), State: LeaverStillActive}
		scan:
			for _, r := range recs[i+1:] {
				if r.EmployeeID != start.EmployeeID {
					continue
				}
				switch {
				case r.Action == RunStarted && r.Kind == "joiner":
					a.State = LeaverRehired
					break scan
				case r.Target != target:
				case r.Verified && (r.Action == AccountDisabled || r.Action == AccountDeleted):
					a.State, a.DoneAt = LeaverDisabled, r.Time
					if r.Action == AccountDeleted {
						a.State = LeaverDeleted
					}
					a.Latency = max(r.Time.Sub(start.EffectiveAt), 0)
					break scan
				case r.Action == AccountAbsent && r.WorkflowID == start.WorkflowID:
					a.State, a.DoneAt = LeaverAbsent, r.Time
					break scan
				}
			}
			switch a.State {
			case LeaverDisabled, LeaverDeleted:
				rep.Done++
				lat = append(lat, a.Latency)
				a.Breach = a.Latency > sla
			case LeaverStillActive:
				a.Breach = now.Sub(start.EffectiveAt) > sla
				rep.StillActive = append(rep.StillActive, a)
			}
			if a.Breach {
				rep.Breaches = append(rep.Breaches, a)
			}
			rep.Accounts++
			t.Accounts = append(t.Accounts, a)
		}
		rep.Terminations = append(rep.Terminations, t)
	}
	slices.Sort(lat)
	rep.P50, rep.P95 = percentile(lat, 0.50), percentile(lat, 0.95)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
	return rep
}

// identifierOf is the identifier a sync step's record names in its
// detail ("…; identifier jdoe@example.com").
func identifierOf(detail string) string {
	const p = "identifier "
	for i := len(detail) - len(p); i >= 0; i-- {
		if detail[i:i+len(p)] == p {
			return detail[i+len(p):]
		}
	}
	return ""
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(k, 0)]
}

// Grant is one group membership change in the access report.
type Grant struct {
	Time       time.Time `json:"time"`
	Action     string    `json:"action"` // group.added | group.removed
	EmployeeID string    `json:"employee_id"`
	AccountID  string    `json:"account_id"`
	EventID    string    `json:"event_id,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Actor      string    `json:"actor"`
	Reason     string    `json:"reason,omitempty"`
	WorkflowID string    `json:"workflow_id,omitempty"`
	Seq        int64     `json:"seq"`
}

// Access lists who was added to and removed from a group, when, and by
// which event (Kind, EventID) or operator (Actor, Reason). An operator's
// decision that led to a change (a retry of the step) is the actor of it.
func Access(recs []Record, group, target string) []Grant {
	out := []Grant{}
	// The operator decision on the step before its change, by run/step.
	decided := map[string]Record{}
	for _, r := range recs {
		if r.Action == OperatorRetry || r.Action == OperatorRelease {
			decided[r.WorkflowID+"\x00"+r.Step] = r
		}
		if r.Group != group || r.Target != target || r.Action != GroupAdded && r.Action != GroupRemoved {
			continue
		}
		g := Grant{Time: r.Time, Action: r.Action, EmployeeID: r.EmployeeID, AccountID: r.AccountID, EventID: r.EventID,
			Kind: r.Kind, Actor: r.Actor, Reason: r.Reason, WorkflowID: r.WorkflowID, Seq: r.Seq}
		if d, ok := decided[r.WorkflowID+"\x00"+r.Step]; ok {
			g.Actor, g.Reason = d.Actor, cmp.Or(d.Reason, d.Action)
		}
		out = append(out, g)
	}
	return sortGrants(out)
}

// sortGrants orders grants by time, then chain order.
func sortGrants(gs []Grant) []Grant {
	slices.SortStableFunc(gs, func(a, b Grant) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq)) })
	return gs
}
