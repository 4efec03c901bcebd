package p2p

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// fillTime starts n hosts (all bootstrapping off the first) and returns how long until every
// routing table holds the n-1 others.
func fillTime(b *testing.B, n int) time.Duration {
	start := time.Now()
	hosts := newTestNetwork(b, n)
	waitFor(b, 60*time.Second, "routing tables to fill", func() bool {
		for _, h := range hosts {
			if len(h.RoutingTable()) < n-1 {
				return false
			}
		}
		return true
	})
	d := time.Since(start)
	for _, h := range hosts {
		h.Close()
	}
	return d
}

// BenchmarkRoutingTableFill: time for 20 in-process nodes to fill their routing tables, next to
// the same for 5 nodes as the baseline.
func BenchmarkRoutingTableFill(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t5 := fillTime(b, 5)
		t20 := fillTime(b, 20)
		b.ReportMetric(float64(t20.Milliseconds()), "fill20-ms")
		b.ReportMetric(float64(t5.Milliseconds()), "fill5-ms")
		b.ReportMetric(t20.Seconds()/t5.Seconds(), "fill20/fill5")
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkProvideFindProviders: Provide and FindProviders latency (median, p99) from a freshly
// joined node in a 20-node network, against the ping round trip from the same node.
func BenchmarkProvideFindProviders(b *testing.B) {
	b.ReportAllocs()
	hosts := newTestNetwork(b, 20)
	waitFor(b, 60*time.Second, "routing tables", func() bool {
		for _, h := range hosts {
			if len(h.RoutingTable()) < 19 {
				return false
			}
		}
		return true
	})
	fresh := newTestHost(b, WithBootstrap(addrInfo(hosts[7])))
	finder := newTestHost(b, WithBootstrap(addrInfo(hosts[13])), WithDHTMode(DHTModeClient))
	ctx := context.Background()
	const rounds = 100
	var prov, find, rtt []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			key := fmt.Sprintf("bench-model/%d/%d", i, r)
			t0 := time.Now()
			if err := fresh.Provide(ctx, key); err != nil {
				b.Fatal(err)
			}
			prov = append(prov, time.Since(t0))
			t0 = time.Now()
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ps, err := finder.FindProviders(fctx, key, 1)
			cancel()
			if err != nil || len(ps) != 1 {
				b.Fatalf("find %s: %v %v", key, ps, err)
			}
			find = append(find, time.Since(t0))
			pctx, cancel := context.WithCancel(ctx) // ping.Ping pings until cancelled
			res := <-ping.Ping(pctx, finder.Libp2p(), hosts[r%20].ID())
			cancel()
			if res.Error != nil {
				b.Fatal(res.Error)
			}
			rtt = append(rtt, res.RTT)
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(prov, 0.5)), "provide-p50-ms")
	b.ReportMetric(ms(pct(prov, 0.99)), "provide-p99-ms")
	b.ReportMetric(ms(pct(find, 0.5)), "find-p50-ms")
	b.ReportMetric(ms(pct(find, 0.99)), "find-p99-ms")
	b.ReportMetric(ms(pct(rtt, 0.5)), "ping-p50-ms")
	b.ReportMetric(pct(find, 0.5).Seconds()/pct(rtt, 0.5).Seconds(), "find/ping")
}

// BenchmarkForwardStepRoundTrip: one forward step of a decode-sized activation (128 float32)
// through a real stream over loopback, signed and verified: the per-step cost of the wire.
func BenchmarkForwardStepRoundTrip(b *testing.B) {
	hosts := newTestNetwork(b, 2)
	hosts[0].ServeForward(func(peer.ID, ForwardOpen) (ForwardSession, error) { return &scaleSession{closed: &atomic.Int32{}}, nil })
	fc, err := hosts[1].OpenForward(context.Background(), hosts[0].ID(), ForwardOpen{Model: "m", Last: 1, Batch: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer fc.Close()
	in := &Tensor{Dims: []int{1, 1, 128}, F32: make([]float32, 128)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := fc.Step(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
