package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
)

// unmeasuredLatency stands in for a peer whose round trip was not measured yet, so measured
// peers are preferred.
const unmeasuredLatency = 50 * time.Millisecond

// hop is one stage of a route: a peer (or this node) running a span.
type hop struct {
	peer peer.ID
	span layers.Span
	self bool
}

// holdings lists, for each peer the coverage view knows (this node included), the contiguous
// spans it holds.
func (n *Node) holdings(ctx context.Context) map[peer.ID][]layers.Span {
	out := map[peer.ID][]layers.Span{}
	for p, spans := range n.cov.Get(ctx).Spans() {
		if p != n.host.ID() {
			out[p] = spans
		}
	}
	if n.Stage() != nil {
		out[n.host.ID()] = []layers.Span{n.Span()}
	}
	return out
}

// latency is the measured round trip to a peer (0 for this node).
func (n *Node) latency(p peer.ID) time.Duration {
	if p == n.host.ID() {
		return 0
	}
	if l := n.host.Latency(p); l > 0 {
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
	via  hop
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
	return a.via.peer < c.via.peer
}

// planRoute covers layers 0..L-1 with the fewest hops, then the fewest sessions this node
// already has open on the route's peers (a busy peer costs a whole step of its compute per
// token, far more than loopback or LAN latency, so concurrent requests spread over the
// holders of a span), then the lowest summed latency. Peers in exclude are not used.
func (n *Node) planRoute(ctx context.Context, exclude map[peer.ID]bool) ([]hop, error) {
	hold := n.holdings(ctx)
	L := n.model.Layers
	b := make([]best, L+1)
	b[0].ok = true
	for l := 0; l < L; l++ {
		if !b[l].ok {
			continue
		}
		for p, spans := range hold {
			if exclude[p] {
				continue
			}
			for _, sp := range spans {
				if !sp.Contains(l) {
					continue
				}
				next := sp.Last + 1
				cand := best{hops: b[l].hops + 1, load: b[l].load + n.using.get(p), lat: b[l].lat + n.latency(p), prev: l, ok: true,
					via: hop{peer: p, span: layers.Span{First: l, Last: sp.Last}, self: p == n.host.ID()}}
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
			for p, spans := range hold {
				for _, sp := range spans {
					held = held || (!exclude[p] && sp.Contains(l))
				}
			}
			if !held {
				missing = append(missing, l)
			}
		}
		return nil, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable,
			fmt.Sprintf("no reachable peer holds layers %v of %s", missing, n.model.Name),
			map[string]any{"missing_layers": missing, "model": n.model.Name})
	}
	var route []hop
	for l := L; l > 0; l = b[l].prev {
		route = append(route, b[l].via)
	}
	slices.Reverse(route)
	return route, nil
}

// replacementFor finds another holder of a whole hop span, for failover.
func (n *Node) replacementFor(ctx context.Context, span layers.Span, exclude map[peer.ID]bool) (hop, bool) {
	var bestHop hop
	found := false
	for p, spans := range n.holdings(ctx) {
		if exclude[p] {
			continue
		}
		for _, sp := range spans {
			if sp.First <= span.First && sp.Last >= span.Last {
				if !found || n.using.get(p) < n.using.get(bestHop.peer) ||
					n.using.get(p) == n.using.get(bestHop.peer) && n.latency(p) < n.latency(bestHop.peer) {
					bestHop, found = hop{peer: p, span: span, self: p == n.host.ID()}, true
				}
			}
		}
	}
	return bestHop, found
}
