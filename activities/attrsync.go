package activities

// Continuous attribute sync (IdentityNow "attribute synchronization", Veza
// "Attribute Sync"): keep the attributes of existing accounts equal to what
// the policy renders from each active identity.
//
// Scale. The desired state of the whole population is built once per run
// and per worker (Directory listed in pages, every identity rendered with the
// target's sync_identity step) and kept in worker memory. The target is then
// read in pages (ListAccounts) and each account compared in memory with its
// identity, matched by the account ID jml remembers or else by the unique
// identifier (case-insensitive). An in-sync run therefore costs
// ceil(N/pageSize) reads and no writes; a changed account costs one
// UpdateAccount carrying only the differing attributes. Reading N accounts
// one by one would cost N lookups and hit rate limits long before that.
//
// Comparison (attrEqual): a missing attribute and an empty one are the same;
// booleans compare case-insensitively; user names, logins and e-mail
// addresses compare case-insensitively; multi-valued attributes are
// flattened by type (emails.work, phone_numbers.mobile) so each type is its
// own key and item order never matters. Attributes a template cannot render
// the same way twice (UUID, RANDOM_*, NEXT_NUMBER, NOW), attributes reading
// other steps' outputs ({OktaUser.id}), password and the step's
// not_continuously_synced attributes are never synced.
//
// Loop guard: every write is remembered (GuardEntry, a hash of the value,
// never the value). A value written and read back different twice in a row
// is reported once as stuck and not written again until the desired value
// changes or the target starts to agree.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// IdentityRecord is one identity as the attribute sync sees it.
type IdentityRecord struct {
	EmployeeID string            `json:"employee_id"`
	Status     string            `json:"status,omitempty"` // active | deprovisioned ("" counts as active)
	Attributes map[string]string `json:"attributes,omitempty"`
	// Accounts are account IDs by target name, when jml knows them.
	Accounts map[string]string `json:"accounts,omitempty"`
	// Identifiers are the linked accounts' unique identifiers by target,
	// as chosen at creation (a fallback such as jane.doe2 included).
	Identifiers map[string]string `json:"identifiers,omitempty"`
	// InFlight: a lifecycle run of the person is in flight (running,
	// waiting for its effective date or for an operator). Reconciliation
	// never calls its accounts orphans or leftovers, nor changes them.
	// Not in the memo: TemporalDirectory reads the identity's JmlState.
	InFlight bool `json:"in_flight,omitempty"`
}

// Directory is where the attribute sync finds the identities jml manages
// and their current attributes.
type Directory interface {
	// ListIdentities returns one page; an empty next cursor ends the list.
	ListIdentities(ctx context.Context, cursor []byte, pageSize int) (ids []IdentityRecord, next []byte, err error)
	// Identity returns one identity, connectors.ErrNotFound when unknown.
	Identity(ctx context.Context, employeeID string) (IdentityRecord, error)
}

// StaticDirectory is a fixed list of identities (an HR snapshot, tests).
type StaticDirectory []IdentityRecord

// identityPages yields the directory's identities a page at a time, in
// order, until the list ends or the directory fails (yielded once, last):
// the one walk the attribute sync, reconciliation and the governor's
// population count share.
func identityPages(ctx context.Context, d Directory) iter.Seq2[[]IdentityRecord, error] {
	return func(yield func([]IdentityRecord, error) bool) {
		var cursor []byte
		for {
			ids, next, err := d.ListIdentities(ctx, cursor, 1000)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(ids, nil) || len(next) == 0 {
				return
			}
			cursor = next
		}
	}
}

// ListIdentities pages through the list; the cursor is the next index.
func (d StaticDirectory) ListIdentities(_ context.Context, cursor []byte, pageSize int) ([]IdentityRecord, []byte, error) {
	start := 0
	if len(cursor) > 0 {
		if _, err := fmt.Sscan(string(cursor), &start); err != nil || start < 0 || start > len(d) {
			return nil, nil, fmt.Errorf("static directory: bad cursor")
		}
	}
	if pageSize <= 0 {
		pageSize = 1000
	}
	end := min(start+pageSize, len(d))
	if end == len(d) {
		return d[start:end], nil, nil
	}
	return d[start:end], []byte(fmt.Sprint(end)), nil
}

// Identity finds one identity by employee ID.
func (d StaticDirectory) Identity(_ context.Context, employeeID string) (IdentityRecord, error) {
	for _, r := range d {
		if r.EmployeeID == employeeID {
			return r, nil
		}
	}
	return IdentityRecord{}, fmt.Errorf("identity %s: %w", employeeID, connectors.ErrNotFound)
}

// GuardEntry remembers one attribute write for the loop guard. It holds a
// hash of the written value, never the value.
type GuardEntry struct {
	Target    string `json:"target"`
	AccountID string `json:"account_id"`
	Attribute string `json:"attribute"`
	Want      string `json:"want"`   // hash of the value written
	Writes    int    `json:"writes"` // consecutive writes that did not stick
	Reported  bool   `json:"reported,omitempty"`
}

// Key identifies the entry's attribute.
func (g GuardEntry) Key() string { return g.Target + "\x00" + g.AccountID + "\x00" + g.Attribute }

// guardStrikes is how many writes of one value may fail to stick before the
// value is reported and left alone.
const guardStrikes = 2

// AttrSyncCounts are the numbers of one run (or part of one).
type AttrSyncCounts struct {
	IdentitiesChecked int `json:"identities_checked"` // identities whose account was compared
	AccountsChanged   int `json:"accounts_changed"`
	AttributesWritten int `json:"attributes_written"`
	Failures          int `json:"failures"`
	Stuck             int `json:"stuck"`     // values reported by the loop guard
	Unmatched         int `json:"unmatched"` // active identities with no account in the target
	Skipped           int `json:"skipped"`   // leavers (manual sync)
	PagesRead         int `json:"pages_read"`
}

// Add adds o to c.
func (c *AttrSyncCounts) Add(o AttrSyncCounts) {
	c.IdentitiesChecked += o.IdentitiesChecked
	c.AccountsChanged += o.AccountsChanged
	c.AttributesWritten += o.AttributesWritten
	c.Failures += o.Failures
	c.Stuck += o.Stuck
	c.Unmatched += o.Unmatched
	c.Skipped += o.Skipped
	c.PagesRead += o.PagesRead
}

// AttrSyncProblem is one failure or stuck value. It names the employee and
// the attributes, never their values.
type AttrSyncProblem struct {
	Target     string   `json:"target"`
	EmployeeID string   `json:"employee_id,omitempty"`
	AccountID  string   `json:"account_id,omitempty"`
	Attributes []string `json:"attributes,omitempty"`
	Error      string   `json:"error"`
}

// maxProblems bounds the problems one chunk reports (the counts stay exact).
const maxProblems = 50

// AttrSyncTargets are the targets and page size of the policy's
// attribute_sync.
type AttrSyncTargets struct {
	Targets  []string `json:"targets"`
	PageSize int      `json:"page_size"`
}

// AttributeSyncTargets lists the targets to sync: attribute_sync.targets,
// else every target with a sync_identity step whose connector can list
// accounts.
func (a *Activities) AttributeSyncTargets(_ context.Context) (AttrSyncTargets, error) {
	p := a.cfg.Policy
	out := AttrSyncTargets{Targets: slices.Clone(p.AttributeSync.Targets), PageSize: p.AttributeSync.PageSize}
	if out.PageSize == 0 {
		out.PageSize = 200
	}
	if len(out.Targets) == 0 {
		for _, f := range p.GrantingFlows() {
			for _, st := range f.Steps {
				if s := st.SyncIdentity; s != nil && !slices.Contains(out.Targets, s.Target) {
					if _, ok := a.cfg.Targets[s.Target].(connectors.AccountLister); ok {
						out.Targets = append(out.Targets, s.Target)
					}
				}
			}
		}
	}
	return out, nil
}

// AttrSyncPageInput asks for one chunk of a target's reconcile.
type AttrSyncPageInput struct {
	// Snapshot keys the desired state a worker builds once per run.
	Snapshot string `json:"snapshot"`
	Target   string `json:"target"`
	Cursor   string `json:"cursor,omitempty"` // target cursor; "" starts
	PageSize int    `json:"page_size,omitempty"`
	// MaxPages is how many pages to reconcile before returning (default 20).
	MaxPages int `json:"max_pages,omitempty"`
	// EmployeeIDs, when set, syncs only these identities (manual sync): each
	// account is looked up by its unique identifier, no paging.
	EmployeeIDs []string `json:"employee_ids,omitempty"`
	// Guard holds the loop-guard entries of this target.
	Guard []GuardEntry `json:"guard,omitempty"`
	// Since is the change link the previous cycle kept for this target (a
	// connectors.ChangeLister): the first chunk reads only what changed
	// since, when the desired state is still the one compared then.
	Since DeltaState `json:"since,omitzero"`
	// Round is what the previous chunk of this target's round handed on.
	Round AttrSyncRound `json:"round,omitzero"`
}

// DeltaState is where a target's next cycle starts reading changes.
type DeltaState struct {
	Link string `json:"link"`
	// Desired fingerprints the desired state the round compared against:
	// when HR or the policy changed it, accounts that did not change must
	// be compared again, so the next cycle reads the whole target.
	Desired string `json:"desired"`
}

// AttrSyncRound is what one chunk of a target's round tells the next.
type AttrSyncRound struct {
	// Incremental: the round reads only the changes since Since.
	Incremental bool `json:"incremental,omitempty"`
	// Unsynced: an account write failed for good. A change round would
	// not see that account again, so the round keeps no link.
	Unsynced bool `json:"unsynced,omitempty"`
}

// AttrSyncPageResult is one chunk's outcome.
type AttrSyncPageResult struct {
	Next     string            `json:"next,omitempty"` // "" when the target is done
	Counts   AttrSyncCounts    `json:"counts"`
	Problems []AttrSyncProblem `json:"problems,omitempty"`
	// Guard entries written or updated; Cleared keys of entries resolved.
	Guard   []GuardEntry  `json:"guard,omitempty"`
	Cleared []string      `json:"cleared,omitempty"`
	Round   AttrSyncRound `json:"round,omitzero"`
	// Delta is the link the next cycle starts from, on the last chunk of a
	// round over a connectors.ChangeLister that wrote nothing in vain.
	Delta DeltaState `json:"delta,omitzero"`
	// Effects are the accounts updated, for the audit trail (the
	// heartbeat carries them to a retry); Audit: this worker has an audit
	// store (the run records them).
	Effects []audit.Effect `json:"effects,omitempty"`
	Audit   bool           `json:"audit,omitempty"`
}

// syncRule is one sync_identity step of a target, reduced to what can be
// synced continuously.
type syncRule struct {
	when string
	step policy.SyncIdentity // eligible attributes only, common ones merged in
	uid  string
	skip map[string]bool // not continuously synced (still rendered for $target)
	// rename: the step lets a linked account's identifier follow HR.
	rename bool
}

type desired struct {
	employeeID string
	accountID  string
	attrs      connectors.Attributes // compared attributes only
}

// snapshot is the desired state of one target for one run.
type snapshot struct {
	byAccount map[string]*desired
	byUID     map[string]*desired // lower-cased unique identifier
	uid       string
	active    int    // identities with desired state (for Unmatched)
	desired   string // fingerprint of the desired state (DeltaState)
	built     time.Time
	problems  []AttrSyncProblem

	// pages are the target's accounts as this run read them, by cursor,
	// for the reconciliation that follows on this worker (accountPages).
	mu    sync.Mutex
	pages map[string]accountPage
}

type accountPage struct {
	accounts []connectors.Account
	next     string
	fresh    bool // nothing on it was written after the read
}

// remember keeps a page read at cursor.
func (s *snapshot) remember(cursor string, accts []connectors.Account, next string, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pages == nil {
		s.pages = map[string]accountPage{}
	}
	s.pages[cursor] = accountPage{accounts: accts, next: next, fresh: fresh}
}

// accountPages returns every account of the target when this worker read
// them all in this run and wrote none of them since; ok false otherwise.
func (s *snapshot) accountPages() (pages [][]connectors.Account, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cursor, n := "", 0; n <= len(s.pages); n++ {
		p, found := s.pages[cursor]
		if !found || !p.fresh {
			return nil, false
		}
		pages = append(pages, p.accounts)
		if p.next == "" {
			return pages, true
		}
		cursor = p.next
	}
	return nil, false // a cycle of cursors
}

// snapshotCache keeps a few snapshots per worker.
type snapshotCache struct {
	mu      sync.Mutex
	entries map[string]*snapshot
}

const snapshotTTL = time.Hour

func (c *snapshotCache) get(key string) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.entries[key]
	if s != nil && time.Since(s.built) > snapshotTTL {
		delete(c.entries, key)
		return nil
	}
	return s
}

func (c *snapshotCache) put(key string, s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*snapshot{}
	}
	for k, e := range c.entries {
		if time.Since(e.built) > snapshotTTL {
			delete(c.entries, k)
		}
	}
	c.entries[key] = s
}

// nondeterministic functions render differently on every run.
var nondeterministic = []string{"UUID", "RANDOM_ALPHANUMERIC_GENERATOR", "RANDOM_NUMBER_GENERATOR", "RANDOM_STRING_GENERATOR", "NEXT_NUMBER", "NOW"}

// syncRules are the target's sync_identity steps (joiner, then rehire and
// mover), each reduced to its continuously syncable attributes.
func syncRules(p *policy.Policy, target string) ([]syncRule, error) {
	var rules []syncRule
	for _, f := range p.GrantingFlows() {
		for _, st := range f.Steps {
			s := st.SyncIdentity
			if s == nil || s.Target != target {
				continue
			}
			merged := map[string]string{}
			maps.Copy(merged, p.CommonAttributes)
			maps.Copy(merged, s.Attributes)
			ok := map[string]bool{}
			tmpls := map[string]*transform.Template{}
			for name, src := range merged {
				t, err := transform.Parse(src)
				if err != nil {
					return nil, fmt.Errorf("%s attribute %s: %w", target, name, err)
				}
				tmpls[name] = t
				ok[name] = name != "password" && !slices.ContainsFunc(t.Calls(), func(c transform.Call) bool {
					return slices.Contains(nondeterministic, c.Func)
				}) && !slices.ContainsFunc(t.Refs(), func(r transform.Ref) bool {
					return r.Entity != "" && r.Entity != transform.TargetEntity
				})
			}
			// An attribute reading an ineligible $target attribute is out too.
			for changed := true; changed; {
				changed = false
				for name, t := range tmpls {
					if ok[name] && slices.ContainsFunc(t.Refs(), func(r transform.Ref) bool {
						return r.Entity == transform.TargetEntity && !ok[r.Attr]
					}) {
						ok[name], changed = false, true
					}
				}
			}
			r := syncRule{when: st.When, uid: p.UniqueIdentifier(*s), skip: map[string]bool{}, rename: s.Rename == policy.RenameAllowed}
			r.step = policy.SyncIdentity{Target: target, UniqueIdentifier: r.uid, Attributes: map[string]string{}}
			if r.rename && len(s.Fallbacks[r.uid]) > 0 {
				// A rename follows the step's fallbacks when the first choice
				// is no valid identifier (policy.RenderIdentity).
				r.step.Fallbacks = map[string][]string{r.uid: s.Fallbacks[r.uid]}
			}
			for name, src := range merged {
				if ok[name] {
					r.step.Attributes[name] = src
				}
			}
			for _, n := range s.NotContinuouslySynced {
				r.skip[n] = true
			}
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("target %q has no sync_identity step", target)
	}
	return rules, nil
}

// renderDesired computes the compared attributes of one identity and its
// unique identifier's attribute and value; nil attributes when no rule
// applies (its condition excludes the identity). A linked account keeps
// the identifier it was created with (linked) unless the rule allows
// renames: the second Jane Doe stays jane.doe2.
func (a *Activities) renderDesired(rules []syncRule, tables map[string]*transform.Table, attrs map[string]string, linked string) (connectors.Attributes, string, string, error) {
	bare := &policy.Policy{Targets: a.cfg.Policy.Targets}
	for _, r := range rules {
		if r.when != "" {
			match, err := policy.EvalCondition(r.when, attrs)
			if err != nil {
				return nil, "", "", err
			}
			if !match {
				continue
			}
		}
		env := &transform.Env{Attrs: attrs, Lookups: tables}
		var out connectors.Attributes
		var err error
		switch {
		case r.rename:
			// The identifier is written: never rename to ".@example.com".
			out, err = policy.RenderIdentity(bare, r.step, env)
		case linked != "":
			// The account keeps its identifier (a fallback: jsmith2), and
			// what reads {$target.<uid>} (jsmith2@corp) renders from it.
			out, err = policy.RenderPinned(bare, r.step, env, linked)
		default:
			out, err = policy.RenderAttributes(bare, r.step, env)
		}
		if err != nil {
			return nil, "", "", err
		}
		uidValue := out[r.uid]
		for n := range r.skip {
			delete(out, n)
		}
		return out, r.uid, uidValue, nil
	}
	return nil, "", "", nil
}

func active(r IdentityRecord) bool { return r.Status != contract.StatusDeprovisioned }

// buildSnapshot lists the directory and renders every active identity.
func (a *Activities) buildSnapshot(ctx context.Context, target string) (*snapshot, error) {
	if a.cfg.Directory == nil {
		return nil, permanent("NoDirectory", errors.New("attribute sync: no identity directory configured"))
	}
	rules, err := syncRules(a.cfg.Policy, target)
	if err != nil {
		return nil, permanent("PolicyInvalid", err)
	}
	tables, err := a.cfg.Policy.Tables()
	if err != nil {
		return nil, permanent("PolicyInvalid", err)
	}
	s := &snapshot{byAccount: map[string]*desired{}, byUID: map[string]*desired{}, built: time.Now()}
	links := map[string]string{} // employee ID → account on target (references)
	for ids, err := range identityPages(ctx, a.cfg.Directory) {
		if err != nil {
			return nil, toTemporal(fmt.Errorf("attribute sync: list identities: %w", err))
		}
		for _, r := range ids {
			links[r.EmployeeID] = r.Accounts[target]
			if !active(r) || len(r.Attributes) == 0 {
				continue // leavers; identities that published nothing yet
			}
			attrs, uid, uidValue, err := a.renderDesired(rules, tables, r.Attributes, r.Identifiers[target])
			if err != nil {
				s.problems = append(s.problems, AttrSyncProblem{Target: target, EmployeeID: r.EmployeeID, Error: "render: " + err.Error()})
				continue
			}
			if attrs == nil {
				continue
			}
			d := &desired{employeeID: r.EmployeeID, accountID: r.Accounts[target], attrs: attrs}
			s.uid = uid
			s.active++
			if d.accountID != "" {
				if other, taken := s.byAccount[d.accountID]; taken {
					// Two people linked to one account (reconciliation's
					// "disputed"): syncing either could write one person's
					// data on the other's account.
					if other != nil {
						s.active--
						s.problems = append(s.problems, AttrSyncProblem{Target: target, EmployeeID: other.employeeID, AccountID: d.accountID, Error: "account linked to another identity too; not synced"})
					}
					s.problems = append(s.problems, AttrSyncProblem{Target: target, EmployeeID: r.EmployeeID, AccountID: d.accountID, Error: "account linked to another identity too; not synced"})
					s.byAccount[d.accountID] = nil
					s.active--
					continue
				}
				s.byAccount[d.accountID] = d
			}
			if uidValue == "" {
				continue
			}
			k := strings.ToLower(uidValue)
			if other, taken := s.byUID[k]; taken {
				// Two people render the same identifier: writing either's
				// attributes could put one person's data on the other's
				// account, so neither is matched by it.
				if other != nil {
					s.active--
					s.problems = append(s.problems, AttrSyncProblem{Target: target, EmployeeID: other.employeeID, Attributes: []string{uid}, Error: "unique identifier shared with another identity; not synced"})
				}
				s.problems = append(s.problems, AttrSyncProblem{Target: target, EmployeeID: r.EmployeeID, Attributes: []string{uid}, Error: "unique identifier shared with another identity; not synced"})
				s.byUID[k] = nil
				s.active--
				continue
			}
			s.byUID[k] = d
		}
		activity.RecordHeartbeat(ctx) // listing a large directory takes a while
	}
	a.snapshotReferences(target, s, links)
	s.desired = s.fingerprint()
	return s, nil
}

// fingerprint hashes the desired state: every rendered identity with its
// account and attributes, and every identity that could not be rendered.
func (s *snapshot) fingerprint() string {
	h := sha256.New()
	var ds []*desired
	for _, m := range []map[string]*desired{s.byAccount, s.byUID} {
		for _, d := range m {
			if d != nil && !slices.Contains(ds, d) {
				ds = append(ds, d)
			}
		}
	}
	slices.SortFunc(ds, func(a, b *desired) int { return strings.Compare(a.employeeID, b.employeeID) })
	for _, d := range ds {
		fmt.Fprintf(h, "%q %q\n", d.employeeID, d.accountID)
		for _, k := range slices.Sorted(maps.Keys(d.attrs)) {
			fmt.Fprintf(h, "\t%q=%q\n", k, d.attrs[k])
		}
	}
	for _, p := range s.problems {
		fmt.Fprintf(h, "! %q %q %q\n", p.EmployeeID, p.AccountID, p.Error)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// snapshotReferences resolves, in every desired state of the snapshot,
// the attributes the target describes as references (Entra's manager)
// from an HR employee ID to that person's account, as sync_identity does
// (resolveReferences), from the identities the snapshot just listed. A
// person without an account there is left out of the comparison: the
// sync never writes an employee ID where an account is meant.
func (a *Activities) snapshotReferences(target string, s *snapshot, links map[string]string) {
	d, ok := policy.Describe(a.cfg.Policy.Targets[target].Type)
	if !ok {
		return
	}
	seen := map[*desired]bool{}
	for _, m := range []map[string]*desired{s.byAccount, s.byUID} {
		for _, ds := range m {
			if ds == nil || seen[ds] {
				continue
			}
			seen[ds] = true
			for k, v := range ds.attrs {
				spec, ok := d.Attribute(k)
				if !ok || !spec.Reference || v == "" {
					continue
				}
				if acct, known := links[v]; known {
					if acct == "" {
						delete(ds.attrs, k)
					} else {
						ds.attrs[k] = acct
					}
				}
			}
		}
	}
}

// progress is the heartbeat of a chunk: where to resume after a retry.
type progress struct {
	Cursor string             `json:"cursor"`
	Result AttrSyncPageResult `json:"result"`
	Done   bool               `json:"done"`
}

// SyncAttributesPage reconciles up to MaxPages pages of a target (or, with
// EmployeeIDs, just those identities). It heartbeats its cursor after every
// page, so a retry resumes where the last attempt stopped. A permanent
// error on one account is counted and reported; a rate limit or a transient
// error fails the attempt, which Temporal retries (after the server's delay
// for a 429) from the last cursor.
func (a *Activities) SyncAttributesPage(ctx context.Context, in AttrSyncPageInput) (AttrSyncPageResult, error) {
	res, err := a.syncAttributesPage(ctx, in)
	res.Audit = a.cfg.Audit != nil
	return res, err
}

func (a *Activities) syncAttributesPage(ctx context.Context, in AttrSyncPageInput) (AttrSyncPageResult, error) {
	c, err := a.connector(in.Target)
	if err != nil {
		return AttrSyncPageResult{}, err
	}
	syncer, ok := c.(connectors.AccountSyncer)
	if !ok {
		return AttrSyncPageResult{}, unsupported(in.Target, "sync identities")
	}
	guard := map[string]GuardEntry{}
	for _, g := range in.Guard {
		guard[g.Key()] = g
	}
	if len(in.EmployeeIDs) > 0 {
		return a.syncIdentities(ctx, in, syncer, guard)
	}
	lister, ok := c.(connectors.AccountLister)
	if !ok {
		return AttrSyncPageResult{}, unsupported(in.Target, "list accounts")
	}
	key := in.Snapshot + "\x00" + in.Target
	snap := a.snapshots.get(key)
	if snap == nil {
		if snap, err = a.buildSnapshot(ctx, in.Target); err != nil {
			return AttrSyncPageResult{}, err
		}
		a.snapshots.put(key, snap)
	}
	if snap.active == 0 && len(snap.problems) == 0 {
		return AttrSyncPageResult{}, nil // nobody to sync: spare the target its reads
	}
	changes, _ := c.(connectors.ChangeLister)
	p := progress{Cursor: in.Cursor, Result: AttrSyncPageResult{Round: in.Round}}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &p) // resume the last attempt
		if p.Done {
			return p.Result, nil
		}
	}
	res := &p.Result
	// full starts a round over every account. The first chunk of it reports
	// identities it could not render and the population size, from which
	// Unmatched is derived (a change round sees too few accounts for that).
	full := func() {
		p.Cursor, res.Round.Incremental = "", false
		for _, p := range snap.problems {
			res.problem(p)
		}
		res.Counts.Failures += len(snap.problems)
		res.Counts.Unmatched += snap.active
	}
	if in.Cursor == "" && p.Cursor == "" && res.Counts.PagesRead == 0 {
		if changes != nil && in.Since.Link != "" && in.Since.Desired == snap.desired {
			p.Cursor, res.Round.Incremental = in.Since.Link, true
		} else {
			full()
		}
	}
	maxPages := in.MaxPages
	if maxPages <= 0 {
		maxPages = 20
	}
	for range maxPages {
		var (
			accts       []connectors.Account
			next, delta string
		)
		if changes != nil {
			accts, _, next, delta, err = changes.ListChanges(ctx, p.Cursor)
			if errors.Is(err, connectors.ErrResync) && res.Round.Incremental && p.Cursor == in.Since.Link {
				full() // the target forgot the link: read everything again
				accts, _, next, delta, err = changes.ListChanges(ctx, p.Cursor)
			}
		} else {
			accts, next, err = lister.ListAccounts(ctx, p.Cursor, in.PageSize)
		}
		if err != nil {
			return AttrSyncPageResult{}, toTemporal(fmt.Errorf("%s: list accounts: %w", in.Target, err))
		}
		res.Counts.PagesRead++
		var work []pending
		for _, acct := range accts {
			d, linked := snap.byAccount[acct.ID]
			if linked && d == nil {
				continue // disputed: linked to two identities
			}
			if d == nil {
				d = snap.byUID[strings.ToLower(acct.Attributes[snap.uid])]
			}
			if d == nil || (d.accountID != "" && d.accountID != acct.ID) {
				continue // not an account of an active identity
			}
			res.Counts.IdentitiesChecked++
			if !res.Round.Incremental {
				res.Counts.Unmatched--
			}
			work = append(work, pending{d: d, acct: acct})
		}
		if res.Round.Incremental {
			if work, err = readWhole(ctx, c, work); err != nil {
				return AttrSyncPageResult{}, toTemporal(fmt.Errorf("%s: read changed account: %w", in.Target, err))
			}
		}
		changed := res.Counts.AccountsChanged
		if err := a.writeAll(ctx, in.Target, syncer, work, guard, res); err != nil {
			return AttrSyncPageResult{}, err
		}
		// A change round starts at its link, never at "": reconciliation
		// finds no full list of this run here and reads the target itself.
		snap.remember(p.Cursor, accts, next, res.Counts.AccountsChanged == changed)
		p.Cursor = next
		p.Done = next == ""
		res.Next = next
		if p.Done && delta != "" && !res.Round.Unsynced {
			res.Delta = DeltaState{Link: delta, Desired: snap.desired}
		}
		activity.RecordHeartbeat(ctx, p)
		if p.Done {
			break
		}
	}
	return *res, nil
}

// syncIdentities is the manual sync of a few identities: one lookup each.
func (a *Activities) syncIdentities(ctx context.Context, in AttrSyncPageInput, syncer connectors.AccountSyncer, guard map[string]GuardEntry) (AttrSyncPageResult, error) {
	if a.cfg.Directory == nil {
		return AttrSyncPageResult{}, permanent("NoDirectory", errors.New("attribute sync: no identity directory configured"))
	}
	rules, err := syncRules(a.cfg.Policy, in.Target)
	if err != nil {
		return AttrSyncPageResult{}, permanent("PolicyInvalid", err)
	}
	tables, err := a.cfg.Policy.Tables()
	if err != nil {
		return AttrSyncPageResult{}, permanent("PolicyInvalid", err)
	}
	res := &AttrSyncPageResult{}
	var work []pending
	for _, id := range in.EmployeeIDs {
		r, err := a.cfg.Directory.Identity(ctx, id)
		if errors.Is(err, connectors.ErrNotFound) {
			res.Counts.Failures++ // the operator named someone jml does not know
			res.problem(AttrSyncProblem{Target: in.Target, EmployeeID: id, Error: "unknown identity"})
			continue
		}
		if err != nil {
			return AttrSyncPageResult{}, toTemporal(fmt.Errorf("attribute sync: identity %s: %w", id, err))
		}
		if !active(r) {
			res.Counts.Skipped++ // leavers are never synced
			continue
		}
		if len(r.Attributes) == 0 {
			res.Counts.Failures++
			res.problem(AttrSyncProblem{Target: in.Target, EmployeeID: id, Error: "no attributes known for this identity yet"})
			continue
		}
		attrs, uid, uidValue, err := a.renderDesired(rules, tables, r.Attributes, r.Identifiers[in.Target])
		if err != nil {
			res.Counts.Failures++
			res.problem(AttrSyncProblem{Target: in.Target, EmployeeID: id, Error: "render: " + err.Error()})
			continue
		}
		if attrs == nil {
			res.Counts.Skipped++ // the policy gives this identity no account here
			continue
		}
		if err := a.resolveReferences(ctx, in.Target, attrs); err != nil {
			return AttrSyncPageResult{}, err
		}
		d := &desired{employeeID: id, accountID: r.Accounts[in.Target], attrs: attrs}
		var acct *connectors.Account
		if d.accountID != "" {
			acct, err = syncer.FindAccount(ctx, connectors.Key{Attribute: "id", Value: d.accountID})
		}
		if acct == nil && uidValue != "" {
			acct, err = syncer.FindAccount(ctx, connectors.Key{Attribute: uid, Value: uidValue})
		}
		switch {
		case errors.Is(err, connectors.ErrNotFound) || (err == nil && acct == nil):
			res.Counts.Unmatched++
			res.problem(AttrSyncProblem{Target: in.Target, EmployeeID: id, Error: "no account"})
			continue
		case err != nil:
			return AttrSyncPageResult{}, toTemporal(fmt.Errorf("%s: find account: %w", in.Target, err))
		}
		res.Counts.IdentitiesChecked++
		work = append(work, pending{d: d, acct: *acct})
	}
	if err := a.writeAll(ctx, in.Target, syncer, work, guard, res); err != nil {
		return AttrSyncPageResult{}, err
	}
	return *res, nil
}

func (r *AttrSyncPageResult) problem(p AttrSyncProblem) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

type pending struct {
	d    *desired
	acct connectors.Account
}

// writeConcurrency bounds the writes in flight per chunk; the connector's
// own rate limit paces them further.
const writeConcurrency = 4

// writeAll diffs each account against its identity, applies the loop
// guard and writes the differences, a few accounts at a time.
func (a *Activities) writeAll(ctx context.Context, target string, syncer connectors.AccountSyncer, work []pending, guard map[string]GuardEntry, res *AttrSyncPageResult) error {
	type job struct {
		p    pending
		diff connectors.Diff
	}
	var jobs []job
	for _, w := range work {
		diff := connectors.Diff{}
		for name, want := range w.d.attrs {
			k := GuardEntry{Target: target, AccountID: w.acct.ID, Attribute: name}.Key()
			g, seen := guard[k]
			if AttrEqual(name, want, w.acct.Attributes[name]) {
				if seen {
					delete(guard, k)
					res.Cleared = append(res.Cleared, k)
				}
				continue
			}
			h := valueHash(want)
			if seen && g.Want == h && g.Writes >= guardStrikes {
				if !g.Reported {
					g.Reported = true
					guard[k] = g
					res.Guard = append(res.Guard, g)
					res.Counts.Stuck++
					res.problem(AttrSyncProblem{Target: target, EmployeeID: w.d.employeeID, AccountID: w.acct.ID, Attributes: []string{name},
						Error: fmt.Sprintf("value does not stick: written %d times and read back different; not written again", g.Writes)})
				}
				continue
			}
			diff[name] = want
		}
		if len(diff) > 0 {
			jobs = append(jobs, job{p: w, diff: diff})
		}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		retryErr error
		sem      = make(chan struct{}, writeConcurrency)
	)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := syncer.UpdateAccount(ctx, j.p.acct.ID, j.diff)
			mu.Lock()
			defer mu.Unlock()
			names := slices.Sorted(maps.Keys(j.diff))
			if err != nil {
				if connectors.IsPermanent(err) || errors.Is(err, connectors.ErrNotFound) || errors.Is(err, connectors.ErrConflict) {
					res.Round.Unsynced = true
					res.Counts.Failures++
					res.problem(AttrSyncProblem{Target: target, EmployeeID: j.p.d.employeeID, AccountID: j.p.acct.ID, Attributes: names, Error: err.Error()})
					return
				}
				if retryErr == nil {
					retryErr = err
				}
				return
			}
			res.Counts.AccountsChanged++
			res.Counts.AttributesWritten += len(j.diff)
			written := map[string]string{}
			for k, v := range j.diff {
				if !a.cfg.Policy.Audit.Auditable(k) {
					v = "" // the name only
				}
				written[k] = v
			}
			// Read back by the next cycle (the loop guard), not here.
			res.Effects = append(res.Effects, audit.Effect{Action: audit.AccountUpdated, Target: target, AccountID: j.p.acct.ID,
				EmployeeID: j.p.d.employeeID, Attributes: written, Detail: "attribute sync: the next cycle reads it back"})
			for _, name := range names {
				e := GuardEntry{Target: target, AccountID: j.p.acct.ID, Attribute: name, Want: valueHash(j.diff[name]), Writes: 1}
				if g, ok := guard[e.Key()]; ok && g.Want == e.Want {
					e.Writes = g.Writes + 1
				}
				guard[e.Key()] = e
				res.Guard = append(res.Guard, e)
			}
			a.log.Info("attribute sync: account updated", zap.String("target", target),
				zap.String("employee_id", j.p.d.employeeID), zap.Strings("attributes", names))
		}()
	}
	wg.Wait()
	if retryErr != nil {
		return toTemporal(fmt.Errorf("%s: update account: %w", target, retryErr))
	}
	return nil
}

func valueHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}

// caseInsensitive attributes: identifiers and e-mail addresses.
func caseInsensitive(name string) bool {
	switch name {
	case "user_name", "login", "email", "second_email", "user_principal_name", "mail":
		return true
	}
	return strings.HasPrefix(name, "emails.")
}

// AttrEqual compares a desired and an actual value of attribute name the
// way the attribute sync does: null and empty are the same, surrounding
// space is ignored, booleans and identifiers compare case-insensitively.
func AttrEqual(name, want, got string) bool {
	want, got = strings.TrimSpace(want), strings.TrimSpace(got)
	if want == got {
		return true
	}
	if caseInsensitive(name) || isBool(want) && isBool(got) {
		return strings.EqualFold(want, got)
	}
	return false
}

func isBool(s string) bool { return strings.EqualFold(s, "true") || strings.EqualFold(s, "false") }

// TemporalDirectory reads identities from the Identity workflows: running
// executions found by a visibility query, each carrying its IdentityRecord
// in the memo IdentityMemoKey. Listing N identities costs ceil(N/1000)
// visibility calls and no workflow task, whatever the population.
type TemporalDirectory struct {
	Client client.Client
	// DataConverter decodes the memo; it must be the one the workers use
	// (with the payload codec). Nil: the SDK default.
	DataConverter converter.DataConverter
}

func (d TemporalDirectory) decode(employeeID string, memo *commonpb.Memo, sa *commonpb.SearchAttributes) (IdentityRecord, error) {
	rec := IdentityRecord{EmployeeID: employeeID, InFlight: inFlight(sa)}
	p := memo.GetFields()[contract.IdentityMemoKey]
	if p == nil {
		return rec, nil // published nothing yet: no attributes, never synced
	}
	dc := d.DataConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	if err := dc.FromPayload(p, &rec); err != nil {
		return rec, fmt.Errorf("identity %s: memo: %w (the directory must decode with the workers' data converter, payload codec included)", employeeID, err)
	}
	rec.EmployeeID, rec.InFlight = employeeID, inFlight(sa)
	return rec, nil
}

// inFlight reads an identity's JmlState: anything but Idle means one of the
// person's runs is running or waiting (the identity mirrors its run's
// NeedsAttention and Blocked, and shows Waiting before an effective date).
func inFlight(sa *commonpb.SearchAttributes) bool {
	p := sa.GetIndexedFields()[contract.SAState]
	if p == nil {
		return false
	}
	var state string
	// Search attributes are never encoded by the payload codec.
	if err := converter.GetDefaultDataConverter().FromPayload(p, &state); err != nil {
		return false
	}
	return state != "" && state != contract.StateIdle
}

// ListIdentities lists running Identity workflows; the cursor is
// Temporal's page token.
func (d TemporalDirectory) ListIdentities(ctx context.Context, cursor []byte, pageSize int) ([]IdentityRecord, []byte, error) {
	resp, err := d.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query:         fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.IdentityWorkflowName),
		PageSize:      int32(pageSize),
		NextPageToken: cursor,
	})
	if err != nil {
		return nil, nil, connectors.Transient(fmt.Errorf("list identity workflows: %w", err))
	}
	out := make([]IdentityRecord, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		id, ok := contract.EmployeeIDOf(e.GetExecution().GetWorkflowId())
		if !ok {
			continue
		}
		rec, err := d.decode(id, e.GetMemo(), e.GetSearchAttributes())
		if err != nil {
			return nil, nil, connectors.Permanent("IdentityMemo", err)
		}
		out = append(out, rec)
	}
	return out, resp.GetNextPageToken(), nil
}

// Identity describes one Identity workflow.
func (d TemporalDirectory) Identity(ctx context.Context, employeeID string) (IdentityRecord, error) {
	resp, err := d.Client.DescribeWorkflowExecution(ctx, contract.IdentityWorkflowID(employeeID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return IdentityRecord{}, fmt.Errorf("identity %s: %w", employeeID, connectors.ErrNotFound)
	}
	if err != nil {
		return IdentityRecord{}, connectors.Transient(fmt.Errorf("describe identity %s: %w", employeeID, err))
	}
	info := resp.GetWorkflowExecutionInfo()
	rec, err := d.decode(employeeID, info.GetMemo(), info.GetSearchAttributes())
	if err != nil {
		return IdentityRecord{}, connectors.Permanent("IdentityMemo", err)
	}
	return rec, nil
}

// GuardQuery finds the previous scheduled run of the attribute sync.
type GuardQuery struct {
	WorkflowType string `json:"workflow_type"`
	IDPrefix     string `json:"id_prefix"` // scheduled runs only, not manual ones
}

// PreviousAttrSyncGuard returns the loop-guard entries the last completed
// scheduled run ended with (its result's "guard"), so a value that never
// sticks is not rewritten on every run. None when there is no such run or
// no Client. Runs before "attribute-sync-delta" call it; later ones call
// PreviousAttrSyncState.
func (a *Activities) PreviousAttrSyncGuard(ctx context.Context, q GuardQuery) ([]GuardEntry, error) {
	st, err := a.PreviousAttrSyncState(ctx, q)
	return st.Guard, err
}

// AttrSyncState is what the last completed scheduled run of the attribute
// sync ended with and the next one starts from.
type AttrSyncState struct {
	Guard []GuardEntry `json:"guard,omitempty"`
	// Delta are the change links by target (AttrSyncPageInput.Since).
	Delta map[string]DeltaState `json:"delta,omitempty"`
}

// PreviousAttrSyncState returns the loop guard and the change links the
// last completed scheduled run ended with (its result's "guard" and
// "delta"). None when there is no such run or no Client.
func (a *Activities) PreviousAttrSyncState(ctx context.Context, q GuardQuery) (AttrSyncState, error) {
	if a.cfg.Client == nil {
		return AttrSyncState{}, nil
	}
	resp, err := a.cfg.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query:    fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", q.WorkflowType),
		PageSize: 100,
	})
	if err != nil {
		return AttrSyncState{}, toTemporal(connectors.Transient(fmt.Errorf("attribute sync: list previous runs: %w", err)))
	}
	var last *workflowpb.WorkflowExecutionInfo
	for _, e := range resp.GetExecutions() {
		if !strings.HasPrefix(e.GetExecution().GetWorkflowId(), q.IDPrefix) {
			continue
		}
		if last == nil || e.GetCloseTime().AsTime().After(last.GetCloseTime().AsTime()) {
			last = e
		}
	}
	if last == nil {
		return AttrSyncState{}, nil
	}
	var prev AttrSyncState
	run := a.cfg.Client.GetWorkflow(ctx, last.GetExecution().GetWorkflowId(), last.GetExecution().GetRunId())
	if err := run.Get(ctx, &prev); err != nil {
		a.log.Warn("attribute sync: previous run's state unreadable; starting without", zap.Error(err))
		return AttrSyncState{}, nil
	}
	return prev, nil
}

// readWhole reads each account of a change round whole before it is
// compared: Graph's delta answers an updated user with at least its
// changed properties, not all of them
// (https://learn.microsoft.com/en-us/graph/delta-query-users), and a
// property it left out is not an empty one. An account gone since is
// dropped.
func readWhole(ctx context.Context, c any, work []pending) ([]pending, error) {
	rd, ok := c.(connectors.AccountReader)
	if !ok {
		return work, nil
	}
	out := work[:0]
	for _, w := range work {
		acct, err := rd.ReadAccount(ctx, w.acct.ID)
		if errors.Is(err, connectors.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w.acct = *acct
		out = append(out, w)
	}
	return out, nil
}
