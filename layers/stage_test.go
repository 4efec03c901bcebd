package layers

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// tinyConfig is a small model for fast tests: 4 layers, d_model 32.
func tinyConfig() Config {
	return Config{Name: "tiny", Vocab: ByteVocab, DModel: 32, Layers: 4, Heads: 4, MLPHidden: 64, Context: 32}
}

func sampleBatch(cfg Config, b, t int, seed uint64) (tokens, targets *Tensor) {
	r := rand.New(rand.NewPCG(seed, 99))
	ids := make([]int32, b*(t+1))
	for i := range ids {
		ids[i] = int32(r.IntN(cfg.Vocab))
	}
	in, tg := make([]int32, 0, b*t), make([]int32, 0, b*t)
	for i := 0; i < b; i++ {
		row := ids[i*(t+1) : (i+1)*(t+1)]
		in = append(in, row[:t]...)
		tg = append(tg, row[1:]...)
	}
	return NewI32(in, b, t), NewI32(tg, b, t)
}

// splitSpans cuts a model of n layers into k contiguous spans.
func splitSpans(n, k int) []Span {
	var out []Span
	for i := 0; i < k; i++ {
		out = append(out, Span{First: i * n / k, Last: (i+1)*n/k - 1})
	}
	return out
}

// pipelineGrads runs one batch through the stages in order, then back, as peers would.
func pipelineGrads(t *testing.T, stages []*Stage, tokens, targets *Tensor) (logits *Tensor, loss float32, grads map[string][]float32) {
	t.Helper()
	lp := LocalPipeline(stages)
	logits, err := lp.Forward(tokens)
	if err != nil {
		t.Fatal(err)
	}
	perStage, loss, err := lp.Gradients(tokens, targets)
	if err != nil {
		t.Fatal(err)
	}
	grads = map[string][]float32{}
	for _, g := range perStage {
		for j, spec := range g.Specs {
			grads[spec.Name] = g.Values[j]
		}
	}
	return logits, loss, grads
}

func TestPipelineMatchesWholeModel(t *testing.T) {
	cfg, _ := Preset(DefaultModel)
	const seed = 42
	tokens, targets := sampleBatch(cfg, 2, 32, 3)
	var wholeLogits *Tensor
	var wholeLoss float32
	var wholeGrads map[string][]float32
	for k := 1; k <= 3; k++ {
		var stages []*Stage
		for _, sp := range splitSpans(cfg.Layers, k) {
			st, err := NewStage(cfg, sp, cfg.InitParams(sp, seed))
			if err != nil {
				t.Fatal(err)
			}
			stages = append(stages, st)
		}
		logits, loss, grads := pipelineGrads(t, stages, tokens, targets)
		if k == 1 {
			wholeLogits, wholeLoss, wholeGrads = logits, loss, grads
			if math.Abs(float64(loss)-math.Log(float64(cfg.Vocab))) > 0.5 {
				t.Fatalf("initial loss %v, want about ln(%d) = %.2f", loss, cfg.Vocab, math.Log(float64(cfg.Vocab)))
			}
			continue
		}
		worst := maxAbsDiff(logits.F32, wholeLogits.F32)
		for name, g := range wholeGrads {
			worst = math.Max(worst, maxAbsDiff(grads[name], g))
		}
		t.Logf("%d stages: loss %v (whole %v), max abs difference of logits and %d gradients: %g", k, loss, wholeLoss, len(wholeGrads), worst)
		if len(grads) != len(wholeGrads) {
			t.Fatalf("%d stages produced %d gradients, whole model %d", k, len(grads), len(wholeGrads))
		}
		if worst > 1e-6 || math.Abs(float64(loss-wholeLoss)) > 1e-6 {
			t.Fatalf("%d stages differ from the whole model by %g (loss %v vs %v)", k, worst, loss, wholeLoss)
		}
	}
}

func TestInitIsDeterministicAndSpanIndependent(t *testing.T) {
	cfg, _ := Preset(DefaultModel)
	a := cfg.InitParams(Span{0, 3}, 7)
	b := cfg.InitParams(Span{0, 3}, 7)
	if a.Hash() != b.Hash() {
		t.Fatal("same config and seed gave different hashes")
	}
	if cfg.InitParams(Span{0, 3}, 8).Hash() == a.Hash() {
		t.Fatal("a different seed gave the same hash")
	}
	c := cfg.InitParams(Span{3, 7}, 7)
	if maxAbsDiff(a.Get(layerName(3, "wq")), c.Get(layerName(3, "wq"))) != 0 {
		t.Fatal("layer 3 differs between spans 0-3 and 3-7")
	}
	// Initial statistics: weights ~ N(0, 0.02), norms 1.
	w := a.Get(layerName(1, "w1"))
	var sum, sq float64
	for _, x := range w {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	mean, std := sum/float64(len(w)), math.Sqrt(sq/float64(len(w)))
	if math.Abs(mean) > 1e-3 || math.Abs(std-0.02) > 1e-3 {
		t.Fatalf("w1 mean %g std %g", mean, std)
	}
	if n := a.Get(layerName(2, "attn_norm")); n[0] != 1 || n[len(n)-1] != 1 {
		t.Fatal("norm gains must start at 1")
	}
}

func TestStageRejectsBadInput(t *testing.T) {
	cfg := tinyConfig()
	first, err := NewStage(cfg, Span{0, 1}, cfg.InitParams(Span{0, 1}, 1))
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewStage(cfg, Span{2, 3}, cfg.InitParams(Span{2, 3}, 1))
	if err != nil {
		t.Fatal(err)
	}
	hash := second.Hash()
	act := func(dims ...int) *Tensor {
		n := 1
		for _, d := range dims {
			n *= d
		}
		return NewF32(make([]float32, n), dims...)
	}
	nan := act(1, 4, cfg.DModel)
	nan.F32[5] = float32(math.NaN())
	inf := act(1, 4, cfg.DModel)
	inf.F32[0] = float32(math.Inf(-1))
	for name, tc := range map[string]struct {
		st *Stage
		in *Tensor
	}{
		"tokens to a middle stage":     {second, NewI32([]int32{1, 2}, 1, 2)},
		"activation to the first":      {first, act(1, 2, cfg.DModel)},
		"wrong width":                  {second, act(1, 4, cfg.DModel+1)},
		"wrong rank":                   {second, act(4, cfg.DModel)},
		"NaN":                          {second, nan},
		"Inf":                          {second, inf},
		"token outside the vocabulary": {first, NewI32([]int32{1, int32(cfg.Vocab)}, 1, 2)},
		"negative token":               {first, NewI32([]int32{-1}, 1, 1)},
		"longer than the context":      {first, NewI32(make([]int32, cfg.Context+1), 1, cfg.Context+1)},
		"data shorter than dims":       {second, NewF32(make([]float32, 3), 1, 4, cfg.DModel)},
		"nil":                          {second, nil},
	} {
		if _, err := tc.st.Forward(tc.in); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	tokens, targets := sampleBatch(cfg, 1, 4, 1)
	if _, err := second.Backward(act(1, 4, cfg.DModel), act(1, 4, cfg.DModel)); !errors.Is(err, ErrBadInput) {
		t.Errorf("Backward on the last stage: %v", err)
	}
	if _, err := second.BackwardLoss(act(1, 4, cfg.DModel), NewI32([]int32{1, 2, 3}, 1, 3)); !errors.Is(err, ErrBadInput) {
		t.Errorf("targets of the wrong length: %v", err)
	}
	if _, err := first.Backward(tokens, nan); !errors.Is(err, ErrBadInput) {
		t.Errorf("NaN output gradient: %v", err)
	}
	if _, err := first.BackwardLoss(tokens, targets); !errors.Is(err, ErrBadInput) {
		t.Errorf("loss on a stage without the head: %v", err)
	}
	if second.Hash() != hash {
		t.Fatal("rejected input changed the stage")
	}
	bad := cfg.InitParams(Span{2, 3}, 1)
	bad.Values[0][0] = float32(math.NaN())
	if err := second.SetParams(bad); !errors.Is(err, ErrBadParams) {
		t.Fatalf("NaN parameters: %v", err)
	}
	if err := second.SetParams(cfg.InitParams(Span{1, 3}, 1)); !errors.Is(err, ErrBadParams) {
		t.Fatalf("parameters of another span: %v", err)
	}
	if _, err := NewStage(cfg, Span{3, 4}, cfg.InitParams(Span{3, 3}, 1)); !errors.Is(err, ErrInvalidSpan) {
		t.Fatalf("span outside the model: %v", err)
	}
	if second.Hash() != hash {
		t.Fatal("rejected parameters changed the stage")
	}
}
