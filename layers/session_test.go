package layers

import (
	"errors"
	"math"
	"testing"
)

// recompute is a stepper without a cache: every step runs the whole prefix again.
type recompute struct {
	stages []*Stage
	seq    []int32
	worst  float64 // largest logit difference seen against the cached run, filled by the test
	// picks counts the steps, and split the first (from 1) where the greedy picks of the two
	// runs differ: the same pick at every step of one prefix is the same greedy answer as
	// the uncached model's alone.
	picks, split int
}

func (r *recompute) Step(tokens []int32) ([]float32, error) {
	r.seq = append(r.seq, tokens...)
	x, err := LocalPipeline(r.stages).Forward(NewI32(r.seq, 1, len(r.seq)))
	if err != nil {
		return nil, err
	}
	v := x.Dims[2]
	return x.F32[(len(r.seq)-1)*v:], nil
}

// compare runs both steppers in lockstep and records the largest logit difference.
type compare struct {
	cached *Pipeline
	full   *recompute
}

func (c *compare) Step(tokens []int32) ([]float32, error) {
	a, err := c.cached.Step(tokens)
	if err != nil {
		return nil, err
	}
	b, err := c.full.Step(tokens)
	if err != nil {
		return nil, err
	}
	c.full.worst = math.Max(c.full.worst, maxAbsDiff(a, b))
	c.full.picks++
	if c.full.split == 0 && argmax(a) != argmax(b) {
		c.full.split = c.full.picks
	}
	return a, nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// On both backends: the project's writes the cache in place (DynamicUpdateSlice on a donated
// buffer), simplego places the new positions with a one-hot product.
func TestKVCacheDecodingMatchesRecomputation(t *testing.T) {
	for _, tc := range []struct {
		backend string
		tokens  int
	}{{BackendCPU, 200}, {BackendSimpleGo, 40}} {
		t.Run(tc.backend, func(t *testing.T) {
			withBackend(t, tc.backend)
			testKVCacheDecoding(t, tc.tokens)
		})
	}
}

func testKVCacheDecoding(t *testing.T, n int) {
	cfg := tinyConfig()
	cfg.Context = 256
	var stages []*Stage
	for _, sp := range []Span{{0, 1}, {2, 3}} {
		st, err := NewStage(cfg, sp, cfg.InitParams(sp, 11))
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, st)
	}
	greedy := Sampling{Temperature: 0, TopP: 1, MaxTokens: n}
	prompt := Encode("To be, or not to be")

	pipe, err := NewPipeline(stages)
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	full := &recompute{stages: stages}
	both := &compare{cached: pipe, full: full}
	got, reason, err := Generate(both, cfg.Context, prompt, greedy, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens (%s), max logit difference cached vs recomputed: %g", len(got), reason, full.worst)
	if len(got) != n || reason != FinishLength {
		t.Fatalf("generated %d tokens (%s), want %d (length)", len(got), reason, n)
	}
	// Greedy decoding of the uncached model alone picks the same tokens.
	if full.split != 0 {
		t.Fatalf("step %d of %d: the cached and the recomputed logits pick different tokens", full.split, full.picks)
	}
	if full.worst > 1e-4 {
		t.Fatalf("cached logits differ from recomputed ones by %g", full.worst)
	}
	distinct := map[int32]bool{}
	for _, id := range got {
		distinct[id] = true
	}
	if len(distinct) < 3 {
		t.Fatalf("degenerate output (%d distinct tokens) makes the comparison weak", len(distinct))
	}
}

func TestSessionLimits(t *testing.T) {
	cfg := tinyConfig() // context 32
	st, err := NewStage(cfg, Span{0, 3}, cfg.InitParams(Span{0, 3}, 1))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Step(NewI32(make([]int32, 30), 1, 30)); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Step(NewI32(make([]int32, 3), 1, 3)); !errors.Is(err, ErrContextFull) {
		t.Fatalf("past the context: %v", err)
	}
	if _, err := ss.Step(NewI32(make([]int32, 2), 2, 1)); !errors.Is(err, ErrBadInput) {
		t.Fatalf("wrong batch: %v", err)
	}
	if ss.Pos() != 30 {
		t.Fatalf("failed steps moved the position to %d", ss.Pos())
	}
	ss.Close()
	if _, err := ss.Step(NewI32([]int32{1}, 1, 1)); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("closed session: %v", err)
	}
	if _, err := st.NewSession(0); !errors.Is(err, ErrBadInput) {
		t.Fatalf("batch 0: %v", err)
	}
	if _, err := NewPipeline([]*Stage{st, st}); !errors.Is(err, ErrInvalidSpan) {
		t.Fatalf("overlapping stages: %v", err)
	}
}

// The KV cache is allocated as positions arrive, not for the whole context at open: a session
// of batch 64 that was opened and never stepped holds nothing.
func TestKVCacheGrowsWithTheSequence(t *testing.T) {
	cfg := tinyConfig()
	cfg.Context = 256
	st, err := NewStage(cfg, Span{First: 0, Last: 1}, cfg.InitParams(Span{First: 0, Last: 1}, 3))
	if err != nil {
		t.Fatal(err)
	}
	big, err := st.NewSession(64)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if b := big.CacheBytes(); b != 0 {
		t.Fatalf("an unused session holds %d bytes", b)
	}
	ss, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	perPos := int64(cfg.DModel) * 4 * 2 * 2 // keys and values, 2 layers
	// A chunk is padded to a power of two, and the padded rows need room too.
	for _, c := range []struct{ step, wantCap int }{{5, 16}, {3, 16}, {8, 16}, {1, 32}, {40, 128}} {
		if _, err := ss.Step(NewI32(make([]int32, c.step), 1, c.step)); err != nil {
			t.Fatal(err)
		}
		if got := ss.CacheBytes(); got != int64(c.wantCap)*perPos {
			t.Fatalf("at %d positions the cache holds %d bytes, want %d (%d positions)", ss.Pos(), got, int64(c.wantCap)*perPos, c.wantCap)
		}
	}
}
