package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// pingTimeout bounds one latency probe.
const pingTimeout = 5 * time.Second

// connectBootstrap dials every bootstrap peer in parallel and protects the connections from the
// connection manager's trimming, so the node does not drop its way back into the network.
func (n *Host) connectBootstrap(ctx context.Context) int {
	var (
		wg sync.WaitGroup
		mu = &n.mu
		ok int
	)
	for _, ai := range n.cfg.Bootstrap {
		if ai.ID == n.h.ID() {
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			// Force a direct dial: a bootstrap peer that was down a moment ago is in the
			// swarm's dial backoff, and the point of re-dialling is to try it now.
			if err := n.Connect(network.WithForceDirectDial(ctx, "bootstrap"), ai); err != nil {
				n.logDialFailure(ai.ID, err)
				return
			}
			n.h.ConnManager().Protect(ai.ID, "bootstrap")
			mu.Lock()
			delete(n.unreachable, ai.ID)
			ok++
			mu.Unlock()
		}(ai)
	}
	wg.Wait()
	return ok
}

// logDialFailure warns about an unreachable bootstrap peer once, then logs at debug level until
// it answers again, so a node waiting for its bootstrap peer does not flood the log.
func (n *Host) logDialFailure(id peer.ID, err error) {
	n.mu.Lock()
	first := !n.unreachable[id]
	n.unreachable[id] = true
	n.mu.Unlock()
	if first {
		logger().Warn("bootstrap peer unreachable; retrying while the routing table is empty", "peer", id, "err", err)
	} else {
		logger().Debug("bootstrap peer still unreachable", "peer", id, "err", err)
	}
}

// waitRoutingTable waits until the routing table holds a peer, or the timeout.
func (n *Host) waitRoutingTable(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bootstrapLoop keeps the routing table alive: while it is empty, re-dial the bootstrap peers
// and refresh the table, so a node that started before its bootstrap peer (or lost every peer)
// joins as soon as one answers.
func (n *Host) bootstrapLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.BootstrapInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.dht.RoutingTable().Size() > 0 || len(n.cfg.Bootstrap) == 0 {
			continue
		}
		if n.connectBootstrap(n.ctx) > 0 {
			logger().Info("re-joined through bootstrap peers")
			select {
			case err := <-n.dht.RefreshRoutingTable():
				if err != nil && n.ctx.Err() == nil {
					logger().Debug("routing table refresh", "err", err)
				}
			case <-n.ctx.Done():
				return
			}
			n.kickAnnounce()
		}
	}
}

// pingLoop measures the round trip to every connected peer; the peerstore keeps the EWMA that
// route planning and /peers read.
func (n *Host) pingLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.PingInterval)
	defer t.Stop()
	for {
		n.pingAll()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Host) pingAll() {
	var wg sync.WaitGroup
	for _, id := range n.h.Network().Peers() {
		if n.h.Network().Connectedness(id) != network.Connected {
			continue
		}
		wg.Add(1)
		go func(id peer.ID) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, pingTimeout)
			defer cancel()
			select {
			case res := <-ping.Ping(ctx, n.h, id): // records the RTT in the peerstore
				if res.Error != nil && ctx.Err() == nil {
					logger().Debug("ping failed", "peer", id, "err", res.Error)
				}
			case <-ctx.Done():
			}
		}(id)
	}
	wg.Wait()
}
