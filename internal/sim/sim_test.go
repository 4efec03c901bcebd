package sim

import (
	"context"
	"testing"
	"time"
)

// A small swarm of the node's own p2p parts on the in-memory network: every lookup succeeds,
// gossip reaches nearly every peer, and the observer's coverage stays complete and its
// generations through the swarm succeed while a quarter of the peers are replaced (each layer
// has several holders).
func TestSmallSwarm(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a swarm")
	}
	res, err := Run(context.Background(), Config{Peers: 12, Latency: 5 * time.Millisecond, Lookups: 10, Messages: 5,
		Churn: 0.25, ChurnTime: 4 * time.Second, Inference: true, Seed: 1, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.LookupFailed > 0 || res.LookupP50MS <= 0 || res.LookupAsked < 1 {
		t.Fatalf("lookups: %+v", res)
	}
	if res.ProvidersFound < 1 {
		t.Fatalf("provider lookups found a holder in %.2f of them", res.ProvidersFound)
	}
	if res.GossipDelivered < 0.9 || res.GossipP50MS < 5 {
		t.Fatalf("gossip: %.2f delivered, p50 %.1f ms (links take 5 ms)", res.GossipDelivered, res.GossipP50MS)
	}
	if res.CoverageShare < 0.9 || len(res.ChurnSamples) < 4 {
		t.Fatalf("coverage under churn: %.2f of %d looks complete", res.CoverageShare, len(res.ChurnSamples))
	}
	// Generations through the swarm go on while holders leave (failover to another holder).
	if res.InferenceTried < 4 || res.InferenceOK < 0.75 {
		t.Fatalf("inference under churn: %.2f of %d generations", res.InferenceOK, res.InferenceTried)
	}
	// Departed holders leave the view: the last looks count none.
	if last := res.ChurnSamples[len(res.ChurnSamples)-1]; last.Dead != 0 {
		t.Fatalf("the view still counts %d departed holders at the end: %+v", last.Dead, res.ChurnSamples)
	}
}

// DiLoCo rounds among 2 and 3 replicas over the simulated wire: every round averages every
// replica and leaves them with the same weights, and it takes at least the link's round trips.
func TestRoundsOverTheSimulatedWire(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs DiLoCo rounds")
	}
	res, err := Rounds(context.Background(), RoundsConfig{Replicas: []int{2, 3}, Rounds: 2, Latency: 10 * time.Millisecond, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Shared != 1 || r.P50MS < 20 || r.SentBytes <= 0 {
			t.Fatalf("%d replicas: %+v", r.Replicas, r)
		}
	}
}
