// Package simulate is the population dry run (Veza's DRY_RUN policies,
// midPoint's simulations): it evaluates a policy for every person of an
// HR export and reports what the runs would do, step by step, and the
// conflicts that would stop them — two people rendering the same unique
// identifier, NEXT_NUMBER exhausted, required attributes missing, unique
// identifiers no account can have. Against an older policy it reports only
// what the change alters. It is evaluation only: no target is asked, so
// accounts that already exist in a target are not known (a value taken
// there would go to the fallbacks at run time).
package simulate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// Kinds of effect a step has on a target.
const (
	Create      = activities.EffectCreate
	Update      = activities.EffectUpdate
	GroupAdd    = activities.EffectGroupAdd
	GroupRemove = activities.EffectGroupRemove
	Disable     = activities.EffectDisable
	Delete      = activities.EffectDelete
	Other       = activities.EffectOther // reset_password, send_rest_request, notify, create_entitlement
	// Dropped is, with Against, an effect the old policy had and the new
	// one no longer has (an account no longer created, a group no longer
	// granted, a leaver step removed).
	Dropped = "dropped"
)

// Kinds of conflict: each would stop a run (the step waits for an
// operator) or keep it from starting.
const (
	DuplicateIdentifier = "duplicate_identifier" // two people, one unique identifier, no fallback left
	NextNumberExhausted = "next_number_exhausted"
	MissingRequired     = "missing_required"
	InvalidIdentifier   = "invalid_identifier" // a value no account can have (".@example.com", quotes, …)
	RenderError         = "render_error"       // a template fails for this person (LOOKUP without a row, …)
	// EmployeeIDCase: the employee ID differs only by case from an earlier
	// row's (ab12345 / AB12345); the intake refuses the second as a new
	// person (docs/intake.md), so its run never starts.
	EmployeeIDCase = "employee_id_case"
)

// Row is one person of the population: an HR event (its type picks the
// flow) and where it came from. A row with Reject set is bad input.
type Row struct {
	Line   int
	Event  hr.Event
	Reject string
}

// Options of a dry run.
type Options struct {
	// Policy is the policy evaluated; Against, when set, the one it
	// replaces: only what the change alters is reported.
	Policy, Against *policy.Policy
	// Examples is how many examples each step keeps per kind (default 3).
	Examples int
	// Now is the evaluation time of rows without an effective time and of
	// {NOW} (default time.Now()).
	Now time.Time
	// Progress, when set, is called after each row with the rows done.
	Progress func(rows int)
}

// Report is the outcome of a dry run (the JSON of `starter preview
// --population --json`).
type Report struct {
	Rows     int        `json:"rows"`
	Rejected []Rejected `json:"rejected"`
	// Totals are the effects of all steps by kind.
	Totals map[string]int `json:"totals"`
	Steps  []*StepReport  `json:"steps"`
	// Resolved counts, by target, people whose first-choice identifier
	// another person of the population renders and whom a fallback serves.
	Resolved  map[string]int `json:"resolved_by_fallback,omitempty"`
	Conflicts []Conflict     `json:"conflicts"`
	// ConflictCounts are the conflicts by kind.
	ConflictCounts map[string]int `json:"conflict_counts"`
	// PreExisting counts, with Against, conflicts the old policy has too
	// (not reported one by one: the change does not cause them).
	PreExisting int `json:"pre_existing_conflicts,omitempty"`
	// Flows counts people by the flow their event runs (a kind's own flow
	// or a scoped one; NoFlow when no scope holds).
	Flows map[string]int `json:"flows"`
	// Moves are, with Against, the flows and conditional steps the change
	// moves people into or out of (a scope or a when that now holds, or no
	// longer does), in the order the rows first show them.
	Moves []Move `json:"moves,omitempty"`
}

// NoFlow is Report.Flows' key of the people no flow's scope selects.
const NoFlow = "(no flow)"

// Move is how many people a policy change moves into and out of a flow
// (Step "") or a step of it.
type Move struct {
	Flow string `json:"flow"`
	Step string `json:"step,omitempty"`
	In   int    `json:"in"`
	Out  int    `json:"out"`
}

// Rejected is a row that is not a usable HR record.
type Rejected struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// StepReport is what one step does across the population.
type StepReport struct {
	Flow   string `json:"flow"`
	Step   string `json:"step"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	// Counts by kind (create, update, group_add, …).
	Counts map[string]int `json:"counts"`
	// Attributes counts updates by attribute name.
	Attributes map[string]int `json:"attributes,omitempty"`
	// Groups counts group adds ("+name") and removes ("-name").
	Groups   map[string]int `json:"groups,omitempty"`
	Examples []Example      `json:"examples,omitempty"`
	index    int            // position in its flow, for the report's order
}

// Example is one person's effect, for the first few of each kind.
type Example struct {
	EmployeeID string `json:"employee_id"`
	Line       int    `json:"line"`
	Kind       string `json:"kind"`
	Detail     string `json:"detail"`
}

// Conflict is a problem that would stop this person's run.
type Conflict struct {
	Kind       string `json:"kind"`
	EmployeeID string `json:"employee_id"`
	Line       int    `json:"line"`
	Step       string `json:"step,omitempty"`
	Target     string `json:"target,omitempty"`
	Attribute  string `json:"attribute,omitempty"`
	Value      string `json:"value,omitempty"`
	// Other is the person who holds the value (duplicate identifiers).
	Other   string `json:"other_employee_id,omitempty"`
	Message string `json:"message"`
}

func (c Conflict) key() string {
	return c.Kind + "\x00" + c.EmployeeID + "\x00" + c.Target + "\x00" + c.Attribute
}

// Run evaluates every row. It fails only when ctx is done or a policy's
// lookup tables cannot be read; everything about the rows is in the report.
func Run(ctx context.Context, rows iter.Seq[Row], o Options) (*Report, error) {
	if o.Policy == nil {
		return nil, errors.New("simulate: no policy")
	}
	if o.Examples <= 0 {
		o.Examples = 3
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	cur, err := newEvaluator(o.Policy)
	if err != nil {
		return nil, err
	}
	var old *evaluator
	if o.Against != nil {
		if old, err = newEvaluator(o.Against); err != nil {
			return nil, fmt.Errorf("simulate: against: %w", err)
		}
	}
	r := &Report{Rejected: []Rejected{}, Totals: map[string]int{}, Conflicts: []Conflict{},
		ConflictCounts: map[string]int{}, Resolved: map[string]int{}, Flows: map[string]int{}}
	moves := map[Move]*Move{} // by flow and step, counts zero
	move := func(k ran, in bool) {
		key := Move{Flow: k.flow, Step: k.step}
		m := moves[key]
		if m == nil {
			m = &Move{Flow: k.flow, Step: k.step}
			moves[key] = m
			r.Moves = append(r.Moves, *m) // placeholder, filled below
		}
		if in {
			m.In++
		} else {
			m.Out++
		}
	}
	steps := map[string]*StepReport{}
	ids := map[string]string{} // folded employee ID → the first row's
	add := func(row Row, e effect) {
		k := e.flow + "\x00" + e.step
		s := steps[k]
		if s == nil {
			s = &StepReport{Flow: e.flow, Step: e.step, Action: e.action, Target: e.target, Counts: map[string]int{}, index: e.index}
			steps[k] = s
			r.Steps = append(r.Steps, s)
		}
		s.Counts[e.Kind]++
		r.Totals[e.Kind]++
		detail := e.detail()
		switch e.Kind {
		case Update:
			if s.Attributes == nil {
				s.Attributes = map[string]int{}
			}
			for _, a := range slices.Sorted(maps.Keys(e.Attrs)) {
				s.Attributes[a]++
			}
		case GroupAdd, GroupRemove:
			if s.Groups == nil {
				s.Groups = map[string]int{}
			}
			sign := "+"
			if e.Kind == GroupRemove {
				sign = "-"
			}
			s.Groups[sign+e.Group]++
		}
		if n := countKind(s.Examples, e.Kind); n < o.Examples {
			s.Examples = append(s.Examples, Example{EmployeeID: row.Event.EmployeeID(), Line: row.Line, Kind: e.Kind, Detail: detail})
		}
	}
	for row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.Rows++
		if row.Reject == "" {
			row.Reject = structural(row.Event)
		}
		id := row.Event.EmployeeID()
		first, seen := ids[fold(id)]
		if !seen && row.Reject == "" {
			ids[fold(id)] = id
		}
		switch {
		case row.Reject != "":
			r.Rejected = append(r.Rejected, Rejected{Line: row.Line, Reason: row.Reject})
		case seen && first != id:
			c := Conflict{Kind: EmployeeIDCase, EmployeeID: id, Line: row.Line, Attribute: "employee_id", Value: id, Other: first,
				Message: fmt.Sprintf("employee %s: the ID differs from employee %s's only by case; the intake refuses it as a new person (one person: send one ID; two: give them IDs that differ by more than case)", id, first)}
			if old != nil {
				r.PreExisting++ // the data's, not the policy change's
				break
			}
			r.Conflicts = append(r.Conflicts, c)
			r.ConflictCounts[c.Kind]++
		default:
			if row.Event.EffectiveAt.IsZero() {
				row.Event.EffectiveAt = o.Now
			}
			effects, conflicts, resolved, runs := cur.person(row)
			if old != nil {
				oldEffects, oldConflicts, _, oldRuns := old.person(row)
				effects = diff(oldEffects, effects)
				conflicts = newOnly(oldConflicts, conflicts, &r.PreExisting)
				for _, k := range runs {
					if !slices.Contains(oldRuns, k) {
						move(k, true)
					}
				}
				for _, k := range oldRuns {
					if !slices.Contains(runs, k) {
						move(k, false)
					}
				}
			}
			if len(runs) > 0 {
				r.Flows[runs[0].flow]++
			}
			for _, e := range effects {
				add(row, e)
			}
			for _, c := range conflicts {
				r.Conflicts = append(r.Conflicts, c)
				r.ConflictCounts[c.Kind]++
			}
			for _, t := range resolved {
				r.Resolved[t]++
			}
		}
		if o.Progress != nil {
			o.Progress(r.Rows)
		}
	}
	for i, m := range r.Moves {
		r.Moves[i] = *moves[Move{Flow: m.Flow, Step: m.Step}]
	}
	// Steps in policy order: joiner, rehire, mover, leaver, each in order.
	flows := []string{policy.KindJoiner, policy.KindRehire, policy.KindMover, policy.KindLeaver}
	slices.SortStableFunc(r.Steps, func(a, b *StepReport) int {
		if fa, fb := slices.Index(flows, a.Flow), slices.Index(flows, b.Flow); fa != fb {
			return fa - fb
		}
		return a.index - b.index
	})
	return r, nil
}

func countKind(ex []Example, kind string) int {
	n := 0
	for _, e := range ex {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// structural is why an event is not a usable HR record (policy aside).
func structural(ev hr.Event) string {
	if ev.EffectiveAt.IsZero() {
		ev.EffectiveAt = time.Unix(0, 0) // filled in later; not the row's fault
	}
	if err := ev.Validate(nil); err != nil {
		return err.Error()
	}
	return ""
}

// newOnly keeps the conflicts of cur that old does not have; it counts the
// others in pre.
func newOnly(old, cur []Conflict, pre *int) []Conflict {
	if len(old) == 0 {
		return cur
	}
	seen := make(map[string]bool, len(old))
	for _, c := range old {
		seen[c.key()] = true
	}
	var out []Conflict
	for _, c := range cur {
		if seen[c.key()] {
			*pre++
			continue
		}
		out = append(out, c)
	}
	return out
}

// effect is one thing a step does to one person's account (the step's
// planned effect, activities.Action.Effects) and the step it comes from.
type effect struct {
	flow, step, action, target string
	index                      int // of the step in its flow
	activities.Effect
}

func (e effect) key() string { return e.target + "\x00" + e.Kind + "\x00" + e.Group }

func (e effect) detail() string {
	switch e.Kind {
	case Create:
		if e.UID != "" {
			return fmt.Sprintf("%s=%s", e.UID, e.Attrs[e.UID])
		}
		return "account"
	case Update:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
			parts = append(parts, fmt.Sprintf("%s=%s", k, e.Attrs[k]))
		}
		return strings.Join(parts, ", ")
	case GroupAdd, GroupRemove:
		return e.Group
	}
	return e.Note
}

// diff is what changes from the old policy's effects to the new one's,
// per person: a create both make becomes an update of the attributes that
// differ (those an existing account would be synced to), effects only the
// new one has are kept, effects only the old one had are Dropped.
func diff(old, cur []effect) []effect {
	oldBy := map[string]effect{}
	for _, e := range old {
		oldBy[e.key()] = e
	}
	var out []effect
	seen := map[string]bool{}
	for _, e := range cur {
		k := e.key()
		seen[k] = true
		o, had := oldBy[k]
		if !had {
			out = append(out, e)
			continue
		}
		if e.Kind != Create && e.Kind != Update {
			continue
		}
		changed := map[string]string{}
		for a, v := range e.Attrs {
			if e.Synced[a] && o.Attrs[a] != v {
				changed[a] = v
			}
		}
		if len(changed) > 0 {
			u := e
			u.Kind, u.Attrs = Update, changed
			out = append(out, u)
		}
	}
	for _, e := range old {
		if !seen[e.key()] {
			d := e
			d.Kind, d.Note = Dropped, e.Kind+" "+e.detail()
			if e.Kind == GroupAdd {
				d.Note = "no longer granted: " + e.Group
			}
			out = append(out, d)
		}
	}
	return out
}

// evaluator is one policy with what it remembers across rows: the unique
// identifiers people of the population render, by target.
type evaluator struct {
	p      *policy.Policy
	tables map[string]*transform.Table
	// taken: target → folded identifier → employee ID.
	taken map[string]map[string]string
}

func newEvaluator(p *policy.Policy) (*evaluator, error) {
	tables, err := p.Tables()
	if err != nil {
		return nil, fmt.Errorf("simulate: lookup tables: %w", err)
	}
	return &evaluator{p: p, tables: tables, taken: map[string]map[string]string{}}, nil
}

// seeded is a random source fixed per person, so UUID and RANDOM_* give
// the same value under the old and the new policy (no spurious updates).
func seeded(employeeID string) *rand.ChaCha8 {
	h := fnv.New64a()
	h.Write([]byte(employeeID))
	var seed [32]byte
	s := h.Sum64()
	for i := range 8 {
		seed[i] = byte(s >> (8 * i))
	}
	return rand.NewChaCha8(seed)
}

// ran is a flow (step "") or a step of it that runs for a person.
type ran struct{ flow, step string }

// person evaluates one row's flow: its effects, its conflicts, the
// targets where a fallback resolved a duplicate identifier, and the flow
// and steps that run (the flow first; no flow: NoFlow).
func (ev *evaluator) person(row Row) ([]effect, []Conflict, []string, []ran) {
	p, e := ev.p, row.Event
	id := e.EmployeeID()
	var conflicts []Conflict
	conflict := func(c Conflict) {
		c.EmployeeID, c.Line = id, row.Line
		conflicts = append(conflicts, c)
	}
	for _, a := range p.RequiredFor(e.Type) {
		if a != "employee_id" && strings.TrimSpace(e.Employee[a]) == "" {
			conflict(Conflict{Kind: MissingRequired, Attribute: a,
				Message: fmt.Sprintf("employee %s: required attribute %s is missing (the intake refuses the event)", id, a)})
		}
	}
	if len(conflicts) > 0 {
		return nil, conflicts, nil, nil
	}
	e, previous := changeOf(e)
	plan, err := p.Plan(e, previous)
	if err != nil {
		conflict(Conflict{Kind: RenderError, Message: fmt.Sprintf("employee %s: %v", id, err)})
		return nil, conflicts, nil, nil
	}
	runs := []ran{{flow: cmp.Or(plan.Flow, NoFlow)}}
	for _, ps := range plan.Steps {
		if !ps.Skip {
			runs = append(runs, ran{flow: plan.Flow, step: ps.Name})
		}
	}
	env := &transform.Env{Attrs: e.Employee, Lookups: ev.tables, Outputs: map[string]map[string]string{},
		Rand: seeded(id), Now: plan.RunAt}
	var effects []effect
	var resolved []string
	person := &activities.Person{Policy: p, Kind: plan.Kind, Attrs: e.Employee, Env: env,
		Claim: func(a policy.SyncIdentity, uid string, attrs map[string]string) error {
			c, fellBack := ev.claim(a, uid, attrs, env, id)
			if c != nil {
				return &claimConflict{*c}
			}
			if fellBack {
				resolved = append(resolved, a.Target)
			}
			return nil
		}}
	fail := func(ps policy.PlannedStep, attr string, err error) {
		c := Conflict{Kind: RenderError, Step: ps.Name, Target: ps.Target, Attribute: attr,
			Message: fmt.Sprintf("employee %s: step %s: %v", id, ps.Name, err)}
		var idErr *policy.IdentifierError
		if errors.As(err, &idErr) {
			c.Kind, c.Attribute, c.Value, c.Message = InvalidIdentifier, idErr.Attribute, idErr.Value, idErr.Error()
		}
		conflict(c)
	}
	for i, ps := range plan.Steps {
		if len(conflicts) > 0 {
			// The run stops at the failed step: what came before it
			// happens, nothing after it does.
			break
		}
		if ps.Skip {
			continue
		}
		base := effect{flow: plan.Flow, step: ps.Name, action: ps.Action, target: ps.Target, index: i}
		act := activities.ActionOf(ps.Action)
		if act == nil {
			conflict(Conflict{Kind: RenderError, Step: ps.Name, Message: fmt.Sprintf("employee %s: step %s: no action", id, ps.Name)})
			continue
		}
		effs, err := act.Effects(person, ps)
		for _, e := range effs {
			eff := base
			eff.Effect = e
			effects = append(effects, eff)
		}
		for _, err := range split(err) {
			var c *claimConflict
			var fe *activities.EffectError
			switch {
			case errors.As(err, &c):
				c.Step = ps.Name
				conflict(c.Conflict)
			case errors.As(err, &fe):
				fail(ps, fe.Attr, fe.Err)
			default:
				fail(ps, "", err)
			}
		}
	}
	return effects, conflicts, resolved, runs
}

// PreviousColumn prefixes a change row's attribute value before the
// change (previous_department): conditions read it as previous.department.
const PreviousColumn = "previous_"

// changeOf splits a change row into the event and the attributes before
// it: the row's, with each previous_<attr> column's value for <attr>. Other
// rows have no previous attributes.
func changeOf(e hr.Event) (hr.Event, map[string]string) {
	if e.Type != hr.Change {
		return e, nil
	}
	now, previous := map[string]string{}, map[string]string{}
	for k, v := range e.Employee {
		if a, ok := strings.CutPrefix(k, PreviousColumn); ok {
			previous[a] = v
		} else {
			now[k] = v
		}
	}
	for k, v := range now {
		if _, ok := previous[k]; !ok {
			previous[k] = v
		}
	}
	e.Employee = now
	return e, previous
}

// claimConflict is a conflict of Claim, through Effects.
type claimConflict struct{ Conflict }

func (c *claimConflict) Error() string { return c.Message }

// split lists the errors errors.Join joined.
func split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// claim gives person id the step's unique identifier in its target, as a
// run in file order would: the first choice, else the first free fallback
// (transform.EvalUnique over the identifiers people before rendered).
// It returns the conflict when no value is left, and whether a fallback
// was needed.
func (ev *evaluator) claim(a policy.SyncIdentity, uid string, attrs map[string]string, env *transform.Env, id string) (*Conflict, bool) {
	v := attrs[uid]
	if v == "" {
		return nil, false // no identifier (validation requires one; nothing to claim)
	}
	taken := ev.taken[a.Target]
	if taken == nil {
		taken = map[string]string{}
		ev.taken[a.Target] = taken
	}
	holder, held := taken[fold(v)]
	if !held || holder == id {
		taken[fold(v)] = id
		return nil, false
	}
	if len(a.Fallbacks[uid]) == 0 {
		return &Conflict{Kind: DuplicateIdentifier, Target: a.Target, Attribute: uid, Value: v, Other: holder,
			Message: fmt.Sprintf("employee %s: %s %s %q is also employee %s's and the step has no fallbacks for it", id, a.Target, uid, v, holder)}, false
	}
	cands, err := policy.Candidates(ev.p, a, uid)
	if err != nil {
		return &Conflict{Kind: RenderError, Target: a.Target, Attribute: uid, Message: err.Error()}, false
	}
	e := *env
	e.Target = attrs
	got, err := transform.EvalUnique(context.Background(), cands, &e, ev.p.IdentifierRule(a), func(_ context.Context, c string) (bool, error) {
		h, ok := taken[fold(c)]
		return ok && h != id, nil
	})
	switch {
	case errors.Is(err, transform.ErrNoUniqueValue):
		kind, what := DuplicateIdentifier, "every fallback"
		if slices.ContainsFunc(cands, func(t *transform.Template) bool { return t.Attempts() > 1 }) {
			kind, what = NextNumberExhausted, "every NEXT_NUMBER value"
		}
		return &Conflict{Kind: kind, Target: a.Target, Attribute: uid, Value: v, Other: holder,
			Message: fmt.Sprintf("employee %s: %s %s %q is employee %s's and %s is taken", id, a.Target, uid, v, holder, what)}, false
	case err != nil:
		return &Conflict{Kind: RenderError, Target: a.Target, Attribute: uid, Message: err.Error()}, false
	}
	attrs[uid] = got
	taken[fold(got)] = id
	return nil, true
}

// fold is how targets compare identifiers: case-insensitively.
func fold(s string) string { return strings.ToLower(s) }
