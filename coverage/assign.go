package coverage

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
)

// ErrNoSpanFits is returned by ChooseSpan when the memory budget holds no layer.
var ErrNoSpanFits = errors.New("coverage: no span fits the memory budget")

// ChooseSpan picks the layer span a node should hold: the longest span that fits the memory
// budget, and among those the least-served one. replicas[i] is how much other peers serve
// layer i: a count of holders, or their throughput through it (View.Load). Spans compare by
// their figures sorted ascending (leximin): a span that covers a layer nobody holds beats any
// span that does not, then one covering two such layers, and so on, then the one whose
// thinnest layer is thinnest; ties go to spans aligned on multiples of the span length (so
// nodes of equal memory form identical spans that can train together), then to the lowest
// start.
func ChooseSpan[T int | float64](model layers.Config, replicas []T, budget int64) (layers.Span, error) {
	if len(replicas) != model.Layers {
		return layers.Span{}, fmt.Errorf("coverage: %d replica counts for %d layers", len(replicas), model.Layers)
	}
	for k := model.Layers; k >= 1; k-- {
		var best layers.Span
		var bestKey []T
		found := false
		for s := 0; s+k <= model.Layers; s++ {
			sp := layers.Span{First: s, Last: s + k - 1}
			if model.SpanMemoryBytes(sp) > budget {
				continue
			}
			key := slices.Clone(replicas[sp.First : sp.Last+1])
			slices.Sort(key)
			aligned := 1
			if s%k == 0 || s+k == model.Layers {
				aligned = 0
			}
			key = append(key, T(aligned))
			if !found || slices.Compare(key, bestKey) < 0 {
				best, bestKey, found = sp, key, true
			}
		}
		if found {
			return best, nil
		}
	}
	need := model.SpanMemoryBytes(layers.Span{First: 1, Last: 1})
	if model.Layers == 1 {
		need = model.SpanMemoryBytes(layers.Span{})
	}
	return layers.Span{}, fmt.Errorf("%w: --max-memory %d bytes holds no layer of %s (one layer needs about %d)",
		ErrNoSpanFits, budget, model.Name, need)
}

// Load is, for each layer, the throughput the holders other than self give it, in tokens per
// second through the layer (Capacity's measure): a holder without a measured record counts at
// the median of the measured ones, and while none is measured every holder counts at 1 token
// per second through the whole model (the replica count, for holders of equal spans). A slow
// holder so leaves its layers under-served, and a joining node goes where the swarm is
// thinnest in throughput, not in heads (Petals chooses its blocks the same way).
func (v View) Load(self peer.ID) []float64 {
	L := float64(len(v.Layers))
	var known []float64
	for _, r := range v.Records {
		if r.Throughput.Decode > 0 {
			known = append(known, r.Throughput.Decode)
		}
	}
	unknown := 1.0
	if len(known) > 0 {
		slices.Sort(known)
		unknown = known[len(known)/2]
	}
	out := make([]float64, len(v.Layers))
	for id, spans := range v.Spans() {
		if id == self {
			continue
		}
		d := v.Records[id].Throughput.Decode
		if d <= 0 {
			d = unknown
		}
		for _, sp := range spans {
			k := float64(v.heldLen(id, sp))
			for l := sp.First; l <= sp.Last && l < len(out); l++ {
				out[l] += d * L / k
			}
		}
	}
	return out
}

// Move is what Rebalance found: the swarm's decode throughput through the whole model now
// (its slowest layer's, tokens per second, View.Capacity's measure) and if this node held To
// instead of From.
type Move struct {
	From, To   layers.Span
	Now, After float64
}

// Gain is After over Now (0 when nothing flows now, 1 for no move).
func (m Move) Gain() float64 {
	if m.Now <= 0 {
		return 0
	}
	return m.After / m.Now
}

// Rebalance applies the balance rule (Petals moves servers the same way): the swarm's
// throughput is its slowest layer's; this node, holding from, looks at every span that fits
// its memory budget and finds the one that would raise that figure most if it left from for
// it. It moves (the bool) only when the gain is at least 1+threshold: a node never leaves a
// layer nobody else holds (the figure would fall to 0), and small gains do not make nodes
// chase each other. Speeds are the records' (a holder without one counts at the median of
// those measured, this node too).
func Rebalance(model layers.Config, v View, self peer.ID, from layers.Span, budget int64, threshold float64) (Move, bool) {
	return RebalanceAmong(model, v, self, from, budget, threshold, nil)
}

// RebalanceAmong is Rebalance over the spans allowed lets the node take (all when nil): in a
// trained network, a span's weights can be taken only from a holder of exactly that span.
func RebalanceAmong(model layers.Config, v View, self peer.ID, from layers.Span, budget int64, threshold float64, allowed func(layers.Span) bool) (Move, bool) {
	others := v.Load(self)
	mine := v.Records[self].Throughput.Decode
	if mine <= 0 {
		var known []float64
		for _, r := range v.Records {
			if r.Throughput.Decode > 0 {
				known = append(known, r.Throughput.Decode)
			}
		}
		mine = 1
		if len(known) > 0 {
			slices.Sort(known)
			mine = known[len(known)/2]
		}
	}
	L := float64(model.Layers)
	with := func(sp layers.Span) float64 {
		low := math.Inf(1)
		for l, c := range others {
			if sp.Contains(l) {
				c += mine * L / float64(sp.Len())
			}
			low = min(low, c)
		}
		return low
	}
	m := Move{From: from, To: from, Now: with(from)}
	m.After = m.Now
	for k := model.Layers; k >= 1; k-- {
		for s := 0; s+k <= model.Layers; s++ {
			sp := layers.Span{First: s, Last: s + k - 1}
			if model.SpanMemoryBytes(sp) > budget || allowed != nil && sp != from && !allowed(sp) {
				continue
			}
			if t := with(sp); t > m.After {
				m.To, m.After = sp, t
			}
		}
	}
	return m, m.To != from && m.Now > 0 && m.After >= m.Now*(1+threshold) || m.To != from && m.Now == 0 && m.After > 0
}

// MoveThreshold is the least gain (1 + MoveThreshold times the swarm's throughput) the
// balance rule moves a node for.
const MoveThreshold = 0.2

// Balancer decides when a node moves: the rule (RebalanceAmong, at MoveThreshold) must advise the
// same span in Streak looks in a row (2 when unset), so a view in flux (a holder that just
// moved or joined, a record not refreshed yet) moves nobody.
type Balancer struct {
	Streak  int
	Allowed func(layers.Span) bool // the spans the node can take (RebalanceAmong); nil: all
	want    layers.Span
	seen    int
}

// Look applies the rule to a view of the swarm and tells whether to move now, and where.
func (b *Balancer) Look(model layers.Config, v View, self peer.ID, from layers.Span, budget int64) (Move, bool) {
	m, ok := RebalanceAmong(model, v, self, from, budget, MoveThreshold, b.Allowed)
	if !ok {
		b.seen = 0
		return m, false
	}
	if m.To != b.want {
		b.want, b.seen = m.To, 0
	}
	if b.seen++; b.seen < max(1, cmp.Or(b.Streak, 2)) {
		return m, false
	}
	b.seen = 0
	return m, true
}
