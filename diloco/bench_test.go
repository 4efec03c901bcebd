package diloco

import (
	"os"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

// BenchmarkDiLoCoVsSyncDataParallel trains 2 replicas of a small model for the same number of
// inner steps (the same tokens) with DiLoCo (H = 10) and with synchronous data-parallel
// (gradients averaged every step), and reports the bytes each exchanges per inner step
// (payloads: float32 pseudo-gradients or gradients, per replica) and the validation loss
// each reaches.
func BenchmarkDiLoCoVsSyncDataParallel(b *testing.B) {
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		b.Fatal(err)
	}
	corpus, _ := layers.NewCorpus(data, 0.1)
	cfg := layers.Config{Name: "bench", Vocab: layers.ByteVocab, DModel: 64, Layers: 2, Heads: 4, MLPHidden: 128, Context: 64}
	span := layers.Span{First: 0, Last: 1}
	val := layers.ValidationBatches(corpus.Val, 8, 64, 8)
	const replicas, h, steps = 2, 10, 100
	batchers := func() []*layers.Batcher {
		var out []*layers.Batcher
		for r := 0; r < replicas; r++ {
			shard, _ := corpus.Shard(r, replicas)
			bt, _ := layers.NewBatcher(shard, 8, 64, uint64(r))
			out = append(out, bt)
		}
		return out
	}
	loss := func(p *layers.Params) float64 {
		st, _ := layers.NewStage(cfg, span, p)
		l, err := layers.LocalPipeline{st}.Loss(val)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	for i := 0; i < b.N; i++ {
		theta := cfg.InitParams(span, 1)
		payload := int64(theta.Count() * 4)

		// DiLoCo.
		bts := batchers()
		outer := NewOuter(0.7, 0.9)
		opts := []*layers.AdamW{layers.NewAdamW(3e-3), layers.NewAdamW(3e-3)}
		var dilocoBytes int64
		for round := 0; round < steps/h; round++ {
			var cs []Contribution
			for r := 0; r < replicas; r++ {
				st, _ := layers.NewStage(cfg, span, theta)
				for s := 0; s < h; s++ {
					tok, tg := bts[r].Next()
					if _, err := (layers.LocalPipeline{st}).TrainStep(opts[r:r+1], tok, tg); err != nil {
						b.Fatal(err)
					}
				}
				pg, _ := PseudoGradient(theta, st.Params())
				cs = append(cs, Contribution{Peer: string(rune('a' + r)), Grad: pg})
				dilocoBytes += payload
			}
			res, err := DefaultAggregator().Aggregate(theta.Specs, cs)
			if err != nil {
				b.Fatal(err)
			}
			outer.Step(theta, res.Grad)
		}
		dilocoLoss := loss(theta)

		// Synchronous data-parallel: average the replicas' gradients every step.
		sync := cfg.InitParams(span, 1)
		bts = batchers()
		opt := layers.NewAdamW(3e-3)
		var syncBytes int64
		for s := 0; s < steps; s++ {
			st, _ := layers.NewStage(cfg, span, sync)
			var gs []Contribution
			for r := 0; r < replicas; r++ {
				tok, tg := bts[r].Next()
				g, _, err := (layers.LocalPipeline{st}).Gradients(tok, tg)
				if err != nil {
					b.Fatal(err)
				}
				gs = append(gs, Contribution{Peer: string(rune('a' + r)), Grad: g[0]})
				syncBytes += payload
			}
			avg, err := Aggregator{Method: Mean}.Aggregate(sync.Specs, gs)
			if err != nil {
				b.Fatal(err)
			}
			if err := opt.Step(sync, avg.Grad); err != nil {
				b.Fatal(err)
			}
		}
		syncLoss := loss(sync)
		b.ReportMetric(float64(dilocoBytes)/steps, "diloco-B/step")
		b.ReportMetric(float64(syncBytes)/steps, "sync-B/step")
		b.ReportMetric(float64(dilocoBytes)/float64(syncBytes), "bytes-diloco/sync")
		b.ReportMetric(dilocoLoss, "diloco-val-loss")
		b.ReportMetric(syncLoss, "sync-val-loss")
		b.ReportMetric(dilocoLoss/syncLoss, "loss-diloco/sync")
	}
}
