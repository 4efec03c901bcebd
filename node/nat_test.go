package node

import (
	"context"
	"github.com/neuroshard/neuroshard/internal/natsim"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

// A node behind a NAT (nobody can dial it; it dials only its relay) holds layers 4-7: it
// reserves a slot on a relay node, says so in its status, and serves a requester's
// generation through the relay, exactly as a directly connected stage would.
func TestNodeBehindANATServesInferenceThroughARelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	relayCfg := testConfig(t)
	relayCfg.Layers, relayCfg.Relay = "0-3", true
	relay := startNode(t, relayCfg)

	natCfg := testConfig(t)
	natCfg.Layers, natCfg.Bootstrap, natCfg.Reachability, natCfg.DHTMode = "4-7", relay.Multiaddrs(), "private", "client"
	natCfg.Gater = natsim.Behind{Relay: relay.host.ID()}
	natted := startNode(t, natCfg)
	eventually(t, 20*time.Second, "a relay reservation in the status", func() bool {
		st, err := apiClient(natted).Status(ctx)
		return err == nil && st.Reachability == "private" && len(st.RelayAddrs) > 0
	})
	if st, _ := apiClient(relay).Status(ctx); !st.RelayService {
		t.Fatal("the relay does not say it relays")
	}

	reqCfg := testConfig(t)
	reqCfg.Layers, reqCfg.Bootstrap, reqCfg.Gater = "0-3", relay.Multiaddrs(), natsim.Outside{Natted: natted.host.ID()}
	req := startNode(t, reqCfg)
	eventually(t, 30*time.Second, "layers 4-7 in the requester's coverage", func() bool {
		return len(req.api.Coverage(ctx).Layers[7].Providers) == 1
	})
	prompt, s := layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 8}
	want := localGeneration(t, req, natted, prompt, s)
	got, _, err := generateWith(req, natted.host.ID(), prompt, s)
	if err != nil || string(layers.Decode(got)) != string(layers.Decode(want)) {
		t.Fatalf("through the relay: %q %v, want %q", layers.Decode(got), err, layers.Decode(want))
	}
	onlyRelayed(t, req, natted)
}

// onlyRelayed fails unless from is connected to to, and only through a relay.
func onlyRelayed(t *testing.T, from, to *Node) {
	t.Helper()
	conns := from.host.Libp2p().Network().ConnsToPeer(to.host.ID())
	if len(conns) == 0 {
		t.Fatal("no connection to the node behind the NAT")
	}
	for _, c := range conns {
		if !natsim.Relayed(c.RemoteMultiaddr()) {
			t.Fatalf("a direct connection to a node nobody can dial: %s", c.RemoteMultiaddr())
		}
	}
}

// A node behind a NAT trains too: a driver (layers 0-1) that cannot dial it sends its training
// activations to the NATed stage (2-3) through a relay, and both take their inner steps.
func TestNodeBehindANATTrainsThroughARelay(t *testing.T) {
	t.Parallel()
	on, off := true, false
	relayCfg := testConfig(t)
	relayCfg.Model, relayCfg.Layers, relayCfg.Train, relayCfg.Relay = "neuroshard-tiny", "0-1", &off, true
	relay := startNode(t, relayCfg)
	natCfg := testConfig(t)
	natCfg.Model, natCfg.Layers, natCfg.Train = "neuroshard-tiny", "2-3", &on
	natCfg.Bootstrap, natCfg.Reachability, natCfg.DHTMode = relay.Multiaddrs(), "private", "client"
	natCfg.Gater = natsim.Behind{Relay: relay.host.ID()}
	natted := startNode(t, natCfg)
	eventually(t, 20*time.Second, "a relay reservation", func() bool { return len(natted.host.RelayAddrs()) > 0 })
	driverCfg := testConfig(t)
	driverCfg.Model, driverCfg.Layers, driverCfg.Train = "neuroshard-tiny", "0-1", &on
	driverCfg.Bootstrap, driverCfg.Gater = relay.Multiaddrs(), natsim.Outside{Natted: natted.host.ID()}
	driver := startNode(t, driverCfg)
	eventually(t, 2*time.Minute, "inner steps on the driver and the NATed stage", func() bool {
		return driver.innerSteps() >= 20 && natted.innerSteps() >= 20
	})
	onlyRelayed(t, driver, natted)
}
