package diloco

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"
)

// ReportBook keeps the latest training report of each peer as gossip brings them, and the
// losses this node reported. Reports older than TTL no longer count.
type ReportBook struct {
	TTL time.Duration // 0: two minutes

	mu   sync.Mutex
	by   map[string]Seen
	hist map[string][]Report // each peer's last reportHistory reports of distinct rounds, oldest first
	mine []float64           // oldest first, at most ownLosses
}

// reportHistory is how many rounds of each peer's reports the book keeps: agreement is
// judged over recent rounds, since replicas gossip their rounds at different moments.
const reportHistory = 8

// Seen is a report and when it came.
type Seen struct {
	Report Report
	At     time.Time
}

// ownLosses bounds the history of this node's reported losses.
const ownLosses = 256

// MaxReportBytes bounds a gossiped report.
const MaxReportBytes = 4096

// ReportSkew bounds how far a report's time may be from the receiver's clock.
const ReportSkew = 10 * time.Minute

// DecodeReport reads a gossiped report and checks it: well formed for the model (Valid) and
// stamped within ReportSkew of now.
func DecodeReport(data []byte, model string, layers int, now time.Time) (Report, bool) {
	var r Report
	if len(data) > MaxReportBytes || json.Unmarshal(data, &r) != nil || !r.Valid(model, layers) {
		return r, false
	}
	at := time.Unix(r.Time, 0)
	return r, at.After(now.Add(-ReportSkew)) && at.Before(now.Add(ReportSkew))
}

func (b *ReportBook) ttl() time.Duration {
	if b.TTL > 0 {
		return b.TTL
	}
	return 2 * time.Minute
}

// Put records a peer's report.
func (b *ReportBook) Put(peer string, r Report, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.by == nil {
		b.by, b.hist = map[string]Seen{}, map[string][]Report{}
	}
	b.by[peer] = Seen{r, at}
	h := b.hist[peer]
	if n := len(h); n > 0 && h[n-1].Round == r.Round && h[n-1].First == r.First && h[n-1].Last == r.Last {
		h[n-1] = r
	} else {
		h = append(h, r)
	}
	if len(h) > reportHistory {
		h = h[len(h)-reportHistory:]
	}
	b.hist[peer] = h
}

// History is a peer's recent reports, one per round, oldest first.
func (b *ReportBook) History(peer string) []Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.hist[peer])
}

// MostAgreeing is the largest number of peers (among those given) whose recent reports name
// one span, round and hash: replicas that gossip their rounds at different moments still
// show that they held the same weights.
func MostAgreeing(history map[string][]Report) int {
	type claim struct {
		first, last int
		round       int64
		hash        string
	}
	count := map[claim]int{}
	most := 0
	for _, rs := range history {
		seen := map[claim]bool{}
		for _, r := range rs {
			c := claim{r.First, r.Last, r.Round, r.Hash}
			if !seen[c] {
				seen[c] = true
				count[c]++
				most = max(most, count[c])
			}
		}
	}
	return most
}

// PutMine records this node's own report, and its loss in the history.
func (b *ReportBook) PutMine(self string, r Report, at time.Time) {
	b.Put(self, r, at)
	if r.Loss <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mine = append(b.mine, r.Loss)
	if len(b.mine) > ownLosses {
		b.mine = b.mine[1:]
	}
}

// Latest is a peer's report if it came within TTL.
func (b *ReportBook) Latest(peer string) (Report, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.by[peer]
	return s.Report, ok && time.Since(s.At) < b.ttl()
}

// Fresh is every report that came within TTL, by peer.
func (b *ReportBook) Fresh() map[string]Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]Report{}
	for p, s := range b.by {
		if time.Since(s.At) < b.ttl() {
			out[p] = s.Report
		}
	}
	return out
}

// All is every report kept, fresh or not, with when it came.
func (b *ReportBook) All() map[string]Seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.by)
}

// IsFresh tells whether a report that came at at still counts.
func (b *ReportBook) IsFresh(at time.Time) bool { return time.Since(at) < b.ttl() }

// MyLosses are the losses this node reported, oldest first.
func (b *ReportBook) MyLosses() []float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.mine)
}
