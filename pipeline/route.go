package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
	out := map[peer.ID][]layers.Span{}
	for id, spans := range p.cov.Get(ctx).Spans() {
		if id != p.host.ID() && !p.isExcluded(id) {
			out[id] = spans
		}
	}
	if p.local() != nil {
		out[p.host.ID()] = []layers.Span{p.localSpan()}
	}
	return out
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
	lat  time.Duration
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
	case a.lat != c.lat:
		return a.lat < c.lat
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
// so concurrent requests spread over the holders of a span), then the lowest summed latency.
// Peers in exclude are not used.
func (p *Pipeline) planRoute(ctx context.Context, exclude map[peer.ID]bool) ([]Hop, error) {
	hold := p.holdings(ctx)
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
			for _, sp := range spans {
				if !sp.Contains(l) {
					continue
				}
				next := sp.Last + 1
				cand := best{hops: b[l].hops + 1, load: b[l].load + p.load(id), lat: b[l].lat + p.latency(id), prev: l, ok: true,
					via: Hop{Peer: id, Span: layers.Span{First: l, Last: sp.Last}, Self: id == p.host.ID()}}
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

// replacementFor finds another holder of a whole hop span, for failover.
func (p *Pipeline) replacementFor(ctx context.Context, span layers.Span, exclude map[peer.ID]bool) (Hop, bool) {
	var bestHop Hop
	found := false
	for id, spans := range p.holdings(ctx) {
		if exclude[id] {
			continue
		}
		for _, sp := range spans {
			if sp.First <= span.First && sp.Last >= span.Last {
				if !found || p.load(id) < p.load(bestHop.Peer) ||
					p.load(id) == p.load(bestHop.Peer) && p.latency(id) < p.latency(bestHop.Peer) {
					bestHop, found = Hop{Peer: id, Span: span, Self: id == p.host.ID()}, true
				}
			}
		}
	}
	return bestHop, found
}
