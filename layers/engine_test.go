package layers

import (
	"math"
	"slices"
	"testing"
)

// withBackend makes the stages of a test on one backend.
func withBackend(t *testing.T, name string) {
	t.Helper()
	prev := BackendName()
	if err := SetBackend(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { SetBackend(prev) })
}

func wholeStage(t *testing.T, cfg Config, seed uint64) *Stage {
	t.Helper()
	sp := Span{First: 0, Last: cfg.Layers - 1}
	st, err := NewStage(cfg, sp, cfg.InitParams(sp, seed))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func maxRelDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i]))/(1+math.Abs(float64(b[i]))))
	}
	return worst
}

// The whole model's logits and gradients on the project's backend against simplego. Products
// are summed in another order there, so they agree within a tolerance (1e-4 relative, float32
// rounding over a few layers), not bit for bit.
func TestModelOnCPUBackendMatchesSimpleGo(t *testing.T) {
	cfg := tinyConfig()
	tokens, targets := sampleBatch(cfg, 3, 20, 4)
	run := func(backend string) (*Tensor, *Gradients) {
		withBackend(t, backend)
		st := wholeStage(t, cfg, 9)
		out, err := st.Forward(tokens)
		if err != nil {
			t.Fatal(err)
		}
		g, err := st.BackwardLoss(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		return out, g
	}
	ours, og := run(BackendCPU)
	ref, rg := run(BackendSimpleGo)
	if d := maxRelDiff(ours.F32, ref.F32); d > 1e-4 {
		t.Fatalf("logits differ by %g", d)
	}
	if d := math.Abs(float64(og.Loss - rg.Loss)); d > 1e-5 {
		t.Fatalf("loss %g vs %g", og.Loss, rg.Loss)
	}
	for i := range rg.Params.Values {
		if d := maxRelDiff(og.Params.Values[i], rg.Params.Values[i]); d > 1e-4 {
			t.Fatalf("gradient of %s differs by %g", rg.Params.Specs[i].Name, d)
		}
	}
	// One AdamW step from each backend's gradients.
	a, b := og.Params.Clone(), rg.Params.Clone()
	pa, pb := wholeStage(t, cfg, 9).Params(), wholeStage(t, cfg, 9).Params()
	if err := NewAdamW(1e-3).Step(pa, a); err != nil {
		t.Fatal(err)
	}
	if err := NewAdamW(1e-3).Step(pb, b); err != nil {
		t.Fatal(err)
	}
	for i := range pa.Values {
		if d := maxRelDiff(pa.Values[i], pb.Values[i]); d > 1e-4 {
			t.Fatalf("after AdamW, %s differs by %g", pa.Specs[i].Name, d)
		}
	}
}

// The engine's determinism contract on the project's backend: the same bits whatever the
// thread count, the batch a sequence runs in, and prefill against token-by-token decoding.
func TestEngineIsDeterministic(t *testing.T) {
	cfg := tinyConfig()
	cfg.Context = 64
	tokens, _ := sampleBatch(cfg, 4, 40, 6)

	forward := func(backend string, in *Tensor) []float32 {
		withBackend(t, backend)
		out, err := wholeStage(t, cfg, 2).Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		return out.F32
	}
	one := forward("cpu:threads=1", tokens)
	if two := forward("cpu:threads=2", tokens); !slices.Equal(one, two) {
		t.Fatalf("1 and 2 threads differ (max %g)", maxRelDiff(one, two))
	}
	// Row 2 of the batch alone.
	row := NewI32(tokens.I32[2*40:3*40], 1, 40)
	alone := forward(BackendCPU, row)
	if per := len(alone); !slices.Equal(alone, one[2*per:3*per]) {
		t.Fatalf("a sequence alone differs from the same sequence in a batch of 4 (max %g)", maxRelDiff(alone, one[2*per:3*per]))
	}

	// Prefill of the whole prompt against one token at a time through a KV-cache session.
	withBackend(t, BackendCPU)
	st := wholeStage(t, cfg, 2)
	prefill, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer prefill.Close()
	all, err := prefill.Step(row)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer steps.Close()
	v := cfg.Vocab
	for i := 0; i < 40; i++ {
		out, err := steps.Step(NewI32(row.I32[i:i+1], 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.F32, all.F32[i*v:(i+1)*v]) {
			t.Fatalf("position %d: token-by-token differs from prefill (max %g)", i, maxRelDiff(out.F32, all.F32[i*v:(i+1)*v]))
		}
		if !slices.Equal(out.F32, alone[i*v:(i+1)*v]) {
			t.Fatalf("position %d: the session differs from the stage's forward (max %g)", i, maxRelDiff(out.F32, alone[i*v:(i+1)*v]))
		}
	}
}
