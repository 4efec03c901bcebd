package layers

import (
	"os"
	"testing"
	"time"
)

func benchStages(b *testing.B, cfg Config, spans ...Span) LocalPipeline {
	b.Helper()
	var lp LocalPipeline
	for _, sp := range spans {
		st, err := NewStage(cfg, sp, cfg.InitParams(sp, 1))
		if err != nil {
			b.Fatal(err)
		}
		lp = append(lp, st)
	}
	return lp
}

func benchCorpus(b *testing.B) *Corpus {
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewCorpus(data, 0.1)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// trainRate returns training tokens per second over steps (after one step that compiles).
func trainRate(b *testing.B, fast bool, cfg Config, batch, seq, steps int) float64 {
	prev := SetFastMatmulGradient(fast)
	defer SetFastMatmulGradient(prev)
	lp := benchStages(b, cfg, Span{0, cfg.Layers - 1})
	opts := []*AdamW{NewAdamW(1e-3)}
	bt, _ := NewBatcher(benchCorpus(b).Train, batch, seq, 1)
	tok, tg := bt.Next()
	if _, err := lp.TrainStep(opts, tok, tg); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		tok, tg := bt.Next()
		if _, err := lp.TrainStep(opts, tok, tg); err != nil {
			b.Fatal(err)
		}
	}
	return float64(steps*batch*seq) / time.Since(start).Seconds()
}

// BenchmarkTrainFastVsStockGradient: training tokens/s of the small model (batch 8, seq 64)
// with the project's matmul gradient against gomlx's stock one.
func BenchmarkTrainFastVsStockGradient(b *testing.B) {
	b.ReportAllocs()
	cfg, _ := Preset(DefaultModel)
	for i := 0; i < b.N; i++ {
		fast := trainRate(b, true, cfg, 8, 64, 4)
		stock := trainRate(b, false, cfg, 8, 64, 2)
		b.ReportMetric(fast, "fast-train-tok/s")
		b.ReportMetric(stock, "stock-train-tok/s")
		b.ReportMetric(fast/stock, "fast/stock")
	}
}

// BenchmarkGenerateKVCacheVsRecompute: greedy generation of 256 tokens with the KV cache
// against recomputing the whole prefix for every token.
func BenchmarkGenerateKVCacheVsRecompute(b *testing.B) {
	b.ReportAllocs()
	cfg, _ := Preset(DefaultModel)
	lp := benchStages(b, cfg, Span{0, cfg.Layers - 1})
	s := Sampling{Temperature: 0, TopP: 1, MaxTokens: 256}
	prompt := []int32{BOS}
	for i := 0; i < b.N; i++ {
		pipe, err := NewPipeline(lp)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		got, _, err := Generate(pipe, cfg.Context+1, prompt, s, nil)
		cached := float64(len(got)) / time.Since(start).Seconds()
		pipe.Close()
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		again, _, err := Generate(&recompute{stages: lp}, cfg.Context+1, prompt, s, nil)
		if err != nil {
			b.Fatal(err)
		}
		full := float64(len(again)) / time.Since(start).Seconds()
		b.ReportMetric(cached, "kv-cache-tok/s")
		b.ReportMetric(full, "recompute-tok/s")
		b.ReportMetric(cached/full, "cache/recompute")
	}
}

// BenchmarkForwardWholeVsThirds: forward tokens/s of one stage holding the model against three
// stages of a third each, chained in one process (batch 8, seq 128).
func BenchmarkForwardWholeVsThirds(b *testing.B) {
	b.ReportAllocs()
	cfg, _ := Preset(DefaultModel)
	whole := benchStages(b, cfg, Span{0, cfg.Layers - 1})
	thirds := benchStages(b, cfg, splitSpans(cfg.Layers, 3)...)
	bt, _ := NewBatcher(benchCorpus(b).Train, 8, 128, 1)
	tok, _ := bt.Next()
	rate := func(lp LocalPipeline) float64 {
		if _, err := lp.Forward(tok); err != nil { // compile
			b.Fatal(err)
		}
		const reps = 5
		start := time.Now()
		for r := 0; r < reps; r++ {
			if _, err := lp.Forward(tok); err != nil {
				b.Fatal(err)
			}
		}
		return float64(reps*8*128) / time.Since(start).Seconds()
	}
	for i := 0; i < b.N; i++ {
		w, t := rate(whole), rate(thirds)
		b.ReportMetric(w, "whole-fwd-tok/s")
		b.ReportMetric(t, "thirds-fwd-tok/s")
		b.ReportMetric(t/w, "thirds/whole")
	}
}
