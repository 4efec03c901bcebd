package diloco

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

func vecParams(v ...float32) *layers.Params {
	return &layers.Params{Specs: []layers.ParamSpec{{Name: "w", Dims: []int{len(v)}}}, Values: [][]float32{v}}
}

func TestOuterNesterovStep(t *testing.T) {
	theta := vecParams(1, 2)
	o := NewOuter(0.5, 0.9)
	// Step 1: v = g = [0.2, -0.4]; theta -= 0.5*(g + 0.9 v) = 0.5*1.9*g.
	if err := o.Step(theta, vecParams(0.2, -0.4)); err != nil {
		t.Fatal(err)
	}
	want := []float32{1 - 0.5*1.9*0.2, 2 + 0.5*1.9*0.4}
	for i := range want {
		if math.Abs(float64(theta.Values[0][i]-want[i])) > 1e-6 {
			t.Fatalf("step 1: %v, want %v", theta.Values[0], want)
		}
	}
	// Step 2 with g = 0: v = 0.9 v; theta -= 0.5 * 0.9 * v.
	before := theta.Clone()
	o.Step(theta, vecParams(0, 0))
	for i, v := range []float32{0.2, -0.4} {
		d := before.Values[0][i] - theta.Values[0][i]
		if math.Abs(float64(d-0.5*0.9*0.9*v)) > 1e-6 {
			t.Fatalf("momentum step moved %v", d)
		}
	}
	nan := vecParams(float32(math.NaN()), 0)
	if err := o.Step(theta, nan); !errors.Is(err, ErrRejected) {
		t.Fatalf("NaN pseudo-gradient: %v", err)
	}
	pg, err := PseudoGradient(vecParams(1, 1), vecParams(0.25, 2))
	if err != nil || pg.Values[0][0] != 0.75 || pg.Values[0][1] != -1 {
		t.Fatalf("pseudo-gradient %v %v", pg, err)
	}
}

func TestAggregateRejectsAndFlags(t *testing.T) {
	specs := vecParams(0, 0, 0).Specs
	honest := []Contribution{
		{"a", vecParams(1, 2, 3)}, {"b", vecParams(1.2, 1.8, 3.1)}, {"c", vecParams(0.8, 2.2, 2.9)},
	}
	poisoned := append(honest[:3:3],
		Contribution{"nan", vecParams(1, float32(math.NaN()), 3)},
		Contribution{"big", vecParams(1000, 2000, 3000)},
		Contribution{"shape", vecParams(1, 2)},
	)
	agg := DefaultAggregator()
	clean, err := agg.Aggregate(specs, honest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := agg.Aggregate(specs, poisoned)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Used) != 3 || len(got.Excluded) != 3 || got.Excluded["big"] == "" || got.Excluded["nan"] == "" || got.Excluded["shape"] == "" {
		t.Fatalf("used %v, excluded %v", got.Used, got.Excluded)
	}
	if got.Grad.Hash() != clean.Grad.Hash() {
		t.Fatal("the poisoned round differs from the honest one")
	}
	if m := clean.Grad.Values[0]; math.Abs(float64(m[0])-1) > 1e-6 || math.Abs(float64(m[2])-3) > 1e-6 {
		t.Fatalf("mean %v", m)
	}
	// Order does not matter, bit for bit.
	rev := []Contribution{honest[2], honest[0], honest[1]}
	if again, _ := agg.Aggregate(specs, rev); again.Grad.Hash() != clean.Grad.Hash() {
		t.Fatal("aggregation depends on arrival order")
	}
	// A peer that sends twice is excluded altogether.
	dup, _ := agg.Aggregate(specs, append(honest[:3:3], Contribution{"a", vecParams(9, 9, 9)}))
	if dup.Excluded["a"] == "" || len(dup.Used) != 2 {
		t.Fatalf("duplicate: used %v excluded %v", dup.Used, dup.Excluded)
	}
	// The trimmed mean shrugs off one extreme coordinate the norm check would miss.
	tm := Aggregator{Method: TrimmedMean, TrimFraction: 0.2}
	sneaky := append(honest[:3:3], Contribution{"d", vecParams(1, 2, 3)}, Contribution{"e", vecParams(1, 2, 50)})
	r, _ := tm.Aggregate(specs, sneaky)
	if v := r.Grad.Values[0][2]; v > 3.2 {
		t.Fatalf("trimmed mean let the extreme through: %v", v)
	}
	if _, err := agg.Aggregate(specs, []Contribution{{"x", vecParams(1)}}); !errors.Is(err, ErrRejected) {
		t.Fatalf("nothing valid: %v", err)
	}
}

func TestCompression(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, 1000)
	for i := range v {
		v[i] = float32(r.NormFloat64() * 0.01)
	}
	for _, tc := range []struct {
		c      Compression
		bytes  int
		maxErr float64
	}{
		{CompressNone, 4000, 0}, {CompressFP16, 2000, 2e-5}, {CompressInt8, 1004, 0.01 * 4 / 127},
	} {
		b, err := Compress(tc.c, v)
		if err != nil || len(b) != tc.bytes {
			t.Fatalf("compress %d: %d bytes, %v", tc.c, len(b), err)
		}
		out, err := Decompress(tc.c, b, len(v))
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range v {
			worst = math.Max(worst, math.Abs(float64(v[i]-out[i])))
		}
		if worst > tc.maxErr {
			t.Fatalf("compression %d: max error %g > %g", tc.c, worst, tc.maxErr)
		}
		if _, err := Decompress(tc.c, b[:len(b)-1], len(v)); !errors.Is(err, ErrCompressed) {
			t.Fatalf("short payload: %v", err)
		}
	}
}

func FuzzDecompress(f *testing.F) {
	b, _ := Compress(CompressInt8, []float32{1, -2, 3})
	f.Add(byte(CompressInt8), b, 3)
	f.Add(byte(CompressFP16), []byte{0, 0x7c, 0, 0}, 2)
	f.Fuzz(func(t *testing.T, c byte, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		out, err := Decompress(Compression(c), b, n)
		if err == nil && len(out) != n {
			t.Fatalf("%d values for %d", len(out), n)
		}
		for _, x := range out {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatal("non-finite value decoded")
			}
		}
	})
}

// Two replicas of a span train on different shards for H inner steps, exchange
// pseudo-gradients and apply the outer step: they end every round with bit-identical weights,
// and the validation loss falls.
func TestReplicasAgreeAfterEveryRound(t *testing.T) {
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		t.Fatal(err)
	}
	corpus, _ := layers.NewCorpus(data, 0.1)
	cfg := layers.Config{Name: "tiny", Vocab: layers.ByteVocab, DModel: 32, Layers: 2, Heads: 4, MLPHidden: 64, Context: 32}
	span := layers.Span{First: 0, Last: 1}
	theta0 := cfg.InitParams(span, 1)
	outer := []*Outer{NewOuter(0.7, 0.9), NewOuter(0.7, 0.9)}
	thetas := []*layers.Params{theta0.Clone(), theta0.Clone()}
	val := layers.ValidationBatches(corpus.Val, 8, 32, 4)
	loss := func(p *layers.Params) float64 {
		st, _ := layers.NewStage(cfg, span, p)
		l, err := layers.LocalPipeline{st}.Loss(val)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	start := loss(theta0)
	const rounds, inner = 4, 10
	var batchers []*layers.Batcher
	for r := 0; r < 2; r++ {
		shard, _ := corpus.Shard(r, 2)
		b, _ := layers.NewBatcher(shard, 8, 32, uint64(r))
		batchers = append(batchers, b)
	}
	opts := []*layers.AdamW{layers.NewAdamW(3e-3), layers.NewAdamW(3e-3)}
	for round := 0; round < rounds; round++ {
		var cs []Contribution
		for r := 0; r < 2; r++ {
			st, _ := layers.NewStage(cfg, span, thetas[r])
			for i := 0; i < inner; i++ {
				tok, tg := batchers[r].Next()
				if _, err := (layers.LocalPipeline{st}).TrainStep([]*layers.AdamW{opts[r]}, tok, tg); err != nil {
					t.Fatal(err)
				}
			}
			pg, err := PseudoGradient(thetas[r], st.Params())
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, Contribution{Peer: string(rune('a' + r)), Grad: pg})
		}
		for r := 0; r < 2; r++ { // each replica aggregates what it received, in its own order
			mine := cs
			if r == 1 {
				mine = []Contribution{cs[1], cs[0]}
			}
			res, err := DefaultAggregator().Aggregate(theta0.Specs, mine)
			if err != nil {
				t.Fatal(err)
			}
			if err := outer[r].Step(thetas[r], res.Grad); err != nil {
				t.Fatal(err)
			}
		}
		if thetas[0].Hash() != thetas[1].Hash() {
			t.Fatalf("round %d: replicas disagree", round)
		}
	}
	end := loss(thetas[0])
	t.Logf("validation loss %.3f -> %.3f after %d rounds of %d inner steps", start, end, rounds, inner)
	if start-end < 1.0 {
		t.Fatalf("validation loss fell by only %.3f", start-end)
	}
}

// A copy of an optimizer that has not stepped yet steps like the original.
func TestOuterCopyBeforeFirstStep(t *testing.T) {
	a := NewOuter(0.7, 0.9)
	b := NewOuter(0.7, 0.9)
	b.SetVelocity(a.Velocity())
	pa, pb := vecParams(1, 2), vecParams(1, 2)
	if err := a.Step(pa, vecParams(0.1, 0.1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Step(pb, vecParams(0.1, 0.1)); err != nil {
		t.Fatal(err)
	}
	if pa.Hash() != pb.Hash() {
		t.Fatal("copy diverged")
	}
}

// Of two contributions, one scaled far past the other is left out, whichever order they come
// in; two of similar size are both used.
func TestAggregateOfTwoLeavesOutTheScaledOne(t *testing.T) {
	specs := vecParams(0, 0, 0).Specs
	agg := DefaultAggregator()
	honest, big := Contribution{"z", vecParams(1, 2, 3)}, Contribution{"a", vecParams(1000, 2000, 3000)}
	for _, cs := range [][]Contribution{{honest, big}, {big, honest}} {
		r, err := agg.Aggregate(specs, cs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Used, []string{"z"}) || !strings.Contains(r.Excluded["a"], "norm") {
			t.Fatalf("used %v, excluded %v", r.Used, r.Excluded)
		}
		if v := r.Grad.Values[0]; v[0] != 1 || v[2] != 3 {
			t.Fatalf("aggregate %v, want the honest contribution", v)
		}
	}
	r, err := agg.Aggregate(specs, []Contribution{honest, {"b", vecParams(2, 4, 6)}})
	if err != nil || len(r.Used) != 2 || len(r.Excluded) != 0 {
		t.Fatalf("two honest contributions: used %v, excluded %v, %v", r.Used, r.Excluded, err)
	}
}
