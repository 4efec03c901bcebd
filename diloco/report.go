package diloco

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
)

// Report is what a replica gossips after each round (and every few seconds): its span, round,
// weights hash and loss, so anyone can check that training works: replicas of a span at one
// round share a hash, and the loss falls.
type Report struct {
	Model  string  `json:"model"`
	First  int     `json:"first"`
	Last   int     `json:"last"`
	Round  int64   `json:"round"`
	Hash   string  `json:"hash"`
	Loss   float64 `json:"loss"`
	Steps  int64   `json:"steps"`
	Tokens int64   `json:"tokens"`
	Shard  int     `json:"shard"`
	Time   int64   `json:"time"` // unix seconds
	// Members are the replicas whose pseudo-gradients the reporter's latest rounds used
	// (Replica.Members, at most MaxReportMembers): the membership a node outside the span
	// reads, from replicas it has reason to trust.
	Members []string `json:"members,omitempty"`
}

// MaxReportMembers bounds the members a report names.
const MaxReportMembers = 32

// maxCount bounds a report's counters (2^50: centuries of steps), so sums over many reports
// cannot overflow.
const maxCount = 1 << 50

// Valid tells whether a report is well formed for a model of the given layer count.
func (r Report) Valid(model string, layers int) bool {
	h, err := hex.DecodeString(r.Hash)
	return err == nil && len(h) == 32 && r.Model == model && r.First >= 0 && r.Last >= r.First &&
		r.Last < layers && r.Round >= 0 && r.Round <= maxCount && r.Steps >= 0 && r.Steps <= maxCount &&
		r.Tokens >= 0 && r.Tokens <= maxCount && r.Shard >= 0 && r.Shard <= maxCount && r.Time > 0 &&
		!math.IsNaN(r.Loss) && r.Loss >= 0 && r.Loss < 1e3 && validMembers(r.Members)
}

// validMembers: at most MaxReportMembers distinct, non-empty names of a peer ID's length.
func validMembers(ms []string) bool {
	if len(ms) > MaxReportMembers {
		return false
	}
	for i, m := range ms {
		if m == "" || len(m) > 128 || slices.Contains(ms[:i], m) {
			return false
		}
	}
	return true
}

// LossTrend compares the first and second halves of a loss history.
func LossTrend(ls []float64) string {
	if len(ls) < 4 {
		return "unknown"
	}
	a, b := 0.0, 0.0
	half := len(ls) / 2
	for _, x := range ls[:half] {
		a += x
	}
	for _, x := range ls[half:] {
		b += x
	}
	a, b = a/float64(half), b/float64(len(ls)-half)
	switch {
	case b < a*0.99:
		return "improving"
	case b > a*1.01:
		return "worsening"
	}
	return "stable"
}

// Tally counts, among holders (the span's other replicas the caller knows), those whose
// report names round of the span with hash (votes) and with another hash (against).
// Reports of non-holders count for nothing.
func Tally(reports map[string]Report, holders []string, first, last int, round int64, hash string) (votes, against int) {
	for _, h := range holders {
		if r, seen := reports[h]; seen && r.First == first && r.Last == last && r.Round == round {
			if r.Hash == hash {
				votes++
			} else {
				against++
			}
		}
	}
	return votes, against
}

// Backed tells whether more than half of holders report round of the span with hash: the
// peer that serves a checkpoint is one vote, so one liar among several replicas cannot hand
// the others its weights.
func Backed(reports map[string]Report, holders []string, first, last int, round int64, hash string) (votes int, ok bool) {
	votes, _ = Tally(reports, holders, first, last, round, hash)
	return votes, 2*votes > len(holders)
}

// Vouch decides whether a replica may take a checkpoint of round with hash from server. A
// quorum of the span's other holders gossiping it (Backed) is enough. Without one (replicas
// whose rounds split gossip one hash each, and a round just done is not gossiped by all yet),
// the checkpoint is taken only when some holder gossips it, no more holders gossip another
// hash for that round, and the server was never excluded from a round by this replica for a
// fault (a poisoned or malformed pseudo-gradient, a second contribution: excluded lists them). A replica
// caught lying cannot lure the others onto rounds it took alone; an honest split still heals.
func Vouch(reports map[string]Report, holders []string, first, last int, round int64, hash, server string, excluded []Exclusion) error {
	votes, against := Tally(reports, holders, first, last, round, hash)
	if 2*votes > len(holders) {
		return nil
	}
	if votes == 0 {
		return fmt.Errorf("diloco: checkpoint from %s (round %d, %.12s): no replica of the span gossips it", server, round, hash)
	}
	if against > votes {
		return fmt.Errorf("diloco: checkpoint from %s (round %d, %.12s) disagrees with %d of the span's replicas", server, round, hash, against)
	}
	for _, e := range excluded {
		if e.Peer == server && e.Fault() {
			return fmt.Errorf("diloco: checkpoint from %s (round %d, %.12s) is backed by %d of %d other replicas, and %s was excluded from round %d (%s)", server, round, hash, votes, len(holders), server, e.Round, e.Reason)
		}
	}
	return nil
}

// Newest is the fork choice when no quorum backs a newer round (NewerRound): the holder that
// reports the newest round past mine whose hash no more holders contradict than back it. Two
// replicas whose rounds split, each gossiping its own, otherwise never meet again: one of the
// two lineages has to win, and the one further along loses least. The caller leaves out of
// holders the peers it caught sending a faulty pseudo-gradient (Faulty).
func Newest(reports map[string]Report, holders []string, first, last int, mine int64) (string, bool) {
	best, round := "", mine
	for _, h := range holders {
		r, seen := reports[h]
		if !seen || r.First != first || r.Last != last || r.Round <= round {
			continue
		}
		if votes, against := Tally(reports, holders, first, last, r.Round, r.Hash); against > votes {
			continue
		}
		best, round = h, r.Round
	}
	return best, best != ""
}

// NewerRound is the newest round of a span past mine that a quorum of its holders report with
// one hash: more than half of holders (the span's other replicas the caller knows, at least
// one) each have a report naming that round and hash. reports maps a peer to its latest
// report; only holders' count, so a single report, however far ahead, or any number of
// reports from peers that hold nothing, moves no replica. It returns the peers that made the
// claim, in order.
func NewerRound(reports map[string]Report, holders []string, first, last int, mine int64) (round int64, hash string, from []string, ok bool) {
	type claim struct {
		round int64
		hash  string
	}
	votes := map[claim][]string{}
	for _, h := range holders {
		r, seen := reports[h]
		if seen && r.First == first && r.Last == last && r.Round > mine {
			c := claim{r.Round, r.Hash}
			votes[c] = append(votes[c], h)
		}
	}
	for c, ps := range votes {
		if 2*len(ps) > len(holders) && (!ok || c.round > round) {
			round, hash, from, ok = c.round, c.hash, ps, true
		}
	}
	slices.Sort(from)
	return round, hash, from, ok
}
