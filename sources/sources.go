// Package sources reads sources of identity — Okta users changed since a
// cursor, HR reports fetched whole — and turns what changed into HR events
// delivered like the intake's (intake.Submit): per-identity ordering,
// dedupe by event ID, required attributes, effective dates. The durable
// poller is workflows.SourcePoller; Poll is its activity. See
// docs/sources.md.
package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/connectors/okta"
	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/transform"
	"github.com/jml-dev/jml/workflows"
)

// Config wires a Poller.
type Config struct {
	Policy *policy.Policy
	// Client delivers the events (intake.Submit) and, through the default
	// Directory, reads identities for the loop guard.
	Client client.Client
	// Submit delivers one event (default: intake.Submit with Client).
	Submit func(ctx context.Context, ev hr.Event) (workflows.EventAccepted, error)
	// Directory has each identity's last known attributes, for the loop
	// guard of Okta sources. Nil: activities.TemporalDirectory on Client.
	Directory activities.Directory
	// HTTPClient fetches reports and reaches Okta (nil: 60 s timeout).
	HTTPClient *http.Client
	Getenv     func(string) string // default os.Getenv
	// AllowInsecure permits plain-http Okta org URLs on loopback (tests, dev).
	AllowInsecure bool
	Logger        *zap.Logger
	// Audit: this worker has an audit store; the poller records what each
	// poll did (SourcePollResult.Audit).
	Audit bool
}

// Poller is the SourcePoll activity.
type Poller struct {
	cfg    Config
	http   *http.Client
	getenv func(string) string
	log    *zap.Logger
}

// New returns the activity. Register it with
// activity.RegisterOptions{Name: workflows.SourcePollActivityName}.
func New(cfg Config) *Poller {
	p := &Poller{cfg: cfg, http: cfg.HTTPClient, getenv: cfg.Getenv, log: cfg.Logger}
	if p.http == nil {
		p.http = &http.Client{Timeout: 60 * time.Second}
	}
	if p.getenv == nil {
		p.getenv = os.Getenv
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.cfg.Submit == nil {
		p.cfg.Submit = func(ctx context.Context, ev hr.Event) (workflows.EventAccepted, error) {
			return intake.Submit(ctx, cfg.Client, ev)
		}
	}
	if p.cfg.Directory == nil && cfg.Client != nil {
		p.cfg.Directory = activities.TemporalDirectory{Client: cfg.Client}
	}
	return p
}

// change is one person's difference between the poller's state and the
// source: the event to send (empty Type: none, only the state moves).
type change struct {
	EmployeeID string
	Type       string
	Attrs      map[string]string
	Entry      entry
	Remove     bool // the person leaves the snapshot
}

// maxProblems bounds the problems one poll reports.
const maxProblems = 50

// Poll reads the source named in.Source, diffs it against in.Snapshot /
// in.Cursor and, unless the poll is Blocked or Discarded, delivers the
// changes as HR events and returns the new state. A failure to read the
// source fails the poll before anything is delivered.
func (p *Poller) Poll(ctx context.Context, in workflows.SourcePollInput) (workflows.SourcePollResult, error) {
	src, ok := p.cfg.Policy.Sources[in.Source]
	if !ok {
		return workflows.SourcePollResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("source %s is no longer in the policy: its poller ends", in.Source), workflows.SourceRemovedError, nil)
	}
	prev, err := decodeSnapshot(in.Snapshot)
	if err != nil {
		return workflows.SourcePollResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "SourceState", nil)
	}
	tables, err := p.cfg.Policy.Tables()
	if err != nil {
		return workflows.SourcePollResult{}, fail("SourceConfig", err)
	}
	res := workflows.SourcePollResult{Every: src.PollEvery(), Cursor: in.Cursor, Audit: p.cfg.Audit}
	first := in.Generation == 1 // the first poll this poller applies
	var changes []change
	switch src.Type {
	case "report":
		changes, res.Problems, err = p.pollReport(ctx, in.Source, src, tables, prev)
	case "okta":
		full := in.Full || in.LastFull.IsZero() || in.At.Sub(in.LastFull) >= FullEvery
		changes, res.Cursor, res.Problems, err = p.pollOkta(ctx, in.Source, src, tables, prev, in.Cursor, full)
		if full {
			res.FullAt = in.At
		}
	default:
		err = fail("SourceConfig", fmt.Errorf("source %s: type %q", in.Source, src.Type))
	}
	if err != nil {
		return workflows.SourcePollResult{}, err
	}

	// The mass-termination guard: too many leavers at once waits for an
	// operator, named by the digest of who would leave.
	var leavers []string
	counts := map[string]int{}
	for _, c := range changes {
		counts[c.Type]++
		if c.Type == hr.Terminate {
			leavers = append(leavers, c.EmployeeID)
		}
	}
	slices.Sort(leavers)
	if known := prev.active(); len(leavers) > 0 && known > 0 {
		sum := sha256.Sum256([]byte(strings.Join(leavers, "\n")))
		dg := hex.EncodeToString(sum[:8])
		pct := 100 * float64(len(leavers)) / float64(known)
		switch {
		case pct <= src.TerminateLimit() || dg == in.Release:
		case dg == in.Discard:
			// The operator refused these terminations, not the hires and
			// changes that come with them: those go on, and the leavers stay
			// held for as long as HR drops the same people.
			changes = slices.DeleteFunc(changes, func(c change) bool { return c.Type == hr.Terminate })
			res.HeldBack = len(leavers)
			res.Problems = append(res.Problems, fmt.Sprintf(
				"%d terminations held back: the ones an operator discarded (%s); hires and changes applied", len(leavers), dg))
		default:
			res.Blocked = &workflows.SourceBlock{Digest: dg, Terminate: len(leavers), Known: known, Percent: pct,
				Limit: src.TerminateLimit(), Hire: counts[hr.Hire] + counts[hr.Rehire], Change: counts[hr.Change], At: in.At,
				Terminated: leavers[:min(len(leavers), 20)]}
			return res, nil
		}
	}

	// A report with more changes than one poll delivers: the first
	// MaxEventsPerPoll hires and changes now, the rest (terminations last)
	// at the next poll, which follows at once.
	baseline := first && src.Initial == policy.InitialBaseline
	if src.Type == "report" && !baseline && len(changes) > MaxEventsPerPoll {
		kept := changes[:0]
		for _, c := range changes {
			if c.Type != hr.Terminate && len(kept) < MaxEventsPerPoll {
				kept = append(kept, c)
			}
		}
		if len(kept) < len(changes) {
			changes, res.More = kept, true
		}
	}

	// Deliver, then move the state: a person whose event was refused
	// keeps the old state, so the next poll tries again.
	next := maps.Clone(prev)
	res.Emitted = map[string]int{}
	outcome := make([]string, len(changes)) // "": delivered (or no event); else the problem
	if !baseline {
		if err := p.deliver(ctx, in, changes, outcome); err != nil {
			return workflows.SourcePollResult{}, err
		}
	}
	for i, c := range changes {
		if outcome[i] != "" {
			res.Problems = appendProblem(res.Problems, outcome[i])
			continue
		}
		if c.Type != "" && !baseline {
			res.Emitted[c.Type]++
		}
		if c.Remove {
			delete(next, c.EmployeeID)
		} else {
			next[c.EmployeeID] = c.Entry
		}
	}
	res.Snapshot, res.People = next.encode(), next.active()
	p.log.Info("source polled", zap.String("source", in.Source), zap.Int("people", res.People),
		zap.Any("emitted", res.Emitted), zap.Int("problems", len(res.Problems)))
	return res, nil
}

// MaxEventsPerPoll bounds the events one report poll delivers, so a poll
// (an activity) stays minutes long whatever the change.
const MaxEventsPerPoll = 2000

// deliveries is how many events one poll delivers at once (each to its
// own identity: a person changes once per poll, so order does not matter).
const deliveries = 16

// deliver sends the changes' events, deliveries at a time. outcome[i] is
// set to the problem of an event that was refused (bad input: not sent
// again until the person changes); any other failure fails the poll, and
// its retry sends the same IDs, which identities drop as duplicates.
func (p *Poller) deliver(ctx context.Context, in workflows.SourcePollInput, changes []change, outcome []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		done  int
		wg    sync.WaitGroup
		slots = make(chan struct{}, deliveries)
	)
	for i, c := range changes {
		if c.Type == "" {
			continue
		}
		ev := p.event(in, c)
		if err := ev.Validate(p.cfg.Policy.RequiredFor(ev.Type)); err != nil {
			outcome[i] = fmt.Sprintf("%s %s: %v: not sent", c.Type, c.EmployeeID, err)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			_, err := p.cfg.Submit(ctx, ev)
			var rej *intake.RejectedError
			var conflict *intake.ConflictError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.As(err, &rej), errors.As(err, &conflict):
				outcome[i] = fmt.Sprintf("%s %s: %v", c.Type, c.EmployeeID, err)
			case err != nil && first == nil:
				first = fmt.Errorf("deliver %s event %s: %w", c.Type, ev.EventID, err)
				cancel()
			}
			if done++; done%50 == 0 && activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, done)
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// event is a change as an HR event. Its ID is derived from the poller's
// epoch, the poll's generation and the change's content: a retried poll
// sends the same IDs, a later change to the same person a new one.
func (p *Poller) event(in workflows.SourcePollInput, c change) hr.Event {
	emp := c.Attrs
	if c.Type == hr.Terminate {
		emp = map[string]string{"employee_id": c.EmployeeID}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{in.Epoch, c.EmployeeID, c.Type, c.Entry.Digest}, "\x00")))
	ev := hr.Event{
		EventID:     fmt.Sprintf("%s.%d.%s", in.Source, in.Generation, hex.EncodeToString(sum[:8])),
		Type:        c.Type,
		EffectiveAt: in.At,
		Employee:    maps.Clone(emp),
		Source:      "source:" + in.Source,
	}
	ev.Normalize()
	return ev
}

func (p *Poller) pollReport(ctx context.Context, name string, src policy.Source, tables map[string]*transform.Table, prev snapshot) ([]change, []string, error) {
	body, format, err := p.fetchReport(ctx, name, src)
	if err != nil {
		return nil, nil, err // a network failure retries with backoff
	}
	rows, problems, err := parseReport(body, format, src.Records)
	if err == nil && len(rows) == 0 && len(problems) == 0 {
		// A report of nobody would terminate everyone: it is a failed
		// read (an export that ran too early, a filter gone wrong).
		err = errors.New("no records: an empty report is taken as a failed read, never as everyone leaving")
	}
	if err != nil {
		return nil, nil, fail("SourceReport", fmt.Errorf("report %s: %w", name, err))
	}
	m, err := newMapper(src, tables, hr.SnakeCase)
	if err != nil {
		return nil, nil, fail("SourceConfig", fmt.Errorf("source %s: %w", name, err))
	}
	if miss := m.missingColumns(rows); len(miss) > 0 {
		return nil, nil, fail("SourceConfig", fmt.Errorf(
			"source %s: active %q reads %s, which no row of the report has: active reads the report's columns (a name with spaces or capitals also in snake_case), not the mapped attributes",
			name, m.active, strings.Join(miss, ", ")))
	}
	unreadable := len(problems)
	type read struct {
		at     string
		attrs  map[string]string
		active bool
	}
	byID := map[string][]read{}
	matched := 0
	for _, r := range rows {
		id, attrs, err := m.apply(r.Fields)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v: row skipped", r.At, err))
			unreadable++
			continue
		}
		active := m.isActive(r.Fields)
		if active {
			matched++
		}
		byID[id] = append(byID[id], read{at: r.At, attrs: attrs, active: active})
	}
	if m.active != nil && matched == 0 && len(byID) > 0 {
		// Nobody active would terminate everyone: the filter (or the
		// export) is wrong, not the workforce.
		return nil, nil, fail("SourceReport", fmt.Errorf(
			"report %s: active %q matched none of the %d rows read: taken as a failed read, never as everyone leaving", name, m.active, countRows(byID)))
	}
	cur := map[string]change{}
	inactive := map[string]bool{}
	held := map[string]bool{} // on several rows: which one is HR's word is not ours to guess
	dupRows := 0
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		rs := byID[id]
		if len(rs) > 1 {
			held[id] = true
			dupRows += len(rs)
			at := make([]string, len(rs))
			for i, r := range rs {
				at[i] = r.at
			}
			problems = append(problems, fmt.Sprintf("employee ID %s is on %d rows (%s): all held, none applied", id, len(rs), strings.Join(at, ", ")))
			continue
		}
		if r := rs[0]; !r.active {
			inactive[id] = true // a person no longer employed is like one absent
		} else {
			cur[id] = change{EmployeeID: id, Attrs: r.attrs, Entry: entry{Digest: digest(r.attrs), Active: true}}
		}
	}
	var out []change
	for _, id := range slices.Sorted(maps.Keys(cur)) {
		c := cur[id]
		old, known := prev[id]
		switch {
		case !known || !old.Active:
			c.Type = hr.Hire
		case old.Digest != c.Entry.Digest:
			c.Type = hr.Change
		default:
			continue
		}
		out = append(out, c)
	}
	absent := 0
	for _, id := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := cur[id]; ok || !prev[id].Active || held[id] {
			continue
		}
		if !inactive[id] && unreadable > 0 {
			absent++ // maybe on an unreadable row: never terminate on a guess
			continue
		}
		out = append(out, change{EmployeeID: id, Type: hr.Terminate, Remove: true})
	}
	// The held counts come first and are never cut by the problem cap:
	// they are what an operator must see when every row is bad.
	var summary []string
	if absent > 0 {
		summary = append(summary, fmt.Sprintf("%d people absent from the report not terminated: %d rows could not be read, they may be among them", absent, unreadable))
	}
	if len(held) > 0 {
		summary = append(summary, fmt.Sprintf("%d employee IDs on several rows (%d rows) held: none applied", len(held), dupRows))
	}
	if len(summary) > 0 {
		return out, append([]string{"held: " + strings.Join(summary, "; ")}, capProblems(problems)...), nil
	}
	return out, capProblems(problems), nil
}

func countRows[T any](byID map[string][]T) int {
	n := 0
	for _, rs := range byID {
		n += len(rs)
	}
	return n
}

// FullEvery is how often an Okta source is read whole: a user deactivated
// and deleted between two polls is gone from the changes, and only a full
// read finds them missing.
const FullEvery = 24 * time.Hour

func (p *Poller) pollOkta(ctx context.Context, name string, src policy.Source, tables map[string]*transform.Table, prev snapshot, cursor string, full bool) ([]change, string, []string, error) {
	tok := p.getenv(src.TokenEnv)
	if tok == "" {
		return nil, cursor, nil, fail("SourceConfig", fmt.Errorf("source %s: environment variable %s (API token) is empty or unset", name, src.TokenEnv))
	}
	oc, err := okta.New(ctx, okta.Config{OrgURL: src.OrgURL, Token: secret.New(tok), HTTPClient: p.http,
		AllowInsecure: p.cfg.AllowInsecure, Logger: p.log.Named("okta")})
	if err != nil {
		return nil, cursor, nil, fail("SourceConfig", fmt.Errorf("source %s: %w", name, err))
	}
	since := cursor
	if full {
		since = ""
	}
	users, next, err := oc.Changes(ctx, since)
	if err != nil {
		if connectors.IsPermanent(err) {
			return nil, cursor, nil, fail("SourceOkta", fmt.Errorf("source %s: %w", name, err))
		}
		return nil, cursor, nil, fmt.Errorf("source %s: %w", name, err)
	}
	m, err := newMapper(src, tables, func(f string) string { return okta.NormalizedName(f) })
	if err != nil {
		return nil, cursor, nil, fail("SourceConfig", fmt.Errorf("source %s: %w", name, err))
	}
	g := p.guard(src)
	var problems []string
	var out []change
	var deferred time.Time // the oldest user to read again
	seen := map[string]bool{}
	for _, u := range users {
		raw := make(map[string]string, len(u.Attributes))
		for k, v := range u.Attributes {
			raw[okta.ProfileName(k)] = v
		}
		id, attrs, err := m.apply(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("okta user %s (updated %s): %v: skipped", u.Attributes["login"], u.UpdatedAt.Format(time.RFC3339), err))
			continue
		}
		seen[id] = true
		old, known := prev[id]
		c := change{EmployeeID: id, Attrs: attrs, Entry: entry{Digest: digest(attrs), Active: u.Active}}
		switch {
		case u.Active && !known:
			c.Type = hr.Hire
		case u.Active && !old.Active:
			c.Type = hr.Rehire
		case u.Active && old.Digest != c.Entry.Digest:
			c.Type = hr.Change
		case !u.Active && known && old.Active:
			c.Type = hr.Terminate
		case !u.Active && !known:
			continue // staged or never active: nothing to undo
		default:
			continue
		}
		if g != nil {
			c, err = g.check(ctx, m, raw, c, old)
			if errors.Is(err, errDefer) {
				if deferred.IsZero() || u.UpdatedAt.Before(deferred) {
					deferred = u.UpdatedAt
				}
				continue
			}
			if err != nil {
				return nil, cursor, nil, err
			}
		}
		out = append(out, c)
	}
	if full && len(problems) == 0 {
		// Gone from Okta (deleted): a leaver for the active ones. Not when
		// a user could not be mapped: they may be among them.
		for _, id := range slices.Sorted(maps.Keys(prev)) {
			if !seen[id] {
				typ := ""
				if prev[id].Active {
					typ = hr.Terminate
				}
				out = append(out, change{EmployeeID: id, Type: typ, Remove: true})
			}
		}
	}
	if later(cursor, next) {
		next = cursor // a full read never moves the cursor back
	}
	if !deferred.IsZero() {
		// Read them again next time (users read twice change nothing: the
		// snapshot has their digest).
		next = deferred.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)
		if cursor != "" {
			if c, err := time.Parse(time.RFC3339Nano, cursor); err == nil && !deferred.Add(-time.Millisecond).After(c) {
				next = cursor
			}
		}
	}
	return out, next, capProblems(problems), nil
}

func capProblems(ps []string) []string {
	if len(ps) > maxProblems {
		return append(ps[:maxProblems], fmt.Sprintf("… and %d more", len(ps)-maxProblems))
	}
	return ps
}

func appendProblem(ps []string, p string) []string {
	if len(ps) < maxProblems {
		return append(ps, p)
	}
	return ps
}

// fail is a poll error that retrying will not fix until the configuration
// or the source changes; the poller still retries it with backoff, so a
// fixed environment variable or report heals without a restart.
func fail(typ string, err error) error {
	return temporal.NewApplicationErrorWithOptions(err.Error(), typ, temporal.ApplicationErrorOptions{})
}

// later reports whether RFC 3339 time a is after b (compared as times:
// trimmed fractions make strings sort wrong).
func later(a, b string) bool {
	ta, err := time.Parse(time.RFC3339Nano, a)
	if err != nil {
		return false
	}
	tb, err := time.Parse(time.RFC3339Nano, b)
	return err != nil || ta.After(tb)
}
