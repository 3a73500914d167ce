package activities

// Reconciliation (docs/reconciliation.md): once per attribute-sync cycle
// and target, read the target's groups (with members) and accounts in
// pages, classify every account against the population (after midPoint's
// synchronization situations) and fix the drift of managed group
// memberships, writing only the difference.
//
//   - linked: the account of one active person; their managed groups are
//     recomputed from the policy's relationship rules and fixed. The
//     account of a person whose run is in flight (running, or waiting for
//     an operator or a date) is linked and left alone: the run owns it.
//   - leftover: the still-active account of a terminated person
//     (reconcile.leftovers: disable disables it).
//   - orphan: matched to nobody (reconcile.orphans: disable disables the
//     active ones).
//   - disputed: matched to two or more people; never touched.
//   - protected: on the target's never_touch list; never touched.
//
// A person is matched by the account link jml keeps (Accounts[target],
// recorded as soon as a run's step creates or links the account); an
// unlinked person by their unique identifier (case-insensitive); a person
// with a run in flight also by their employee ID in the attributes the
// sync step sets to {employee_id} (external_id, employee_number). Only
// managed groups are compared: every group a rule can produce plus the
// target's managed_groups. A cycle that would remove more than the
// policy's share of a group's members holds those removals for an
// operator; a disable asks the safety limit first.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/transform"
)

// Account situations of a reconciliation.
const (
	SituationLinked    = "linked"
	SituationLeftover  = "leftover"
	SituationOrphan    = "orphan"
	SituationDisputed  = "disputed"
	SituationProtected = "protected"
)

// Actions taken on a reported account.
const (
	ActionReported = "reported"
	ActionDisabled = "disabled"
	ActionBlocked  = "blocked"
	ActionFailed   = "failed"
)

// ReconcileCounts are the numbers of one target's reconciliation.
type ReconcileCounts struct {
	AccountsRead int `json:"accounts_read"`
	GroupsRead   int `json:"groups_read"`
	Reads        int `json:"reads"`  // list requests (pages)
	Writes       int `json:"writes"` // membership changes, disables, groups created

	Linked        int `json:"linked"`
	Leftovers     int `json:"leftovers"`
	Orphans       int `json:"orphans"`
	Disputed      int `json:"disputed"`
	Protected     int `json:"protected"`
	Deprovisioned int `json:"deprovisioned"` // terminated people's disabled accounts: as it should be
	// InFlight: linked accounts of people whose run is in flight (running,
	// or waiting for an operator or a date), left alone.
	InFlight int `json:"in_flight"`

	// Drift by kind: memberships missing (due, absent) and extra (managed,
	// no longer due); found, and fixed.
	MissingFound int `json:"missing_found"`
	ExtraFound   int `json:"extra_found"`
	Added        int `json:"added"`
	Removed      int `json:"removed"`

	LeftoversDisabled int `json:"leftovers_disabled"`
	OrphansDisabled   int `json:"orphans_disabled"`
	// Blocked changes wait for an operator (mass removal, safety limit).
	Blocked  int `json:"blocked"`
	Failures int `json:"failures"`
}

// Add adds o to c.
func (c *ReconcileCounts) Add(o ReconcileCounts) {
	c.AccountsRead += o.AccountsRead
	c.GroupsRead += o.GroupsRead
	c.Reads += o.Reads
	c.Writes += o.Writes
	c.Linked += o.Linked
	c.Leftovers += o.Leftovers
	c.Orphans += o.Orphans
	c.Disputed += o.Disputed
	c.Protected += o.Protected
	c.Deprovisioned += o.Deprovisioned
	c.InFlight += o.InFlight
	c.MissingFound += o.MissingFound
	c.ExtraFound += o.ExtraFound
	c.Added += o.Added
	c.Removed += o.Removed
	c.LeftoversDisabled += o.LeftoversDisabled
	c.OrphansDisabled += o.OrphansDisabled
	c.Blocked += o.Blocked
	c.Failures += o.Failures
}

// ReconcileAccount is one account the report lists: an orphan, a leftover
// or a disputed account.
type ReconcileAccount struct {
	Target    string `json:"target"`
	Situation string `json:"situation"`
	AccountID string `json:"account_id"`
	// Identifier is the account's unique identifier (login, user name).
	Identifier  string   `json:"identifier,omitempty"`
	Active      bool     `json:"active"`
	EmployeeIDs []string `json:"employee_ids,omitempty"`
	Action      string   `json:"action"`
}

// BlockedGroup is a managed group whose removals exceed the share.
type BlockedGroup struct {
	Group   string `json:"group"`
	Remove  int    `json:"remove"`
	Members int    `json:"members"`
}

// ReconcileInput asks for one target's reconciliation.
type ReconcileInput struct {
	Snapshot string `json:"snapshot"`
	Target   string `json:"target"`
	PageSize int    `json:"page_size,omitempty"`
	// EmployeeIDs limits the run to these people's groups (manual sync):
	// one membership read each, no classification.
	EmployeeIDs []string `json:"employee_ids,omitempty"`
	// Release: an operator released this target's held changes; the
	// removal share and the safety limit are not asked again.
	Release bool `json:"release,omitempty"`
	// Governor addresses the safety limit asked before each disable
	// (Request.Key is set per account).
	Governor GovernorCall `json:"governor"`
}

// ReconcileResult is one target's reconciliation.
type ReconcileResult struct {
	Counts ReconcileCounts `json:"counts"`
	// Accounts are the orphans, leftovers and disputed accounts (at most
	// maxReportAccounts; the counts stay exact).
	Accounts []ReconcileAccount `json:"accounts,omitempty"`
	// Blocked groups and the reason: changes held for an operator.
	Blocked       []BlockedGroup    `json:"blocked,omitempty"`
	BlockedReason string            `json:"blocked_reason,omitempty"`
	Problems      []AttrSyncProblem `json:"problems,omitempty"`
	// Effects are the changes made, one per membership and disable, each
	// with its read-back, for the audit trail; Audit: this worker has an
	// audit store (the run records them).
	Effects []audit.Effect `json:"effects,omitempty"`
	Audit   bool           `json:"audit,omitempty"`
}

// maxReportAccounts bounds the accounts one target's result lists.
const maxReportAccounts = 500

func (r *ReconcileResult) problem(p AttrSyncProblem) {
	r.Counts.Failures++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

func (r *ReconcileResult) report(a ReconcileAccount) {
	if len(r.Accounts) < maxReportAccounts {
		r.Accounts = append(r.Accounts, a)
	}
}

// ReconcileTargets lists the targets to reconcile: none unless the policy
// has a reconcile block; then every target it names, has relationship
// rules for or attribute-syncs, whose connector can list accounts.
func (a *Activities) ReconcileTargets(ctx context.Context) ([]string, error) {
	p := a.cfg.Policy
	if !p.Reconcile.Enabled() {
		return nil, nil
	}
	sync, err := a.AttributeSyncTargets(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(p.Targets)) {
		_, named := p.Reconcile.Targets[name]
		if !named && len(p.GroupRules(name)) == 0 && !slices.Contains(sync.Targets, name) {
			continue
		}
		if _, ok := a.cfg.Targets[name].(connectors.AccountLister); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// person is one identity as reconciliation sees it in one target.
type person struct {
	id     string
	active bool
	// inFlight: a run of the person is in flight; their accounts are left
	// alone (the run owns them) and never orphans or leftovers.
	inFlight bool
	link     string
	uid      string   // lower-cased unique identifier for unlinked people
	groups   []string // due group names (active people)
	bad      bool     // rules could not be rendered: groups left alone
}

// groupRule is a policy.GroupRule parsed once.
type groupRule struct {
	policy.GroupRule
	tmpl *transform.Template
}

// reconciler is one target's reconciliation in progress.
type reconciler struct {
	a       *Activities
	in      ReconcileInput
	res     *ReconcileResult
	managed []string
	rules   []groupRule
	never   map[string]bool
	uidAttr string
	byLink  map[string][]*person
	byUID   map[string][]*person
	// byEmployee: people with a run in flight, by lower-cased employee ID,
	// matched against the account attributes in eidAttrs (those the sync
	// step renders from {employee_id} alone, such as external_id): a run's
	// new account is theirs before its link is known.
	byEmployee map[string][]*person
	eidAttrs   []string
	byName     map[string]connectors.GroupMembers // lower(name) → group (every group read)
	memberOf   map[string]map[string]bool         // account ID → managed group IDs
	size       map[string]int                     // managed group ID → members
	missing    map[string]bool                    // due groups absent from the target, reported once
	// granted: time-bound access grants in force (grantKey), never drift.
	granted map[string]bool
}

type membershipOp struct {
	groupID, group, accountID, employeeID string
	add                                   bool
}

// ReconcileTarget reconciles one target (see the file comment).
func (a *Activities) ReconcileTarget(ctx context.Context, in ReconcileInput) (ReconcileResult, error) {
	c, err := a.connector(in.Target)
	if err != nil {
		return ReconcileResult{}, err
	}
	r := &reconciler{a: a, in: in, res: &ReconcileResult{Audit: a.cfg.Audit != nil}, managed: a.cfg.Policy.ManagedGroupPatterns(in.Target),
		never: map[string]bool{}, byLink: map[string][]*person{}, byUID: map[string][]*person{}, byEmployee: map[string][]*person{},
		byName: map[string]connectors.GroupMembers{}, memberOf: map[string]map[string]bool{}, size: map[string]int{}, missing: map[string]bool{}}
	for _, n := range a.cfg.Policy.Reconcile.Targets[in.Target].NeverTouch {
		r.never[strings.ToLower(strings.TrimSpace(n))] = true
	}
	if r.rules, err = parseGroupRules(a.cfg.Policy, in.Target); err != nil {
		return ReconcileResult{}, err
	}
	if err := r.loadGrants(ctx); err != nil {
		return ReconcileResult{}, err
	}
	rm, _ := c.(connectors.RelationshipManager)
	if len(in.EmployeeIDs) > 0 {
		if rm == nil || len(r.managed) == 0 {
			return *r.res, nil
		}
		return r.manual(ctx, c, rm)
	}
	lister, ok := c.(connectors.AccountLister)
	if !ok {
		return ReconcileResult{}, unsupported(in.Target, "list accounts")
	}
	if err := r.population(ctx); err != nil {
		return ReconcileResult{}, err
	}
	gl, _ := c.(connectors.GroupLister)
	groups := gl != nil && rm != nil && len(r.managed) > 0
	if groups {
		err := r.readGroups(ctx, gl)
		switch {
		case connectors.IsPermanent(err) || errors.Is(err, connectors.ErrNotFound):
			// No groups to read (a SCIM app without /Groups): the accounts
			// are still classified.
			groups = false
			r.res.problem(AttrSyncProblem{Target: in.Target, Error: "groups not reconciled: " + err.Error()})
		case err != nil:
			return ReconcileResult{}, toTemporal(err)
		}
	}
	var ops []membershipOp
	var disable []ReconcileAccount
	classify := func(accts []connectors.Account) {
		for _, acct := range accts {
			op, dis := r.classify(ctx, c, acct, groups)
			ops = append(ops, op...)
			if dis != nil {
				disable = append(disable, *dis)
			}
		}
	}
	// The attribute sync of this cycle just read every account on this
	// worker and wrote none: use its pages instead of reading them again.
	if snap := a.snapshots.get(in.Snapshot + "\x00" + in.Target); snap != nil && !in.Release {
		if pages, ok := snap.accountPages(); ok {
			for _, p := range pages {
				classify(p)
			}
			lister = nil
		}
	}
	// Reconciliation reads the full list even where the attribute sync
	// reads changes (connectors.ChangeLister): an orphan or a leftover is
	// found by what is there, and a change round shows only what moved.
	for cursor := ""; lister != nil; {
		accts, next, err := lister.ListAccounts(ctx, cursor, in.PageSize)
		if err != nil {
			return ReconcileResult{}, toTemporal(fmt.Errorf("%s: list accounts: %w", in.Target, err))
		}
		r.res.Counts.Reads++
		classify(accts)
		activity.RecordHeartbeat(ctx, cursor)
		if next == "" {
			break
		}
		cursor = next
	}
	ops = r.holdMassRemovals(ops)
	if err := r.apply(ctx, rm, ops); err != nil {
		return ReconcileResult{}, err
	}
	if err := r.disable(ctx, c, disable); err != nil {
		return ReconcileResult{}, err
	}
	return *r.res, nil
}

// population lists the directory: every identity with its link or unique
// identifier, and the groups each active one is due.
func (r *reconciler) population(ctx context.Context) error {
	a := r.a
	if a.cfg.Directory == nil {
		return permanent("NoDirectory", errors.New("reconcile: no identity directory configured"))
	}
	rules, err := syncRules(a.cfg.Policy, r.in.Target)
	if err != nil {
		rules = nil // no sync step: people are matched by their links only
	}
	tables, err := a.cfg.Policy.Tables()
	if err != nil {
		return permanent("PolicyInvalid", err)
	}
	bad := 0
	defer func() {
		if bad > 0 {
			r.res.problem(AttrSyncProblem{Target: r.in.Target, Error: fmt.Sprintf("group rules could not be evaluated for %d people; their groups were left alone", bad)})
		}
	}()
	for ids, err := range identityPages(ctx, a.cfg.Directory) {
		if err != nil {
			return toTemporal(fmt.Errorf("reconcile: list identities: %w", err))
		}
		for _, rec := range ids {
			p := &person{id: rec.EmployeeID, active: active(rec), inFlight: rec.InFlight, link: rec.Accounts[r.in.Target]}
			if p.inFlight {
				k := strings.ToLower(p.id)
				r.byEmployee[k] = append(r.byEmployee[k], p)
			}
			if p.link != "" {
				r.byLink[p.link] = append(r.byLink[p.link], p)
			} else if len(rules) > 0 && len(rec.Attributes) > 0 {
				if _, uid, v, err := a.renderDesired(rules, tables, rec.Attributes, rec.Identifiers[r.in.Target]); err == nil && v != "" {
					r.uidAttr = uid
					p.uid = strings.ToLower(v)
					r.byUID[p.uid] = append(r.byUID[p.uid], p)
				}
			}
			if p.active {
				p.groups, p.bad = r.due(rec.Attributes, tables)
				if p.bad && len(rec.Attributes) > 0 {
					bad++
				}
			}
		}
		activity.RecordHeartbeat(ctx)
	}
	if r.uidAttr == "" && len(rules) > 0 {
		r.uidAttr = rules[0].uid
	}
	r.eidAttrs = employeeIDAttrs(rules)
	return nil
}

// employeeIDAttrs are the account attributes the sync steps set to the
// employee ID alone ({employee_id}).
func employeeIDAttrs(rules []syncRule) []string {
	var out []string
	for _, rule := range rules {
		for name, src := range rule.step.Attributes {
			if strings.ReplaceAll(src, " ", "") == "{employee_id}" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// inFlightOwner finds the people with a run in flight whose employee ID an
// unlinked account carries.
func (r *reconciler) inFlightOwner(acct connectors.Account) []*person {
	for _, k := range r.eidAttrs {
		if v := strings.ToLower(strings.TrimSpace(acct.Attributes[k])); v != "" {
			if who := r.byEmployee[v]; len(who) > 0 {
				return who
			}
		}
	}
	return nil
}

// due renders the managed groups the rules give a person. bad: a rule
// could not be evaluated, so the person's groups are left alone.
func (r *reconciler) due(attrs map[string]string, tables map[string]*transform.Table) ([]string, bool) {
	return dueGroups(r.rules, r.managed, attrs, tables)
}

// parseGroupRules parses the policy's group rules for target once.
func parseGroupRules(p *policy.Policy, target string) ([]groupRule, error) {
	var out []groupRule
	for _, gr := range p.GroupRules(target) {
		t, err := transform.Parse(gr.Group)
		if err != nil {
			return nil, permanent("PolicyInvalid", fmt.Errorf("%s: group %q: %w", target, gr.Group, err))
		}
		out = append(out, groupRule{GroupRule: gr, tmpl: t})
	}
	return out, nil
}

// dueGroups renders the groups rules give a person (those matching
// managed, when it is set): what reconciliation keeps and what the revoke
// of a time-bound grant leaves alone. bad: a rule could not be evaluated.
func dueGroups(rules []groupRule, managed []string, attrs map[string]string, tables map[string]*transform.Table) ([]string, bool) {
	if len(attrs) == 0 {
		return nil, true // published nothing yet
	}
	var out []string
	env := &transform.Env{Attrs: attrs, Lookups: tables}
	for _, gr := range rules {
		if gr.When != "" {
			ok, err := policy.EvalCondition(gr.When, attrs)
			if err != nil {
				return nil, true
			}
			if !ok {
				continue
			}
		}
		v, err := gr.tmpl.Eval(env)
		if err != nil {
			return nil, true
		}
		if v != "" && (managed == nil || policy.MatchGroup(managed, v)) && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, v) }) {
			out = append(out, v)
		}
	}
	return out, false
}

// loadGrants reads the time-bound grants in force in the target: a
// member by grant is no drift until the grant expires.
func (r *reconciler) loadGrants(ctx context.Context) error {
	gd, ok := r.a.cfg.Directory.(GrantDirectory)
	if !ok {
		return nil
	}
	grants, err := gd.ActiveGrants(ctx)
	if err != nil {
		return toTemporal(fmt.Errorf("reconcile: access grants: %w", err))
	}
	r.granted = map[string]bool{}
	for _, g := range grants {
		if g.Target == r.in.Target {
			r.granted[grantKey(g.EmployeeID, g.Group)] = true
		}
	}
	return nil
}

func grantKey(employeeID, group string) string {
	return strings.ToLower(employeeID) + "\x00" + strings.ToLower(group)
}

// readGroups pages through the target's groups and, for managed ones
// listed without members, through their members.
func (r *reconciler) readGroups(ctx context.Context, gl connectors.GroupLister) error {
	for cursor := ""; ; {
		page, next, err := gl.ListGroups(ctx, cursor, r.in.PageSize)
		if err != nil {
			return fmt.Errorf("%s: list groups: %w", r.in.Target, err)
		}
		r.res.Counts.Reads++
		for _, g := range page {
			r.res.Counts.GroupsRead++
			r.byName[strings.ToLower(g.Name)] = g
			if !policy.MatchGroup(r.managed, g.Name) {
				continue
			}
			members := g.Members
			if members == nil {
				if members, err = r.members(ctx, gl, g.ID); err != nil {
					return err
				}
			}
			r.size[g.ID] = len(members)
			for _, id := range members {
				if r.memberOf[id] == nil {
					r.memberOf[id] = map[string]bool{}
				}
				r.memberOf[id][g.ID] = true
			}
		}
		activity.RecordHeartbeat(ctx)
		if next == "" {
			return nil
		}
		cursor = next
	}
}

func (r *reconciler) members(ctx context.Context, gl connectors.GroupLister, groupID string) ([]string, error) {
	var all []string
	for cursor := ""; ; {
		ids, next, err := gl.ListMembers(ctx, groupID, cursor, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: list group members: %w", r.in.Target, err)
		}
		r.res.Counts.Reads++
		all = append(all, ids...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

func (r *reconciler) protected(acct connectors.Account) bool {
	if r.never[strings.ToLower(acct.ID)] {
		return true
	}
	for _, k := range []string{r.uidAttr, "login", "user_name", "email"} {
		if v := acct.Attributes[k]; k != "" && v != "" && r.never[strings.ToLower(v)] {
			return true
		}
	}
	return false
}

// classify puts one account in its situation and returns the membership
// changes it needs, or the disable the policy asks for.
func (r *reconciler) classify(ctx context.Context, c any, acct connectors.Account, groups bool) ([]membershipOp, *ReconcileAccount) {
	res := r.res
	res.Counts.AccountsRead++
	if r.protected(acct) {
		res.Counts.Protected++
		return nil, nil
	}
	who := r.byLink[acct.ID]
	if len(who) == 0 && r.uidAttr != "" {
		if v := strings.ToLower(acct.Attributes[r.uidAttr]); v != "" {
			who = r.byUID[v]
		}
	}
	if len(who) == 0 {
		who = r.inFlightOwner(acct)
	}
	entry := ReconcileAccount{Target: r.in.Target, AccountID: acct.ID, Identifier: acct.Attributes[r.uidAttr], Active: acct.Active, Action: ActionReported}
	for _, p := range who {
		entry.EmployeeIDs = append(entry.EmployeeIDs, p.id)
	}
	pol := r.a.cfg.Policy.Reconcile
	switch {
	case len(who) == 0:
		entry.Situation = SituationOrphan
		res.Counts.Orphans++
		if acct.Active && pol.Orphans == policy.ReconcileDisable {
			return nil, &entry
		}
		res.report(entry)
		return nil, nil
	case len(who) > 1:
		entry.Situation = SituationDisputed
		res.Counts.Disputed++
		res.report(entry)
		return nil, nil
	case who[0].inFlight:
		// The person's run is creating, changing or waiting with this
		// account: it is theirs (a rehire's reactivated account is no
		// leftover either), and its groups are the run's business.
		res.Counts.Linked++
		res.Counts.InFlight++
		return nil, nil
	case !who[0].active:
		if !acct.Active {
			res.Counts.Deprovisioned++
			return nil, nil
		}
		entry.Situation = SituationLeftover
		res.Counts.Leftovers++
		if pol.Leftovers == policy.ReconcileDisable {
			return nil, &entry
		}
		res.report(entry)
		return nil, nil
	}
	res.Counts.Linked++
	p := who[0]
	if !groups || p.bad {
		return nil, nil
	}
	return r.drift(ctx, c, p, acct.ID, r.memberOf[acct.ID]), nil
}

// drift compares one person's managed memberships with what is due.
func (r *reconciler) drift(ctx context.Context, c any, p *person, accountID string, current map[string]bool) []membershipOp {
	var ops []membershipOp
	due := map[string]bool{}
	for _, name := range p.groups {
		g, ok := r.group(ctx, c, name)
		if !ok {
			continue
		}
		due[g.ID] = true
		if !current[g.ID] {
			r.res.Counts.MissingFound++
			ops = append(ops, membershipOp{groupID: g.ID, group: g.Name, accountID: accountID, employeeID: p.id, add: true})
		}
	}
	for _, gid := range slices.Sorted(maps.Keys(current)) {
		if !due[gid] && !r.granted[grantKey(p.id, r.groupName(gid))] {
			r.res.Counts.ExtraFound++
			ops = append(ops, membershipOp{groupID: gid, group: r.groupName(gid), accountID: accountID, employeeID: p.id})
		}
	}
	return ops
}

// group finds a due group by name, creating it when its rule allows. A
// group the connector answers under another name is not written to: a
// connector that remembered the ID of a group renamed since would hand out
// a group outside the managed set. Each problem is reported once a cycle.
func (r *reconciler) group(ctx context.Context, c any, name string) (connectors.Group, bool) {
	key := strings.ToLower(name)
	if g, ok := r.byName[key]; ok {
		return g.Group, true
	}
	if r.missing[key] {
		return connectors.Group{}, false
	}
	problem := fmt.Sprintf("group %q is due but does not exist", name)
	create := slices.ContainsFunc(r.rules, func(gr groupRule) bool { return gr.CreateMissing })
	if ec, ok := c.(connectors.EntitlementCreator); ok && create {
		g, err := ec.EnsureGroup(ctx, connectors.Group{Name: name})
		switch {
		case err != nil:
			r.a.log.Warn("reconcile: create group failed", zap.String("target", r.in.Target), zap.Error(err))
		case !strings.EqualFold(g.Name, name):
			problem = fmt.Sprintf("group %q resolved to group %s named %q: not written", name, g.ID, g.Name)
		default:
			r.res.Counts.Writes++
			r.byName[key] = connectors.GroupMembers{Group: *g}
			return *g, true
		}
	}
	r.missing[key] = true
	r.res.problem(AttrSyncProblem{Target: r.in.Target, Error: problem})
	return connectors.Group{}, false
}

func (r *reconciler) groupName(id string) string {
	for _, g := range r.byName {
		if g.ID == id {
			return g.Name
		}
	}
	return id
}

// holdMassRemovals drops the removals of groups that would lose more than
// the policy's share of their members, unless an operator released them.
func (r *reconciler) holdMassRemovals(ops []membershipOp) []membershipOp {
	if r.in.Release {
		return ops
	}
	pct := r.a.cfg.Policy.GroupRemovalPercent()
	removals := map[string]int{}
	names := map[string]string{}
	for _, op := range ops {
		if !op.add {
			removals[op.groupID]++
			names[op.groupID] = op.group
		}
	}
	held := map[string]bool{}
	for _, gid := range slices.Sorted(maps.Keys(removals)) {
		n, members := removals[gid], r.size[gid]
		if limit := max(1, int(pct*float64(members)/100)); n > limit {
			held[gid] = true
			r.res.Blocked = append(r.res.Blocked, BlockedGroup{Group: names[gid], Remove: n, Members: members})
			r.res.Counts.Blocked += n
		}
	}
	if len(held) == 0 {
		return ops
	}
	r.res.BlockedReason = fmt.Sprintf("mass removal: more than %g%% of a managed group's members would be removed; release to remove, abort to keep them", pct)
	return slices.DeleteFunc(ops, func(op membershipOp) bool { return !op.add && held[op.groupID] })
}

// apply writes the membership changes, a few at a time, then reads each
// changed account's groups back once: a change counts as made when the
// target shows it, as for a lifecycle step.
func (r *reconciler) apply(ctx context.Context, rm connectors.RelationshipManager, ops []membershipOp) error {
	var (
		mu       sync.Mutex
		retryErr error
		written  = map[string][]membershipOp{} // by account
	)
	each(ops, func(op membershipOp) {
		var err error
		if op.add {
			err = rm.AddMember(ctx, op.groupID, op.accountID)
		} else {
			err = rm.RemoveMember(ctx, op.groupID, op.accountID)
		}
		mu.Lock()
		defer mu.Unlock()
		r.res.Counts.Writes++
		switch {
		case err == nil:
			written[op.accountID] = append(written[op.accountID], op)
		case connectors.IsPermanent(err) || errors.Is(err, connectors.ErrNotFound):
			r.res.problem(AttrSyncProblem{Target: r.in.Target, EmployeeID: op.employeeID, AccountID: op.accountID, Error: fmt.Sprintf("group %s: %v", op.group, err)})
		case retryErr == nil:
			retryErr = err
		}
	})
	if retryErr != nil {
		// A retry re-reads the target and writes only what is still missing.
		return toTemporal(fmt.Errorf("%s: group membership: %w", r.in.Target, retryErr))
	}
	accounts := slices.Sorted(maps.Keys(written))
	each(accounts, func(id string) {
		var added, removed []string
		for _, op := range written[id] {
			if op.add {
				added = append(added, op.groupID)
			} else {
				removed = append(removed, op.groupID)
			}
		}
		err := verifyMemberships(ctx, rm, r.in.Target, id, added, removed)
		mu.Lock()
		defer mu.Unlock()
		r.res.Counts.Reads++
		app, failed := postcondition(err)
		switch {
		case failed:
			// The target took the writes but does not show them: an
			// operator looks (a retry would only write the same again).
			r.res.problem(AttrSyncProblem{Target: r.in.Target, EmployeeID: written[id][0].employeeID, AccountID: id,
				Error: "group membership: " + app.Message()})
			r.membershipEffects(written[id], false, "; not read back: "+app.Message())
		case err != nil && retryErr == nil:
			retryErr = err
		case err == nil:
			r.res.Counts.Added += len(added)
			r.res.Counts.Removed += len(removed)
			r.membershipEffects(written[id], true, "")
		}
	})
	if retryErr != nil {
		return retryErr
	}
	if n := r.res.Counts.Added + r.res.Counts.Removed; n > 0 {
		r.a.log.Info("reconcile: group drift fixed", zap.String("target", r.in.Target),
			zap.Int("added", r.res.Counts.Added), zap.Int("removed", r.res.Counts.Removed))
	}
	return nil
}

// membershipEffects are the audit effects of one account's membership
// writes; verified: the target read them back.
func (r *reconciler) membershipEffects(ops []membershipOp, verified bool, note string) {
	for _, op := range ops {
		e := audit.Effect{Action: audit.GroupAdded, Target: r.in.Target, AccountID: op.accountID, EmployeeID: op.employeeID,
			Group: op.group, Detail: "reconcile: due by the group rules, missing" + note, Verified: verified}
		if !op.add {
			e.Action, e.Detail = audit.GroupRemoved, "reconcile: managed, no longer due"+note
		}
		r.res.Effects = append(r.res.Effects, e)
	}
}

// each runs f over items, writeConcurrency at a time.
func each[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, writeConcurrency)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}

// disable disables orphans and leftovers the policy asks to, each after the
// safety limit granted it (unless an operator released the target).
func (r *reconciler) disable(ctx context.Context, c any, accts []ReconcileAccount) error {
	if len(accts) == 0 {
		return nil
	}
	dp, ok := c.(connectors.Deprovisioner)
	if !ok {
		for _, e := range accts {
			e.Action = ActionFailed
			r.res.report(e)
		}
		r.res.problem(AttrSyncProblem{Target: r.in.Target, Error: fmt.Sprintf("%d accounts to disable, but the connector cannot disable accounts", len(accts))})
		return nil
	}
	mode := disableMode(r.a.cfg.Policy, r.in.Target)
	blocked := ""
	for _, e := range accts {
		if blocked == "" && !r.in.Release {
			call := r.in.Governor
			call.Request.Key = "reconcile/" + r.in.Snapshot + "/" + r.in.Target + "/" + e.AccountID
			s := r.a.cfg.Policy.Safety
			call.Request.MaxPerHour, call.Request.MaxPercent = s.MaxDestructivePerHour, s.MaxDestructivePercent
			p, err := r.a.AskGovernor(ctx, call)
			if err != nil {
				return err
			}
			if !p.Granted {
				blocked = p.Reason
			}
		}
		if blocked != "" {
			e.Action = ActionBlocked
			r.res.Counts.Blocked++
			r.res.report(e)
			continue
		}
		err := dp.Deprovision(ctx, e.AccountID, connectors.DeprovisionOptions{Mode: mode})
		r.res.Counts.Writes++
		if err == nil {
			// Disabled when the target says so, as for a leaver.
			_, err = r.a.readBack(ctx, c, r.in.Target, e.AccountID, wantDisabled)
			r.res.Counts.Reads++
			if _, failed := postcondition(err); failed {
				e.Action = ActionFailed
				r.res.problem(AttrSyncProblem{Target: r.in.Target, AccountID: e.AccountID, Error: "disable: " + err.Error()})
				r.res.report(e)
				continue
			}
			if err != nil {
				return err
			}
		}
		switch {
		case err == nil:
			e.Action = ActionDisabled
			eff := audit.Effect{Action: audit.AccountDisabled, Target: r.in.Target, AccountID: e.AccountID,
				Detail: "reconcile: " + e.Situation + " disabled; identifier " + e.Identifier, Verified: true}
			if len(e.EmployeeIDs) > 0 {
				eff.EmployeeID = e.EmployeeIDs[0]
			}
			r.res.Effects = append(r.res.Effects, eff)
			if e.Situation == SituationLeftover {
				r.res.Counts.LeftoversDisabled++
			} else {
				r.res.Counts.OrphansDisabled++
			}
			r.a.log.Info("reconcile: account disabled", zap.String("target", r.in.Target), zap.String("situation", e.Situation), zap.String("account_id", e.AccountID))
		case connectors.IsPermanent(err):
			e.Action = ActionFailed
			r.res.problem(AttrSyncProblem{Target: r.in.Target, AccountID: e.AccountID, Error: "disable: " + err.Error()})
		default:
			return toTemporal(fmt.Errorf("%s: disable account: %w", r.in.Target, err))
		}
		r.res.report(e)
	}
	if blocked != "" {
		r.res.BlockedReason = strings.TrimPrefix(strings.TrimSpace(r.res.BlockedReason+"; "+blocked), "; ")
	}
	return nil
}

// disableMode is the leaver's deprovision mode for the target (suspend
// when the leaver flow has none).
func disableMode(p *policy.Policy, target string) string {
	for _, st := range p.Leaver.Steps {
		if d := st.DeprovisionIdentity; d != nil && d.Target == target && d.Mode != "" {
			return d.Mode
		}
	}
	return "suspend"
}

// manual fixes the managed groups of a few people (starter sync E1 E2):
// one membership read each.
func (r *reconciler) manual(ctx context.Context, c any, rm connectors.RelationshipManager) (ReconcileResult, error) {
	a := r.a
	if a.cfg.Directory == nil {
		return ReconcileResult{}, permanent("NoDirectory", errors.New("reconcile: no identity directory configured"))
	}
	tables, err := a.cfg.Policy.Tables()
	if err != nil {
		return ReconcileResult{}, permanent("PolicyInvalid", err)
	}
	rules, _ := syncRules(a.cfg.Policy, r.in.Target)
	var ops []membershipOp
	for _, id := range r.in.EmployeeIDs {
		rec, err := a.cfg.Directory.Identity(ctx, id)
		if errors.Is(err, connectors.ErrNotFound) {
			continue // the attribute sync reports unknown people
		}
		if err != nil {
			return ReconcileResult{}, toTemporal(fmt.Errorf("reconcile: identity %s: %w", id, err))
		}
		if !active(rec) {
			continue
		}
		p := &person{id: id, active: true, link: rec.Accounts[r.in.Target]}
		if p.groups, p.bad = r.due(rec.Attributes, tables); p.bad {
			r.res.problem(AttrSyncProblem{Target: r.in.Target, EmployeeID: id, Error: "group rules could not be evaluated; groups left alone"})
			continue
		}
		acctID := p.link
		if acctID == "" && len(rules) > 0 {
			s, ok := c.(connectors.AccountSyncer)
			_, uid, v, err := a.renderDesired(rules, tables, rec.Attributes, rec.Identifiers[r.in.Target])
			if ok && err == nil && v != "" {
				acct, err := s.FindAccount(ctx, connectors.Key{Attribute: uid, Value: v})
				if err != nil && !errors.Is(err, connectors.ErrNotFound) {
					return ReconcileResult{}, toTemporal(fmt.Errorf("%s: find account: %w", r.in.Target, err))
				}
				if acct != nil {
					acctID = acct.ID
				}
			}
		}
		if acctID == "" {
			continue
		}
		gs, err := rm.Memberships(ctx, acctID)
		r.res.Counts.Reads++
		if err != nil {
			return ReconcileResult{}, toTemporal(fmt.Errorf("%s: memberships: %w", r.in.Target, err))
		}
		current := map[string]bool{}
		for _, g := range gs {
			if policy.MatchGroup(r.managed, g.Name) {
				current[g.ID] = true
				r.byName[strings.ToLower(g.Name)] = connectors.GroupMembers{Group: g}
			}
		}
		for _, name := range p.groups {
			if _, ok := r.byName[strings.ToLower(name)]; ok {
				continue
			}
			if gf, ok := c.(connectors.GroupFinder); ok {
				if g, err := gf.FindGroup(ctx, name); err == nil && strings.EqualFold(g.Name, name) {
					r.byName[strings.ToLower(name)] = connectors.GroupMembers{Group: *g}
				}
			}
		}
		r.res.Counts.Linked++
		ops = append(ops, r.drift(ctx, c, p, acctID, current)...)
	}
	if err := r.apply(ctx, rm, ops); err != nil {
		return ReconcileResult{}, err
	}
	return *r.res, nil
}
