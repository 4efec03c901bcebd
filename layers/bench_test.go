package layers

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
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
	bt, _ := NewBatcher(benchCorpus(b).Train, batch, seq, 1)
	opts := []*AdamW{NewAdamW(1e-3)}
	tok, tg := bt.Next()
	rate, err := timed(steps, batch*seq, func() error { _, err := lp.TrainStep(opts, tok, tg); return err })
	if err != nil {
		b.Fatal(err)
	}
	return rate
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

// benchOn runs Bench on a backend.
func benchOn(b *testing.B, backend string, cfg Config) BenchResult {
	b.Helper()
	prev := BackendName()
	if err := SetBackend(backend); err != nil {
		b.Fatal(err)
	}
	defer SetBackend(prev)
	r, err := Bench(cfg, BenchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkBackendCPUVsSimpleGo: the model on the project's CPU backend against gomlx's
// pure-Go backend, side by side, on neuroshard-small.
func BenchmarkBackendCPUVsSimpleGo(b *testing.B) {
	b.ReportAllocs()
	cfg, _ := Preset(DefaultModel)
	for i := 0; i < b.N; i++ {
		c, s := benchOn(b, BackendCPU, cfg), benchOn(b, BackendSimpleGo, cfg)
		b.Logf("%s: forward %.0f tok/s (simplego %.0f, x%.2f), train %.0f tok/s (%.0f, x%.2f), decode %.1f tok/s (%.1f, x%.2f)",
			cfg.Name, c.Forward, s.Forward, c.Forward/s.Forward, c.Train, s.Train, c.Train/s.Train, c.Decode, s.Decode, c.Decode/s.Decode)
		b.ReportMetric(c.Forward/s.Forward, "fwd-x")
		b.ReportMetric(c.Train/s.Train, "train-x")
		b.ReportMetric(c.Decode/s.Decode, "decode-x")
	}
}

// torchRates runs testdata/torch_bench.py on the same model shapes at 1 thread and at every
// core; nil when PyTorch is not installed.
func torchRates(b *testing.B, cfg Config) map[string]map[string]float64 {
	args := []string{"testdata/torch_bench.py"}
	for _, x := range []int{cfg.Vocab, cfg.DModel, cfg.Layers, cfg.Heads, cfg.MLPHidden, cfg.Context, 1, runtime.GOMAXPROCS(0)} {
		args = append(args, fmt.Sprint(x))
	}
	out, err := exec.Command(python(), args...).Output()
	if err != nil {
		b.Logf("no PyTorch baseline (python3-torch): %v", err)
		return nil
	}
	res := map[string]map[string]float64{}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Logf("PyTorch baseline: %v", err)
		return nil
	}
	return res
}

// BenchmarkEngineVsPyTorch: forward (8 x 128), train step (8 x 64, AdamW), greedy decode of
// 256 tokens at batch 1 and 8 (Bench's workloads), on neuroshard-small and -base, against the
// same model in PyTorch on the same cores, side by side; the ratio is against PyTorch's better
// thread count.
func BenchmarkEngineVsPyTorch(b *testing.B) {
	for _, name := range []string{"neuroshard-small", "neuroshard-base"} {
		cfg, _ := Preset(name)
		for i := 0; i < b.N; i++ {
			r, err := Bench(cfg, BenchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			ours := map[string]float64{"forward_tokens_per_s": r.Forward, "train_tokens_per_s": r.Train,
				"decode_tokens_per_s": r.Decode, "decode_batch8_tokens_per_s": r.DecodeBatch8}
			ref := torchRates(b, cfg)
			for _, k := range []string{"forward_tokens_per_s", "train_tokens_per_s", "decode_tokens_per_s", "decode_batch8_tokens_per_s"} {
				best := 0.0
				for _, th := range ref {
					best = max(best, th[k])
				}
				ratio := 0.0
				if best > 0 {
					ratio = ours[k] / best
				}
				b.Logf("%s %-28s %9.1f  pytorch %9.1f  ratio %.3f", name, k, ours[k], best, ratio)
			}
			b.Logf("%s prefill of 256 tokens: %.0f tok/s; decode batch 8 / batch 1: %.2fx", name, r.Prefill, r.DecodeBatch8/r.Decode)
		}
	}
}

// python is the interpreter the baselines run on: $NEUROSHARD_PYTHON, else Debian's (where
// python3-numpy and python3-torch install), else python3 on the PATH.
func python() string {
	if p := os.Getenv("NEUROSHARD_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}
