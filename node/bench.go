package node

import (
	"path/filepath"
	"sync/atomic"

	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// benchFile keeps the node's measured throughput, so it is measured once per machine, preset
// and backend rather than at every start.
const benchFile = "bench.json"

// Bench modes of Config.Bench.
const (
	BenchOff   = ""      // never measure (tests, embedded nodes)
	BenchFirst = "first" // measure at the first start on this preset and backend, then reuse it
	BenchAgain = "again" // measure at this start even if a result is stored (--rebench)
)

// benchState is the node's last measurement (nil until there is one).
type benchState struct {
	v atomic.Pointer[layers.BenchResult]
}

// Benchmark is the node's measured throughput on its preset and backend (short form), or nil
// before it is measured.
func (n *Node) Benchmark() *layers.BenchResult { return n.bench.v.Load() }

// loadBench takes the stored measurement when the config reuses one (at Start, so the first
// peer record carries it).
func (n *Node) loadBench() {
	if n.cfg.Bench == BenchFirst {
		if r := layers.LoadBench(filepath.Join(n.cfg.DataDir, benchFile), n.model); r != nil {
			n.bench.v.Store(r)
		}
	}
}

// measure runs the short benchmark when the config asks for it and nothing fitting is
// stored, keeps it and stores it. It runs before the node trains, on the same cores.
func (n *Node) measure() {
	path := filepath.Join(n.cfg.DataDir, benchFile)
	if n.cfg.Bench == BenchOff || n.cfg.Bench == BenchFirst && n.Benchmark() != nil {
		return
	}
	logger().Info("measuring this machine's throughput (first start on this preset and backend; --rebench repeats it)", "model", n.model.Name, "backend", layers.BackendName())
	r, err := layers.Bench(n.model, layers.BenchOptions{Short: true, Ctx: n.ctx})
	if err != nil {
		if n.ctx.Err() == nil {
			logger().Warn("benchmark failed", "err", err)
		}
		return
	}
	n.bench.v.Store(&r)
	logger().Info("throughput", "forward", int(r.Forward), "train", int(r.Train), "decode", int(r.Decode), "decode_batch8", int(r.DecodeBatch8), "prefill", int(r.Prefill))
	if err := layers.StoreBench(path, r); err != nil {
		logger().Warn("could not store the benchmark", "err", err)
	}
}

// publishRecord puts the node's peer record in the DHT: its span, memory and measured
// throughput (none before it is measured), which peers weigh it by when they route.
func (n *Node) publishRecord() {
	span := n.Span()
	r := p2p.PeerRecord{Model: n.model.Name, First: span.First, Last: span.Last, MemoryBytes: n.MemoryBudget(),
		UsedBytes: n.model.SpanMemoryBytes(span), Backend: layers.BackendName()}
	if b := n.Benchmark(); b != nil {
		r.Backend, r.Threads = b.Backend, b.Threads
		r.Throughput = p2p.Throughput{Forward: b.Forward, Train: b.Train, Decode: b.Decode, DecodeBatch8: b.DecodeBatch8, Prefill: b.Prefill}
	}
	if err := n.host.SetRecord(r); err != nil {
		logger().Warn("could not make the node's peer record", "err", err)
	}
}
