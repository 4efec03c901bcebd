package p2p

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// NAT traversal, with libp2p's own parts. Every node on the internet profile answers AutoNAT
// probes (so peers learn whether they are reachable), and every node punches holes (DCUtR) when a relayed peer wants a direct
// connection. A node that is not reachable reserves a slot on a relay (its bootstrap peers,
// the relays it was given, then connected peers that serve the relay protocol) and
// advertises the relay's circuit address, so peers reach it through the relay, and a direct
// connection replaces the relayed one when a hole punch works. A node serves as a relay only
// when asked (WithRelayService), within RelayResources.

// Reachability settings: AutoNAT's verdict, or one the operator knows.
const (
	ReachabilityAuto    = "auto"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

// RelayResources bounds what a relay gives others: reservations, circuits per peer, and each
// relayed connection's duration and bytes. The project's streams (activations, checkpoints)
// are larger than libp2p's default 128 KiB a circuit, which is meant for hole punching only.
func RelayResources() relayv2.Resources {
	rc := relayv2.DefaultResources()
	rc.MaxReservations = 64
	rc.MaxCircuits = 8
	rc.Limit = nil // relayed connections carry whole sessions; the resource manager bounds streams and memory
	return rc
}

// WithRelayService makes the node a circuit-relay v2 relay for others (when it is reachable).
func WithRelayService() Option { return func(c *Config) error { c.RelayService = true; return nil } }

// WithRelays adds relays to reserve a slot on when the node is not reachable.
func WithRelays(relays ...peer.AddrInfo) Option {
	return func(c *Config) error { c.Relays = append(c.Relays, relays...); return nil }
}

// WithReachability sets the node's reachability instead of AutoNAT's verdict.
func WithReachability(r string) Option {
	return func(c *Config) error { c.Reachability = r; return nil }
}

// WithGater installs a connection gater (tests use one to stand for a NAT).
func WithGater(g connmgr.ConnectionGater) Option {
	return func(c *Config) error { c.Gater = g; return nil }
}

// natOptions are the libp2p options of NAT traversal for n's config.
func (n *Host) natOptions() []libp2p.Option {
	cfg := n.cfg
	opts := []libp2p.Option{
		libp2p.AddrsFactory(n.withRelayAddrs),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoRelayWithPeerSource(n.relaySource, autorelay.WithBootDelay(0), autorelay.WithMinCandidates(1),
			autorelay.WithMinInterval(time.Second)),
	}
	if cfg.Profile == ProfileInternet {
		// Answering AutoNAT probes means dialling back: on a LAN or loopback AutoNAT can never
		// say public, and every node dialling every other back only costs.
		opts = append(opts, libp2p.EnableNATService())
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	reach := cfg.Reachability
	if reach == ReachabilityAuto && cfg.RelayService && cfg.Profile == ProfileLocal {
		reach = ReachabilityPublic // a relay on a LAN or loopback: AutoNAT never says public there
	}
	switch reach {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if cfg.RelayService {
		ropts := []relayv2.Option{relayv2.WithResources(RelayResources())}
		if cfg.Profile == ProfileLocal {
			ropts = append(ropts, relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
		}
		opts = append(opts, libp2p.EnableRelayService(ropts...))
	}
	return opts
}

// relaySource hands autorelay its candidates: the configured relays, the bootstrap peers,
// then connected peers (autorelay keeps those that serve the relay protocol).
func (n *Host) relaySource(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	go func() {
		defer close(out)
		h := n.libp2pHost()
		seen := map[peer.ID]bool{}
		send := func(ai peer.AddrInfo) bool {
			if seen[ai.ID] || (h != nil && ai.ID == h.ID()) {
				return true
			}
			seen[ai.ID] = true
			select {
			case out <- ai:
				return len(seen) < num
			case <-ctx.Done():
				return false
			}
		}
		for _, ai := range append(append([]peer.AddrInfo{}, n.cfg.Relays...), n.cfg.Bootstrap...) {
			if !send(ai) {
				return
			}
		}
		if h == nil {
			return
		}
		for _, p := range h.Network().Peers() {
			if !send(peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}) {
				return
			}
		}
	}()
	return out
}

// autorelayTag is the tag libp2p's autorelay protects its relays' connections with: the relays
// this node holds a reservation on.
const autorelayTag = "autorelay"

// withRelayAddrs adds, while the node is private, a circuit address through each relay it
// holds a reservation on. libp2p's autorelay advertises circuits through a relay's public
// addresses only; on the local profile (a LAN, loopback) the relay's private ones are the
// ones that work.
func (n *Host) withRelayAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	h := n.libp2pHost()
	if h == nil || n.reach.get() != ReachabilityPrivate || n.cfg.Profile != ProfileLocal {
		return addrs
	}
	for _, p := range h.Network().Peers() {
		if !h.ConnManager().IsProtected(p, autorelayTag) {
			continue
		}
		circuit, err := ma.NewMultiaddr("/p2p/" + p.String() + "/p2p-circuit")
		if err != nil {
			continue
		}
		for _, a := range h.Peerstore().Addrs(p) {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				continue
			}
			if c := a.Encapsulate(circuit); !slices.ContainsFunc(addrs, c.Equal) {
				addrs = append(addrs, c)
			}
		}
	}
	return addrs
}

// reachability follows the host's reachability events.
type reachability struct{ v atomic.Value }

func (r *reachability) get() string {
	if s, ok := r.v.Load().(string); ok {
		return s
	}
	return "unknown"
}

// watchReachability records every change of the host's reachability.
func (n *Host) watchReachability() {
	sub, err := n.h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		logger().Warn("reachability not followed", "err", err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				s := map[network.Reachability]string{network.ReachabilityPublic: "public", network.ReachabilityPrivate: "private"}[r]
				if s == "" {
					s = "unknown"
				}
				n.reach.v.Store(s)
				logger().Info("reachability", "now", s, "addrs", n.h.Addrs())
			}
		}
	}()
}

// Reachability is what AutoNAT (or the configuration) says of this node: public, private or
// unknown.
func (n *Host) Reachability() string { return n.reach.get() }

// RelayAddrs are the circuit addresses this node advertises through relays.
func (n *Host) RelayAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// libp2pHost is the libp2p host once New has built it (nil before).
func (n *Host) libp2pHost() host.Host {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	return n.h
}

// newStream opens a stream to p, over a relayed connection too when that is all there is (a
// peer behind a NAT; a hole punch may replace it with a direct one). A relay of this network
// grants whole sessions (RelayResources); one that limits its circuits cuts a long stream,
// and the caller fails over as for any broken stream.
func (n *Host) newStream(ctx context.Context, p peer.ID, proto protocol.ID) (network.Stream, error) {
	return n.h.NewStream(network.WithAllowLimitedConn(ctx, "neuroshard"), p, proto)
}

// RelayAddrStrings are RelayAddrs as full multiaddrs (ending in this node's /p2p/<id>).
func (n *Host) RelayAddrStrings() []string {
	out := []string{}
	for _, a := range n.RelayAddrs() {
		out = append(out, a.String()+"/p2p/"+n.h.ID().String())
	}
	return out
}

// RelayService tells whether this node relays for others.
func (n *Host) RelayService() bool { return n.cfg.RelayService }
