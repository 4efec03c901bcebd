package layers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"
)

// BenchResult is this machine's throughput on one model preset and backend, in tokens per
// second, with the preset's deterministic initial weights. The node shows it in its status and
// network capacity; `neuroshard bench` prints it.
type BenchResult struct {
	Preset  string `json:"preset"`
	Backend string `json:"backend"`
	Threads int    `json:"threads"`
	// Forward: a batch of 8 sequences of 128 positions (no gradient).
	Forward float64 `json:"forward_tokens_per_s"`
	// Train: one step on 8 x 64 positions (forward, backward, AdamW).
	Train float64 `json:"train_tokens_per_s"`
	// Decode: greedy decoding of 256 tokens with the KV cache, one sequence.
	Decode float64 `json:"decode_tokens_per_s"`
	// DecodeBatch8: the same for 8 sequences at once, all their tokens counted.
	DecodeBatch8 float64 `json:"decode_batch8_tokens_per_s"`
	// Prefill: a 256-token prompt into a KV-cache session.
	Prefill float64 `json:"prefill_tokens_per_s"`
	// Short marks the quick version a node runs at first start (fewer tokens and repetitions).
	Short      bool      `json:"short,omitempty"`
	MeasuredAt time.Time `json:"measured_at"`
}

// BenchOptions tune Bench.
type BenchOptions struct {
	// Short runs each workload once, on fewer tokens: a second or two on neuroshard-small.
	Short bool
	// Progress, when set, is told each workload as it starts.
	Progress func(workload string)
	// Ctx, when set, stops the benchmark between workloads once it is done.
	Ctx context.Context
}

// Bench measures the preset on the current backend. Lengths are capped by the model's context.
func Bench(cfg Config, opts BenchOptions) (BenchResult, error) {
	res := BenchResult{Preset: cfg.Name, Backend: BackendName(), Threads: backendThreads(), Short: opts.Short}
	progress := func(w string) error {
		if opts.Ctx != nil && opts.Ctx.Err() != nil {
			return opts.Ctx.Err()
		}
		if opts.Progress != nil {
			opts.Progress(w)
		}
		return nil
	}
	span := Span{First: 0, Last: cfg.Layers - 1}
	st, err := NewStage(cfg, span, cfg.InitParams(span, 1))
	if err != nil {
		return res, err
	}
	lp := LocalPipeline{st}
	reps, steps, decodeLen := 3, 2, min(256, cfg.Context)
	if opts.Short {
		reps, steps, decodeLen = 1, 1, min(32, cfg.Context)
	}
	r := rand.New(rand.NewPCG(7, 7))
	tokens := func(b, t int) *Tensor {
		ids := make([]int32, b*t)
		for i := range ids {
			ids[i] = int32(r.IntN(256)) // bytes
		}
		return NewI32(ids, b, t)
	}

	if err := progress("forward"); err != nil {
		return res, err
	}
	seq := min(128, cfg.Context)
	x := tokens(8, seq)
	if res.Forward, err = timed(reps, 8*seq, func() error { _, err := lp.Forward(x); return err }); err != nil {
		return res, err
	}

	if err := progress("decode"); err != nil {
		return res, err
	}
	if res.Decode, err = decodeRate(lp, 1, decodeLen); err != nil {
		return res, err
	}
	if err := progress("decode batch 8"); err != nil {
		return res, err
	}
	if res.DecodeBatch8, err = decodeRate(lp, 8, decodeLen); err != nil {
		return res, err
	}

	if err := progress("prefill"); err != nil {
		return res, err
	}
	prompt := tokens(1, min(256, cfg.Context))
	if res.Prefill, err = timed(reps, prompt.Dims[1], func() error {
		pipe, err := NewPipeline(lp)
		if err != nil {
			return err
		}
		defer pipe.Close()
		_, err = pipe.StepBatch(prompt)
		return err
	}); err != nil {
		return res, err
	}
	// Training last: its first step changes the weights every later computation reads.
	if err := progress("train"); err != nil {
		return res, err
	}
	seq = min(64, cfg.Context)
	opt := []*AdamW{NewAdamW(1e-3)}
	in, tg := tokens(8, seq), tokens(8, seq)
	if res.Train, err = timed(steps, 8*seq, func() error { _, err := lp.TrainStep(opt, in, tg); return err }); err != nil {
		return res, err
	}

	res.MeasuredAt = time.Now().UTC()
	return res, nil
}

// timed runs fn once to compile and warm up, then reps times, and returns tokens per second.
func timed(reps, tokens int, fn func() error) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range reps {
		if err := fn(); err != nil {
			return 0, err
		}
	}
	return float64(reps*tokens) / time.Since(start).Seconds(), nil
}

// decodeRate greedily decodes n tokens for batch sequences at once through KV-cache sessions
// and returns the tokens per second of all of them.
func decodeRate(lp LocalPipeline, batch, n int) (float64, error) {
	pipe, err := NewPipelineBatch(lp, batch)
	if err != nil {
		return 0, err
	}
	defer pipe.Close()
	ids := make([]int32, batch)
	for i := range ids {
		ids[i] = BOS
	}
	v := lp[len(lp)-1].cfg.Vocab
	start := time.Now()
	for range n {
		logits, err := pipe.StepBatch(NewI32(ids, batch, 1))
		if err != nil {
			return 0, err
		}
		for r := range batch {
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
	return float64(batch*n) / time.Since(start).Seconds(), nil
}

// backendThreads is how many threads the backend's products use.
func backendThreads() int {
	be, err := sharedBackend()
	if err != nil {
		return runtime.GOMAXPROCS(0)
	}
	if t, ok := be.(interface{ Threads() int }); ok {
		return t.Threads()
	}
	return runtime.GOMAXPROCS(0)
}

// String is the result in one line.
func (r BenchResult) String() string {
	return fmt.Sprintf("%s on %s (%d threads): forward %.0f, train %.0f, decode %.1f, decode x8 %.1f, prefill %.0f tokens/s",
		r.Preset, r.Backend, r.Threads, r.Forward, r.Train, r.Decode, r.DecodeBatch8, r.Prefill)
}
