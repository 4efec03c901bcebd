package diloco

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

// benchRun is one way of training the bench's replicas.
type benchRun struct {
	comp          Compression
	h             int
	lr, momentum  float32 // outer step
	bytesPerStep  float64 // pseudo-gradient payload all replicas send per inner step
	loss          float64 // validation loss at the end
	lossesBySteps []string
}

// benchSetup is the model, data and schedule every run of the bench shares.
type benchSetup struct {
	b        *testing.B
	cfg      layers.Config
	span     layers.Span
	corpus   *layers.Corpus
	val      [][2]*layers.Tensor
	replicas int
	steps    int
	innerLR  float64
}

func newBenchSetup(b *testing.B) *benchSetup {
	data, err := os.ReadFile("../testdata/tinyshakespeare.txt")
	if err != nil {
		b.Fatal(err)
	}
	corpus, err := layers.NewCorpus(data, 0.1)
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSetup{b: b, corpus: corpus, replicas: 2, steps: 100, innerLR: 3e-3,
		cfg:  layers.Config{Name: "bench", Vocab: layers.ByteVocab, DModel: 64, Layers: 2, Heads: 4, MLPHidden: 128, Context: 64},
		span: layers.Span{First: 0, Last: 1}}
	// DILOCO_BENCH_STEPS=300 trains longer (about three times the time).
	if v := os.Getenv("DILOCO_BENCH_STEPS"); v != "" {
		if s.steps, err = strconv.Atoi(v); err != nil || s.steps < 20 {
			b.Fatalf("DILOCO_BENCH_STEPS=%q: want an integer of at least 20", v)
		}
	}
	s.val = layers.ValidationBatches(corpus.Val, 8, 64, 8)
	return s
}

// batchers gives each replica its own shard of the corpus, the same for every run.
func (s *benchSetup) batchers() []*layers.Batcher {
	var out []*layers.Batcher
	for r := 0; r < s.replicas; r++ {
		shard, err := s.corpus.Shard(r, s.replicas)
		if err != nil {
			s.b.Fatal(err)
		}
		bt, err := layers.NewBatcher(shard, 8, 64, uint64(r))
		if err != nil {
			s.b.Fatal(err)
		}
		out = append(out, bt)
	}
	return out
}

func (s *benchSetup) stage(p *layers.Params) *layers.Stage {
	st, err := layers.NewStage(s.cfg, s.span, p)
	if err != nil {
		s.b.Fatal(err)
	}
	return st
}

func (s *benchSetup) loss(st *layers.Stage) float64 {
	l, err := layers.LocalPipeline{st}.Loss(s.val)
	if err != nil {
		s.b.Fatal(err)
	}
	return l
}

// diloco trains with DiLoCo, each pseudo-gradient and each round's aggregate sent with the
// run's compression, and fills in the bytes sent per inner step and the validation loss.
func (s *benchSetup) diloco(run *benchRun) {
	theta := s.cfg.InitParams(s.span, 1)
	bts := s.batchers()
	outer := NewOuter(run.lr, run.momentum)
	var opts []*layers.AdamW
	var sts []*layers.Stage
	for r := 0; r < s.replicas; r++ {
		opts = append(opts, layers.NewAdamW(s.innerLR))
		sts = append(sts, s.stage(theta))
	}
	eval := s.stage(theta)
	var sent int64
	wire := func(p *layers.Params, count bool) *layers.Params {
		out := &layers.Params{Specs: p.Specs, Values: make([][]float32, len(p.Values))}
		for i, v := range p.Values {
			enc, err := Compress(run.comp, v)
			if err != nil {
				s.b.Fatal(err)
			}
			if count {
				sent += int64(len(enc))
			}
			if out.Values[i], err = Decompress(run.comp, enc, len(v)); err != nil {
				s.b.Fatal(err)
			}
		}
		return out
	}
	for round := 0; round < s.steps/run.h; round++ {
		var cs []Contribution
		for r, st := range sts {
			if err := st.SetParams(theta); err != nil {
				s.b.Fatal(err)
			}
			for i := 0; i < run.h; i++ {
				tok, tg := bts[r].Next()
				if _, err := (layers.LocalPipeline{st}).TrainStep(opts[r:r+1], tok, tg); err != nil {
					s.b.Fatal(err)
				}
			}
			pg, err := PseudoGradient(theta, st.Params())
			if err != nil {
				s.b.Fatal(err)
			}
			cs = append(cs, Contribution{Peer: fmt.Sprint(r), Grad: wire(pg, true)})
		}
		res, err := DefaultAggregator().Aggregate(theta.Specs, cs)
		if err != nil {
			s.b.Fatal(err)
		}
		if err := outer.Step(theta, wire(res.Grad, false)); err != nil {
			s.b.Fatal(err)
		}
	}
	if err := eval.SetParams(theta); err != nil {
		s.b.Fatal(err)
	}
	run.bytesPerStep, run.loss = float64(sent)/float64(s.steps), s.loss(eval)
}

// syncDP trains with synchronous data-parallel: the replicas' float32 gradients are averaged
// every step and one AdamW step is taken from the mean.
func (s *benchSetup) syncDP() (bytesPerStep, loss float64) {
	st := s.stage(s.cfg.InitParams(s.span, 1))
	bts := s.batchers()
	opt := layers.NewAdamW(s.innerLR)
	payload := int64(st.Params().Count() * 4)
	var sent int64
	for i := 0; i < s.steps; i++ {
		var gs []Contribution
		for r := range bts {
			tok, tg := bts[r].Next()
			g, _, err := (layers.LocalPipeline{st}).Gradients(tok, tg)
			if err != nil {
				s.b.Fatal(err)
			}
			gs = append(gs, Contribution{Peer: fmt.Sprint(r), Grad: g[0]})
			sent += payload
		}
		avg, err := Aggregator{Method: Mean}.Aggregate(st.Params().Specs, gs)
		if err != nil {
			s.b.Fatal(err)
		}
		if err := st.Step(opt, avg.Grad); err != nil {
			s.b.Fatal(err)
		}
	}
	return float64(sent) / float64(s.steps), s.loss(st)
}

// BenchmarkDiLoCoVsSyncDataParallel trains 2 replicas of a small model for the same number of
// inner steps (the same tokens) with DiLoCo and with synchronous data-parallel (gradients
// averaged every step), and reports the payload bytes each exchanges per inner step and the
// validation loss each reaches. DiLoCo runs with the paper's outer step (lr 0.7, Nesterov
// momentum 0.9) under each compression, and with plain averaging (lr 1, momentum 0), the
// outer step that suits rounds as short as these, at H = 10 and H = 5.
func BenchmarkDiLoCoVsSyncDataParallel(b *testing.B) {
	b.ReportAllocs()
	s := newBenchSetup(b)
	for i := 0; i < b.N; i++ {
		runs := []*benchRun{
			{comp: CompressNone, h: 10, lr: DefaultOuterLR, momentum: DefaultOuterMomentum},
			{comp: CompressFP16, h: 10, lr: DefaultOuterLR, momentum: DefaultOuterMomentum},
			{comp: CompressInt8, h: 10, lr: DefaultOuterLR, momentum: DefaultOuterMomentum},
			{comp: CompressFP16, h: 10, lr: 1, momentum: 0},
			{comp: CompressFP16, h: 5, lr: 1, momentum: 0},
		}
		for _, r := range runs {
			s.diloco(r)
		}
		syncBytes, syncLoss := s.syncDP()
		b.ReportMetric(syncBytes, "sync-B/step")
		b.ReportMetric(syncLoss, "sync-val-loss")
		for _, r := range runs {
			name := fmt.Sprintf("h%d-%s-outer%.1f/%.1f", r.h, r.comp, r.lr, r.momentum)
			b.ReportMetric(r.bytesPerStep/syncBytes, name+"-bytes/sync")
			b.ReportMetric(r.loss, name+"-val-loss")
			b.ReportMetric(r.loss/syncLoss, name+"-loss/sync")
		}
	}
}
