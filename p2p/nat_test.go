package p2p

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// behindNAT stands for a NAT in front of a node: it dials out only to its relay and takes no
// connection in but the relay's and relayed ones, so nobody reaches it directly, and a hole
// punch cannot succeed either.
type behindNAT struct{ relay peer.ID }

func relayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func (g behindNAT) InterceptPeerDial(p peer.ID) bool                 { return p == g.relay }
func (g behindNAT) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return p == g.relay }
func (g behindNAT) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g behindNAT) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	return p == g.relay || dir == network.DirInbound && relayed(cm.RemoteMultiaddr())
}
func (g behindNAT) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// unreachable is the other side of that NAT: a dial to the node's own addresses cannot be
// made (only one through a relay can).
type unreachable struct{ natted peer.ID }

func (g unreachable) InterceptPeerDial(peer.ID) bool { return true }
func (g unreachable) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return p != g.natted || relayed(a)
}
func (g unreachable) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g unreachable) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g unreachable) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// A node nobody can dial reserves a slot on a relay, advertises the relay's circuit address,
// says it is private, and serves a forward session to a peer that reaches it only through
// the relay.
func TestNodeBehindANATServesThroughARelay(t *testing.T) {
	relay := newTestHost(t, WithRelayService())
	natted := newTestHost(t, WithBootstrap(addrInfo(relay)), WithReachability(ReachabilityPrivate),
		WithGater(behindNAT{relay: relay.ID()}), WithDHTMode(DHTModeClient))
	waitFor(t, 20*time.Second, "a relay reservation", func() bool { return len(natted.RelayAddrs()) > 0 })
	if r := natted.Reachability(); r != ReachabilityPrivate {
		t.Fatalf("reachability %q", r)
	}
	natted.ServeForward(func(peer.ID, ForwardOpen) (ForwardSession, error) {
		return &scaleSession{closed: new(atomic.Int32)}, nil
	})

	client := newTestHost(t, WithBootstrap(addrInfo(relay)), WithGater(unreachable{natted.ID()}))
	client.Libp2p().Peerstore().AddAddrs(natted.ID(), natted.Libp2p().Addrs(), time.Hour) // its direct addresses too
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fc, err := client.OpenForward(ctx, natted.ID(), ForwardOpen{Model: "m", First: 0, Last: 0, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	out, err := fc.Step(ctx, &Tensor{Dims: []int{1, 2}, F32: []float32{1, 2}})
	if err != nil || !slices.Equal(out.F32, []float32{1, 2}) {
		t.Fatalf("a step through the relay: %v %v", out, err)
	}
	conns := client.Libp2p().Network().ConnsToPeer(natted.ID())
	if len(conns) == 0 {
		t.Fatal("no connection to the node behind the NAT")
	}
	for _, c := range conns {
		if !relayed(c.RemoteMultiaddr()) {
			t.Fatalf("a direct connection to a node nobody can dial: %s", c.RemoteMultiaddr())
		}
	}
}
