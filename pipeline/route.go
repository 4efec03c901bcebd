package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/layers"
)

// unmeasuredLatency stands in for a peer whose round trip was not measured yet, so measured
// peers are preferred.
const unmeasuredLatency = 50 * time.Millisecond

// Hop is one stage of a route: a peer (or this node) running a span.
type Hop struct {
	Peer peer.ID
	Span layers.Span
	Self bool
}

// holdings lists, for each peer the coverage view knows (this node included), the contiguous
// spans it holds.
func (p *Pipeline) holdings(ctx context.Context) map[peer.ID][]layers.Span {
	return p.holdingsOf(p.cov.Get(ctx))
}

// holdingsOf is holdings from a view already read.
func (p *Pipeline) holdingsOf(v coverage.View) map[peer.ID][]layers.Span {
	out := map[peer.ID][]layers.Span{}
	for id, spans := range v.Spans() {
		if id != p.host.ID() && !p.isExcluded(id) {
			out[id] = spans
		}
	}
	if p.local() != nil {
		out[p.host.ID()] = []layers.Span{p.localSpan()}
	}
	return out
}

// speeds is what route planning knows of the holders' throughput: each one's measured decode
// speed (tokens per second through the whole model, from its peer record), and the speed
// assumed of a holder without a record (this node's own, else the median of those known).
type speeds struct {
	layers  int
	decode  map[peer.ID]float64
	unknown float64
}

// speedsOf reads the holders' throughput from a coverage view's records.
func (p *Pipeline) speedsOf(v coverage.View) speeds {
	s := speeds{layers: p.model.Layers, decode: map[peer.ID]float64{}}
	var known []float64
	for id, r := range v.Records {
		if d := r.Throughput.Decode; d > 0 {
			s.decode[id] = d
			known = append(known, d)
		}
	}
	if d, ok := s.decode[p.host.ID()]; ok {
		s.unknown = d
	} else if len(known) > 0 {
		slices.Sort(known)
		s.unknown = known[len(known)/2]
	}
	return s
}

// compute estimates one decode step of a span's layers on a peer (0 when no speed is known
// at all: then only latencies count, as before any peer measured itself).
func (s speeds) compute(id peer.ID, span layers.Span) time.Duration {
	d, ok := s.decode[id]
	if !ok {
		d = s.unknown
	}
	if d <= 0 || s.layers <= 0 {
		return 0
	}
	return time.Duration(float64(span.Len()) / (d * float64(s.layers)) * float64(time.Second))
}

// latency is the measured round trip to a peer (0 for this node).
func (p *Pipeline) latency(id peer.ID) time.Duration {
	if id == p.host.ID() {
		return 0
	}
	if l := p.host.Latency(id); l > 0 {
		return l
	}
	return unmeasuredLatency
}

// best is the cheapest known way to reach a layer while planning a route.
type best struct {
	hops int
	load int
	time time.Duration // estimated: the hops' compute at their measured speeds plus round trips
	prev int
	via  Hop
	ok   bool
}

func (a best) better(c best) bool {
	switch {
	case a.hops != c.hops:
		return a.hops < c.hops
	case a.load != c.load:
		return a.load < c.load
	case a.time != c.time:
		return a.time < c.time
	}
	return a.via.Peer < c.via.Peer
}

// load is what routing through a peer costs, in sessions: those this node has open on it,
// plus, while audits run, one for each audit it still has to pass before it is known
// (trustedAfter). A peer that just announced a span no longer draws most of the traffic by
// being idle (a liar did, in 24 of 31 answers); it still gets requests once the known holders
// are busy, each audited at twice the rate, and so earns its way in.
func (p *Pipeline) load(id peer.ID) int {
	n := p.using.get(id)
	if id == p.host.ID() {
		return n
	}
	p.audits.mu.Lock()
	rate, passed := p.audits.rate, p.audits.passed[id]
	p.audits.mu.Unlock()
	if rate <= 0 {
		return n // without audits no peer can become known
	}
	return n + max(0, trustedAfter-passed)
}

// planRoute covers layers 0..L-1 with the fewest hops, then the lowest load on the route's
// peers (sessions this node has open there, and audits a new peer still has to pass: a busy
// peer costs a whole step of its compute per token, far more than loopback or LAN latency,
// so concurrent requests spread over the holders of a span), then the least estimated time:
// each hop's layers at its holder's measured speed (its peer record) plus the round trip, so
// of two idle holders the faster one serves. Peers in exclude are not used.
func (p *Pipeline) planRoute(ctx context.Context, exclude map[peer.ID]bool) ([]Hop, error) {
	// Holders and their speeds from one view: a refresh landing between two reads would pair
	// one view's holders with another's records.
	view := p.cov.Get(ctx)
	hold, sp := p.holdingsOf(view), p.speedsOf(view)
	L := p.model.Layers
	b := make([]best, L+1)
	b[0].ok = true
	for l := 0; l < L; l++ {
		if !b[l].ok {
			continue
		}
		for id, spans := range hold {
			if exclude[id] {
				continue
			}
			for _, span := range spans {
				if !span.Contains(l) {
					continue
				}
				next := span.Last + 1
				hop := layers.Span{First: l, Last: span.Last}
				cand := best{hops: b[l].hops + 1, load: b[l].load + p.load(id), time: b[l].time + sp.compute(id, hop) + p.latency(id), prev: l, ok: true,
					via: Hop{Peer: id, Span: hop, Self: id == p.host.ID()}}
				if cur := b[next]; !cur.ok || cand.better(cur) {
					b[next] = cand
				}
			}
		}
	}
	if !b[L].ok {
		var missing []int
		for l := 0; l < L; l++ {
			held := false
			for id, spans := range hold {
				for _, sp := range spans {
					held = held || (!exclude[id] && sp.Contains(l))
				}
			}
			if !held {
				missing = append(missing, l)
			}
		}
		return nil, &NoRouteError{Model: p.model.Name, Missing: missing}
	}
	var route []Hop
	for l := L; l > 0; l = b[l].prev {
		route = append(route, b[l].via)
	}
	slices.Reverse(route)
	return route, nil
}

// replacementFor finds another holder of a whole hop span, for failover: the least loaded,
// then the fastest by estimated time.
func (p *Pipeline) replacementFor(ctx context.Context, span layers.Span, exclude map[peer.ID]bool) (Hop, bool) {
	view := p.cov.Get(ctx)
	sp := p.speedsOf(view)
	var b best
	for id, spans := range p.holdingsOf(view) {
		if exclude[id] {
			continue
		}
		for _, held := range spans {
			if held.First <= span.First && held.Last >= span.Last {
				cand := best{load: p.load(id), time: sp.compute(id, span) + p.latency(id), ok: true, via: Hop{Peer: id, Span: span, Self: id == p.host.ID()}}
				if !b.ok || cand.better(b) {
					b = cand
				}
			}
		}
	}
	return b.via, b.ok
}
