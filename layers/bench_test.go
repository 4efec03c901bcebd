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
	return trainRateOn(b, benchStages(b, cfg, Span{0, cfg.Layers - 1}), cfg, batch, seq, steps)
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

// engineRates measures forward (batch 8 x 128), train step (batch 8 x 64, forward, backward and
// AdamW) and greedy decode (256 tokens, batch 1, KV cache) tokens/s on a backend.
func engineRates(b *testing.B, backend string, cfg Config) (fwd, train, decode float64) {
	b.Helper()
	prev := BackendName()
	if err := SetBackend(backend); err != nil {
		b.Fatal(err)
	}
	defer SetBackend(prev)
	lp := benchStages(b, cfg, Span{0, cfg.Layers - 1})
	bt, _ := NewBatcher(benchCorpus(b).Train, 8, 128, 1)
	tok, _ := bt.Next()
	if _, err := lp.Forward(tok); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const reps = 3
	for r := 0; r < reps; r++ {
		if _, err := lp.Forward(tok); err != nil {
			b.Fatal(err)
		}
	}
	fwd = float64(reps*8*128) / time.Since(start).Seconds()
	train = trainRateOn(b, lp, cfg, 8, 64, 2)
	pipe, err := NewPipeline(lp)
	if err != nil {
		b.Fatal(err)
	}
	defer pipe.Close()
	start = time.Now()
	got, _, err := Generate(pipe, cfg.Context+1, []int32{BOS}, Sampling{Temperature: 0, TopP: 1, MaxTokens: 256}, nil)
	if err != nil {
		b.Fatal(err)
	}
	decode = float64(len(got)) / time.Since(start).Seconds()
	return fwd, train, decode
}

func trainRateOn(b *testing.B, lp LocalPipeline, cfg Config, batch, seq, steps int) float64 {
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

// BenchmarkBackendCPUVsSimpleGo: the model on the project's CPU backend against gomlx's
// pure-Go backend, side by side, on neuroshard-small.
func BenchmarkBackendCPUVsSimpleGo(b *testing.B) {
	b.ReportAllocs()
	cfg, _ := Preset(DefaultModel)
	for i := 0; i < b.N; i++ {
		cf, ct, cd := engineRates(b, BackendCPU, cfg)
		sf, st, sd := engineRates(b, BackendSimpleGo, cfg)
		b.Logf("%s: forward %.0f tok/s (simplego %.0f, x%.2f), train %.0f tok/s (%.0f, x%.2f), decode %.1f tok/s (%.1f, x%.2f)",
			cfg.Name, cf, sf, cf/sf, ct, st, ct/st, cd, sd, cd/sd)
		b.ReportMetric(cf/sf, "fwd-x")
		b.ReportMetric(ct/st, "train-x")
		b.ReportMetric(cd/sd, "decode-x")
	}
}

// decodeBatch greedily decodes n tokens for b sequences at once through one KV-cache session
// of batch b, and returns the aggregate tokens/s.
func decodeBatch(b *testing.B, lp LocalPipeline, batch, n int) float64 {
	b.Helper()
	pipe, err := NewPipelineBatch(lp, batch)
	if err != nil {
		b.Fatal(err)
	}
	defer pipe.Close()
	ids := make([]int32, batch)
	v := lp[len(lp)-1].cfg.Vocab
	start := time.Now()
	for i := 0; i < n; i++ {
		logits, err := pipe.StepBatch(NewI32(ids, batch, 1))
		if err != nil {
			b.Fatal(err)
		}
		for r := 0; r < batch; r++ {
			row := logits.F32[r*v : (r+1)*v]
			best := 0
			for j, x := range row {
				if x > row[best] {
					best = j
				}
			}
			ids[r] = int32(best)
		}
	}
	return float64(batch*n) / time.Since(start).Seconds()
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
// 256 tokens at batch 1 and 8, on neuroshard-small and -base, against the same model in
// PyTorch on the same cores, side by side; the ratio is against PyTorch's better thread count.
func BenchmarkEngineVsPyTorch(b *testing.B) {
	for _, name := range []string{"neuroshard-small", "neuroshard-base"} {
		cfg, _ := Preset(name)
		for i := 0; i < b.N; i++ {
			lp := benchStages(b, cfg, Span{0, cfg.Layers - 1})
			ours := map[string]float64{}
			bt, _ := NewBatcher(benchCorpus(b).Train, 8, 128, 1)
			tok, _ := bt.Next()
			ours["forward_tokens_per_s"] = rateOf(b, func() {
				if _, err := lp.Forward(tok); err != nil {
					b.Fatal(err)
				}
			}, 8*128)
			ours["train_tokens_per_s"] = trainRateOn(b, lp, cfg, 8, 64, 2)
			ours["decode_tokens_per_s"] = decodeBatch(b, lp, 1, 256)
			ours["decode_batch8_tokens_per_s"] = decodeBatch(b, lp, 8, 256)
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
			b.Logf("%s decode batch 8 / batch 1: %.2fx", name, ours["decode_batch8_tokens_per_s"]/ours["decode_tokens_per_s"])
		}
	}
}

// rateOf runs fn once to compile, then times 3 runs.
func rateOf(b *testing.B, fn func(), tokens int) float64 {
	fn()
	start := time.Now()
	for r := 0; r < 3; r++ {
		fn()
	}
	return float64(3*tokens) / time.Since(start).Seconds()
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
