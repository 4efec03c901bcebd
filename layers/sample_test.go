package layers

import (
	"errors"
	"math"
	"testing"
)

func TestSamplingValidate(t *testing.T) {
	if err := DefaultSampling().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Sampling{
		"temperature above 2":  {Temperature: 2.5, TopP: 1, MaxTokens: 1},
		"negative temperature": {Temperature: -1, TopP: 1, MaxTokens: 1},
		"NaN temperature":      {Temperature: math.NaN(), TopP: 1, MaxTokens: 1},
		"top_p 0":              {TopP: 0, MaxTokens: 1},
		"top_k negative":       {TopP: 1, TopK: -1, MaxTokens: 1},
		"max_tokens 0":         {TopP: 1, MaxTokens: 0},
		"empty stop":           {TopP: 1, MaxTokens: 1, Stop: []string{""}},
	} {
		if err := s.Validate(); !errors.Is(err, ErrBadSampling) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSamplerGreedyTopKTopP(t *testing.T) {
	logits := make([]float32, ByteVocab)
	logits['a'], logits['b'], logits['c'] = 5, 4, 3
	logits[BOS] = 100 // never drawn
	g, _ := NewSampler(Sampling{Temperature: 0, TopP: 1, MaxTokens: 1})
	if got := g.Next(logits); got != 'a' {
		t.Fatalf("greedy picked %d", got)
	}
	k1, _ := NewSampler(Sampling{Temperature: 1, TopK: 1, TopP: 1, MaxTokens: 1, Seed: 3})
	p, _ := NewSampler(Sampling{Temperature: 1, TopK: 3, TopP: 0.5, MaxTokens: 1, Seed: 3})
	counts := map[int32]int{}
	for i := 0; i < 2000; i++ {
		if k1.Next(logits) != 'a' {
			t.Fatal("top_k 1 drew another token")
		}
		if got := p.Next(logits); got != 'a' {
			t.Fatalf("top_k 3, top_p 0.5 drew %d (p(a) is about 0.66 among the top 3)", got)
		}
		all, _ := NewSampler(Sampling{Temperature: 1, TopK: 3, TopP: 1, MaxTokens: 1, Seed: uint64(i)})
		counts[all.Next(logits)]++
	}
	// With top_k 3: p(a) = e^2/(e^2+e+1) ≈ 0.665.
	if pa := float64(counts['a']) / 2000; math.Abs(pa-0.665) > 0.05 || counts['a']+counts['b']+counts['c'] != 2000 {
		t.Fatalf("top-3 sampling frequencies %v", counts)
	}
	x, _ := NewSampler(Sampling{Temperature: 0.8, TopP: 1, MaxTokens: 1, Seed: 9})
	y, _ := NewSampler(Sampling{Temperature: 0.8, TopP: 1, MaxTokens: 1, Seed: 9})
	for i := 0; i < 100; i++ {
		if x.Next(logits) != y.Next(logits) {
			t.Fatal("the same seed drew different tokens")
		}
	}
}

func TestTokenizerAndStops(t *testing.T) {
	ids := Encode("héllo")
	if ids[0] != BOS || len(ids) != 1+len("héllo") || Decode(ids) != "héllo" {
		t.Fatalf("round trip: %v", ids)
	}
	if s, ok := (Sampling{Stop: []string{"\n\n", "END"}}).StopAt("hello END"); !ok || s != "hello " {
		t.Fatalf("stop: %q %v", s, ok)
	}
	e := []byte("aé") // é is 2 bytes
	if CompletePrefix(e[:2]) != 1 || CompletePrefix(e) != 3 || CompletePrefix([]byte{0xff}) != 1 {
		t.Fatalf("complete prefix: %d %d", CompletePrefix(e[:2]), CompletePrefix(e))
	}
}

func TestAdamWStepIsTheSameSplitOrWhole(t *testing.T) {
	cfg := tinyConfig()
	tokens, targets := sampleBatch(cfg, 2, 12, 5)
	whole, _ := NewStage(cfg, Span{0, 3}, cfg.InitParams(Span{0, 3}, 1))
	a, _ := NewStage(cfg, Span{0, 1}, cfg.InitParams(Span{0, 1}, 1))
	b, _ := NewStage(cfg, Span{2, 3}, cfg.InitParams(Span{2, 3}, 1))
	gw, err := whole.BackwardLoss(tokens, targets)
	if err != nil {
		t.Fatal(err)
	}
	act, _ := a.Forward(tokens)
	gb, _ := b.BackwardLoss(act, targets)
	ga, _ := a.Backward(tokens, gb.Input)
	ow, oa, ob := NewAdamW(1e-3), NewAdamW(1e-3), NewAdamW(1e-3)
	if err := whole.Step(ow, gw.Params); err != nil {
		t.Fatal(err)
	}
	a.Step(oa, ga.Params)
	b.Step(ob, gb.Params)
	wp := whole.Params()
	for _, part := range []*Params{a.Params(), b.Params()} {
		for i, spec := range part.Specs {
			if d := maxAbsDiff(part.Values[i], wp.Get(spec.Name)); d != 0 {
				t.Fatalf("%s differs by %g after the AdamW step", spec.Name, d)
			}
		}
	}
	if wp.Hash() == cfg.InitParams(Span{0, 3}, 1).Hash() {
		t.Fatal("the step changed nothing")
	}
	// A step with a NaN gradient is refused and changes nothing.
	before := whole.Hash()
	bad := gw.Params.Clone()
	bad.Values[1][0] = float32(math.NaN())
	if err := whole.Step(ow, bad); !errors.Is(err, ErrBadParams) || whole.Hash() != before {
		t.Fatalf("NaN gradient: %v", err)
	}
}
