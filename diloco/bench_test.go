package diloco

import (
	"os"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

// BenchmarkDiLoCoVsSyncDataParallel trains 2 replicas of a small model for the same number of
// inner steps (the same tokens) with DiLoCo (H = 10 with each compression, and H = 5 with
// fp16) and with synchronous data-parallel (gradients averaged every step), and reports the
// payload bytes each exchanges per inner step and the validation loss each reaches.
func BenchmarkDiLoCoVsSyncDataParallel(b *testing.B) {
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		b.Fatal(err)
	}
	corpus, _ := layers.NewCorpus(data, 0.1)
	cfg := layers.Config{Name: "bench", Vocab: layers.ByteVocab, DModel: 64, Layers: 2, Heads: 4, MLPHidden: 128, Context: 64}
	span := layers.Span{First: 0, Last: 1}
	val := layers.ValidationBatches(corpus.Val, 8, 64, 8)
	const replicas, steps = 2, 100
	h := 10
	const outerLR, outerMomentum = 0.7, 0.9 // the node's outer settings
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
	// runDiLoCo trains with DiLoCo, each pseudo-gradient and each round's aggregate sent with
	// compression c, and returns the bytes sent per inner step and the validation loss.
	runDiLoCo := func(c Compression, h int, lr, momentum float32) (float64, float64) {
		theta := cfg.InitParams(span, 1)
		bts := batchers()
		outer := NewOuter(lr, momentum)
		opts := []*layers.AdamW{layers.NewAdamW(3e-3), layers.NewAdamW(3e-3)}
		var sent int64
		wire := func(p *layers.Params, count bool) *layers.Params {
			out := &layers.Params{Specs: p.Specs, Values: make([][]float32, len(p.Values))}
			for i, v := range p.Values {
				enc, err := Compress(c, v)
				if err != nil {
					b.Fatal(err)
				}
				if count {
					sent += int64(len(enc))
				}
				if out.Values[i], err = Decompress(c, enc, len(v)); err != nil {
					b.Fatal(err)
				}
			}
			return out
		}
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
				cs = append(cs, Contribution{Peer: string(rune('a' + r)), Grad: wire(pg, true)})
			}
			res, err := DefaultAggregator().Aggregate(theta.Specs, cs)
			if err != nil {
				b.Fatal(err)
			}
			outer.Step(theta, wire(res.Grad, false))
		}
		// Pseudo-gradient payload all replicas send per inner step, against the gradients
		// synchronous replicas send every step.
		return float64(sent) / steps, loss(theta)
	}
	// DILOCO_SWEEP=1 tries other outer settings instead (how the node's were chosen).
	if sw := os.Getenv("DILOCO_SWEEP"); sw != "" {
		for _, lm := range [][2]float32{{1.0, 0.9}, {0.9, 0.8}, {0.7, 0.95}, {1.0, 0.8}, {0.5, 0.9}} {
			_, l := runDiLoCo(CompressNone, h, lm[0], lm[1])
			b.Logf("outer lr %.2f momentum %.2f: val loss %.4f", lm[0], lm[1], l)
		}
		return
	}
	for i := 0; i < b.N; i++ {
		payload := int64(cfg.InitParams(span, 1).Count() * 4)
		dilocoBytes, dilocoLoss := runDiLoCo(CompressNone, h, outerLR, outerMomentum)
		fp16Bytes, fp16Loss := runDiLoCo(CompressFP16, h, outerLR, outerMomentum)
		int8Bytes, int8Loss := runDiLoCo(CompressInt8, h, outerLR, outerMomentum)
		h5Bytes, h5Loss := runDiLoCo(CompressFP16, 5, outerLR, outerMomentum)

		// Synchronous data-parallel: average the replicas' gradients every step.
		sync := cfg.InitParams(span, 1)
		bts := batchers()
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
		perStep := float64(syncBytes) / steps
		b.ReportMetric(dilocoBytes, "diloco-B/step")
		b.ReportMetric(perStep, "sync-B/step")
		b.ReportMetric(dilocoBytes/perStep, "bytes-diloco/sync")
		b.ReportMetric(fp16Bytes/perStep, "bytes-fp16/sync")
		b.ReportMetric(int8Bytes/perStep, "bytes-int8/sync")
		b.ReportMetric(dilocoLoss, "diloco-val-loss")
		b.ReportMetric(syncLoss, "sync-val-loss")
		b.ReportMetric(dilocoLoss/syncLoss, "loss-diloco/sync")
		b.ReportMetric(fp16Loss/syncLoss, "loss-fp16/sync")
		b.ReportMetric(int8Loss/syncLoss, "loss-int8/sync")
		b.ReportMetric(h5Bytes/perStep, "bytes-h5-fp16/sync")
		b.ReportMetric(h5Loss/syncLoss, "loss-h5-fp16/sync")
	}
}
