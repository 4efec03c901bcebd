package node

import (
	"context"
	"testing"
	"time"
)

// A node measures its throughput at its first start, shows it in its status and stores it;
// the next start reuses it, and --rebench (BenchAgain) measures again.
func TestNodeMeasuresItsThroughputOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.Model, cfg.Bench = "neuroshard-tiny", BenchFirst
	n1 := startNode(t, cfg)
	eventually(t, 90*time.Second, "a benchmark", func() bool { return n1.Benchmark() != nil })
	st, err := apiClient(n1).Status(context.Background())
	if err != nil || st.Benchmark == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
	b := st.Benchmark
	if b.Preset != "neuroshard-tiny" || b.Backend != "cpu" || b.Threads < 1 || !b.Short ||
		b.Forward <= 0 || b.Train <= 0 || b.Decode <= 0 || b.DecodeBatch8 <= 0 || b.Prefill <= 0 {
		t.Fatalf("benchmark: %+v", b)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, cfg)
	eventually(t, 10*time.Second, "the stored benchmark", func() bool { return n2.Benchmark() != nil })
	if got := n2.Benchmark(); !got.MeasuredAt.Equal(b.MeasuredAt) {
		t.Fatalf("second start measured again (%v, first %v)", got.MeasuredAt, b.MeasuredAt)
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.Bench = BenchAgain
	n3 := startNode(t, cfg)
	eventually(t, 90*time.Second, "a new benchmark", func() bool {
		r := n3.Benchmark()
		return r != nil && r.MeasuredAt.After(b.MeasuredAt)
	})
}
