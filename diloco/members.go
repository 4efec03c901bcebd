package diloco

import (
	"slices"

	"github.com/neuroshard/neuroshard/layers"
)

// Counting is what a node knows to decide whose training reports count: itself, the span it
// trains and that span's members (Replica.Members), which peers hold which spans (the
// coverage view), and which passed one of its audits.
type Counting struct {
	Self     string
	Own      layers.Span
	Members  []string                 // of Own's latest rounds; none: the node trains no round
	Holdings map[string][]layers.Span // peer -> spans it holds
	Audited  map[string]int           // peer -> audits passed here
}

// Counts returns the rule: a report counts only from a member of its span's rounds. On the
// span the node trains, a replica whose signed pseudo-gradient one of its last rounds used;
// on other spans, a holder that passed one of the node's audits, or a holder such a one's
// fresh report (in reports) names as a member. The node's own always counts. A peer that
// announces layers, or reports on a span it does not train, counts nowhere.
func (c Counting) Counts(reports map[string]Seen, fresh func(Seen) bool) func(peer string, r Report) bool {
	members := map[string]bool{}
	for _, m := range c.Members {
		members[m] = true
	}
	holds := func(p string, sp layers.Span) bool { return slices.Contains(c.Holdings[p], sp) }
	type vouch struct {
		span layers.Span
		peer string
	}
	vouched := map[vouch]bool{}
	for q, passed := range c.Audited {
		s, ok := reports[q]
		sp := layers.Span{First: s.Report.First, Last: s.Report.Last}
		if passed == 0 || !ok || !fresh(s) || !holds(q, sp) {
			continue
		}
		vouched[vouch{sp, q}] = true
		for _, m := range s.Report.Members {
			vouched[vouch{sp, m}] = true
		}
	}
	return func(p string, r Report) bool {
		sp := layers.Span{First: r.First, Last: r.Last}
		switch {
		case p == c.Self:
			return true
		case len(members) > 0 && sp == c.Own:
			return members[p]
		default:
			return holds(p, sp) && vouched[vouch{sp, p}]
		}
	}
}

// MemberRounds is how many of its latest rounds a replica counts as members the replicas whose
// pseudo-gradients those rounds used.
const MemberRounds = 5

// noteMembers records the replicas a round used; the caller holds r.mu.
func (r *Replica) noteMembers(round int64, used []string) {
	if r.members == nil {
		r.members = map[string]int64{}
	}
	for _, p := range used {
		r.members[p] = max(r.members[p], round)
	}
	for p, at := range r.members {
		if at <= round-MemberRounds {
			delete(r.members, p)
		}
	}
}

// Members lists, sorted, the replicas whose signed pseudo-gradients one of the replica's last
// MemberRounds rounds used (the replica itself among them once it has taken a round): the
// span's members. A peer that only announces the span, or whose contributions were all
// refused or excluded, is none.
func (r *Replica) Members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p, at := range r.members {
		if at > r.round-1-MemberRounds {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Agreement is how far one span's counted reports agree: among those at the newest round
// they name, the share that name its most common hash. Where any of them is backed by stake
// (weight > 0) each counts by its stake, so identities without stake move nothing however
// many they are; where none is, each counts once. It returns the share, the reports at the
// newest round and how many of them name the hash that won.
func Agreement(reports map[string]Report, weight func(peer string) float64) (share float64, at, agreeing int) {
	newest := int64(-1)
	for _, r := range reports {
		newest = max(newest, r.Round)
	}
	weights := map[string]float64{} // of the reports at the newest round, each looked up once
	staked := false
	for p, r := range reports {
		if r.Round == newest {
			weights[p] = max(0, weight(p))
			staked = staked || weights[p] > 0
		}
	}
	byHash := map[string]float64{}
	count := map[string]int{}
	total := 0.0
	for p, r := range reports {
		if r.Round != newest {
			continue
		}
		w := 1.0
		if staked {
			w = weights[p]
		}
		byHash[r.Hash] += w
		count[r.Hash]++
		total += w
		at++
	}
	win := ""
	for h, w := range byHash {
		if win == "" || w > byHash[win] || (w == byHash[win] && h < win) {
			win = h
		}
	}
	if total > 0 {
		share = byHash[win] / total
	}
	return share, at, count[win]
}
