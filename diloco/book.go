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
	mine []float64 // oldest first, at most ownLosses
}

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
		b.by = map[string]Seen{}
	}
	b.by[peer] = Seen{r, at}
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
