package p2p

import (
	"context"
	"github.com/neuroshard/neuroshard/internal/natsim"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A node nobody can dial reserves a slot on a relay, advertises the relay's circuit address,
// says it is private, and serves a forward session to a peer that reaches it only through
// the relay.
func TestNodeBehindANATServesThroughARelay(t *testing.T) {
	relay := newTestHost(t, WithRelayService())
	natted := newTestHost(t, WithBootstrap(addrInfo(relay)), WithReachability(ReachabilityPrivate),
		WithGater(natsim.Behind{Relay: relay.ID()}), WithDHTMode(DHTModeClient))
	waitFor(t, 20*time.Second, "a relay reservation", func() bool { return len(natted.RelayAddrs()) > 0 })
	if r := natted.Reachability(); r != ReachabilityPrivate {
		t.Fatalf("reachability %q", r)
	}
	natted.ServeForward(func(peer.ID, ForwardOpen) (ForwardSession, error) {
		return &scaleSession{closed: new(atomic.Int32)}, nil
	})

	client := newTestHost(t, WithBootstrap(addrInfo(relay)), WithGater(natsim.Outside{Natted: natted.ID()}))
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
		if !natsim.Relayed(c.RemoteMultiaddr()) {
			t.Fatalf("a direct connection to a node nobody can dial: %s", c.RemoteMultiaddr())
		}
	}
}
