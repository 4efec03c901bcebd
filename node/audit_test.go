package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// skewedSession runs the stage honestly, then rewrites its answer (a stage that steers the
// text it returns), while naming the honest weights version.
type skewedSession struct {
	inner p2p.ForwardSession
	token int
}

func (s skewedSession) Step(in *p2p.Tensor) (*p2p.Tensor, error) {
	out, err := s.inner.Step(in)
	if err != nil {
		return nil, err
	}
	v := out.Dims[2]
	for i := s.token; i < len(out.F32); i += v {
		out.F32[i] += 50 // its token wins every position
	}
	return out, nil
}
func (s skewedSession) Close() { s.inner.Close() }
func (s skewedSession) WeightsHash() string {
	return s.inner.(p2p.Versioned).WeightsHash()
}

// auditNetwork starts the tail holder the others join through (third), a requester of layers
// 0-3, an honest tail holder and a liar whose sessions lie as lie makes them; tune configures
// each (requester tells which). It returns once the requester sees every tail holder.
func auditNetwork(t *testing.T, tune func(c *Config, requester bool), lie func(*Node) p2p.ForwardHandler) (req, honest, liar, third *Node) {
	t.Helper()
	third = startNode(t, func() Config { c := testConfig(t); c.Layers = "4-7"; return c }())
	mk := func(span string) *Node {
		c := testConfig(t)
		c.Layers, c.Bootstrap = span, third.Multiaddrs()
		tune(&c, span == "0-3")
		return startNode(t, c)
	}
	req, honest, liar = mk("0-3"), mk("4-7"), mk("4-7")
	eventually(t, 15*time.Second, "every holder in the requester's coverage", func() bool {
		return len(req.api.Coverage(context.Background()).Layers[7].Providers) == 3
	})
	liar.host.ServeForward(lie(liar))
	return req, honest, liar, third
}

// steered is a lie: the stage computes honestly, then the token "P" wins every position.
func steered(liar *Node) p2p.ForwardHandler {
	return func(from peer.ID, r p2p.ForwardOpen) (p2p.ForwardSession, error) {
		inner, err := liar.pipe.ServeForward(from, r)
		if err != nil {
			return nil, err
		}
		return skewedSession{inner: inner, token: int(layers.Encode("P")[1])}, nil
	}
}

// convictByAudit has the requester generate through the liar (a route it chose), checks that
// the answer is not the honest one (else the test would check nothing), and audits the
// liar's work, which recomputes it elsewhere: the liar is convicted with a proof. It returns
// the honest answer.
func convictByAudit(t *testing.T, req, liar, third *Node, prompt []int32, s layers.Sampling) []int32 {
	t.Helper()
	want := localGeneration(t, req, third, prompt, s)
	r, err := routeThrough(req, liar.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := layers.Generate(r, req.model.Context, prompt, s, nil)
	if err != nil || slices.Equal(got, want) {
		t.Fatalf("the lying stage's answer is the honest one (%q, %v): the test checks nothing", layers.Decode(got), err)
	}
	cases := req.pipe.AuditCases(r)
	r.Close()
	if len(cases) != 1 {
		t.Fatalf("%d audit cases at rate 1, want the liar's", len(cases))
	}
	if res := req.pipe.Audit(context.Background(), cases[0]); res.Verdict != pipeline.VerdictConvicted || res.Proof == nil {
		t.Fatalf("audit of the liar: %+v", res)
	}
	return want
}

// fullAudits turns full audits on for the requester.
func fullAudits(c *Config, requester bool) { c.AuditFull = requester }

// A stage that answers well-formed lies under the honest version is caught by the audits of a
// requester (recomputing on another holder, a third deciding), excluded from its routes at
// once, shown as excluded in /api/v1/peers, and the requester's answers are the honest ones
// from then on; the honest holders pass their audits.
func TestLyingStageIsConvictedByAuditAndExcluded(t *testing.T) {
	ctx := context.Background()
	req, honest, liar, third := auditNetwork(t, func(c *Config, _ bool) { c.AuditRate = 1 }, steered)
	prompt, s := layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 10}
	want := convictByAudit(t, req, liar, third, prompt, s)
	ex := req.pipe.Excluded()
	if _, ok := ex[liar.host.ID()]; !ok || len(ex) != 1 {
		t.Fatalf("excluded %v; want the liar alone", ex)
	}
	// The proof it gossiped convicts the liar on the holders that never routed through it.
	eventually(t, 20*time.Second, "the other holders to exclude the liar on the fraud proof", func() bool {
		_, a := honest.pipe.Excluded()[liar.host.ID()]
		_, b := third.pipe.Excluded()[liar.host.ID()]
		return a && b
	})
	var honestCase pipeline.AuditCase
	for range 4 { // routes avoid the liar now: every answer is the honest one, and passes its audit
		r, err := req.pipe.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := layers.Generate(r, req.model.Context, prompt, s, nil)
		for _, c := range req.pipe.AuditCases(r) {
			if res := req.pipe.Audit(ctx, c); res.Verdict != pipeline.VerdictPassed {
				t.Fatalf("an honest stage's audit: %+v", res)
			}
			honestCase = c
		}
		r.Close()
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("after the exclusion: %q %v, want %q", layers.Decode(got), err, layers.Decode(want))
		}
	}
	peers, err := apiClient(req).Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shown := false
	for _, p := range peers.Peers {
		if p.ID == liar.host.ID().String() && p.Excluded != "" {
			shown = true
		}
		if p.ID == honest.host.ID().String() && p.Excluded != "" {
			t.Fatalf("the honest holder is excluded: %s", p.Excluded)
		}
	}
	if !shown {
		t.Fatalf("/api/v1/peers does not show the liar excluded: %+v", peers)
	}
	t.Logf("liar excluded: %s; audits passed %v", ex[liar.host.ID()].Reason, req.pipe.AuditsPassed())

	// A fraud proof of right answers (an honest stage's own signed session) convicts its
	// sender on the holders that check it, not the stage.
	fp := &pipeline.FraudProof{Accused: honestCase.Peer, Receipt: honestCase.Receipts[len(honestCase.Receipts)-1], In: honestCase.In, Out: honestCase.Out}
	for _, r := range honestCase.Receipts {
		fp.Steps = append(fp.Steps, r.Positions)
	}
	if err := req.pipe.CheckProof(fp); err != nil {
		t.Fatalf("an honest stage's receipts as a proof: %v", err)
	}
	if err := req.pipe.PublishProof(ctx, fp); err != nil {
		t.Fatal(err)
	}
	checker := third
	if honestCase.Peer == third.host.ID() {
		checker = honest
	}
	eventually(t, 20*time.Second, "the false accuser excluded", func() bool {
		_, ok := checker.pipe.Excluded()[req.host.ID()]
		return ok
	})
	if _, ok := checker.pipe.Excluded()[honestCase.Peer]; ok {
		t.Fatal("a false fraud proof excluded the honest stage")
	}
}

// With full audits a requester takes no token from a stage that a witness did not agree with:
// the lying stage's first step is caught before its answer is used, the liar is excluded and
// failed over, and the generation is exactly the honest one.
func TestFullAuditsLetNoWrongAnswerThrough(t *testing.T) {
	t.Parallel()
	// A stage that runs weights of another version (here: another seed's) while naming the
	// version its peers run.
	stale := func(liar *Node) p2p.ForwardHandler {
		span := layers.Span{First: 4, Last: 7}
		old, err := layers.NewStage(liar.model, span, liar.model.InitParams(span, 7))
		if err != nil {
			t.Fatal(err)
		}
		return func(from peer.ID, r p2p.ForwardOpen) (p2p.ForwardSession, error) {
			sess, err := old.NewSession(r.Batch)
			if err != nil {
				return nil, err
			}
			return staleSession{sess: sess, named: liar.ServedHash()}, nil
		}
	}
	for name, lie := range map[string]func(*Node) p2p.ForwardHandler{"steered logits": steered, "a stale version": stale} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fullAuditAgainst(t, lie)
		})
	}
}

// staleSession runs a stage of other weights and names another version.
type staleSession struct {
	sess  *layers.Session
	named string
}

func (s staleSession) Step(in *p2p.Tensor) (*p2p.Tensor, error) {
	out, err := s.sess.Step(pipeline.FromWire(in))
	if err != nil {
		return nil, err
	}
	return pipeline.ToWire(out), nil
}
func (s staleSession) Close()              { s.sess.Close() }
func (s staleSession) WeightsHash() string { return s.named }

func fullAuditAgainst(t *testing.T, lie func(*Node) p2p.ForwardHandler) {
	req, _, liar, third := auditNetwork(t, fullAudits, lie)
	prompt, s := layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 10}
	want := localGeneration(t, req, third, prompt, s)
	r, err := routeThrough(req, liar.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := layers.Generate(r, req.model.Context, prompt, s, nil)
	hops := r.Hops()
	r.Close()
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("through the liar under full audits: %q %v, want %q", layers.Decode(got), err, layers.Decode(want))
	}
	if hops[1].Peer == liar.host.ID() {
		t.Fatal("the liar still ran the tail at the end")
	}
	if _, ok := req.pipe.Excluded()[liar.host.ID()]; !ok {
		t.Fatalf("the liar is not excluded: %v", req.pipe.Excluded())
	}
	if cases := req.pipe.AuditCases(r); len(cases) != 0 {
		t.Fatalf("%d sampled audits after a fully audited generation", len(cases))
	}
}

// localGeneration is the generation of the whole model on one node's head and another's tail,
// in this process: the honest answer.
func localGeneration(t *testing.T, headNode, tailNode *Node, prompt []int32, s layers.Sampling) []int32 {
	t.Helper()
	head, err := layers.NewStage(headNode.model, layers.Span{First: 0, Last: 3}, headNode.Stage().Params())
	if err != nil {
		t.Fatal(err)
	}
	tail, err := layers.NewStage(tailNode.model, layers.Span{First: 4, Last: 7}, tailNode.Stage().Params())
	if err != nil {
		t.Fatal(err)
	}
	pipe, _ := layers.NewPipeline([]*layers.Stage{head, tail})
	defer pipe.Close()
	want, _, err := layers.Generate(pipe, tailNode.model.Context, prompt, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// Under full audits a witness that lies is caught too: the stage's answer stands (an auditor
// agrees with it), the witness is excluded, and its own signed answers, gossiped as a fraud
// proof, exclude it on a holder that never used it. The route runs the tail on an honest
// holder; the witness is whichever other holder is picked, so a few generations meet the liar.
func TestFullAuditsConvictALyingWitness(t *testing.T) {
	t.Parallel()
	req, honest, liar, third := auditNetwork(t, fullAudits, steered)
	prompt, s := layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 6}
	want := localGeneration(t, req, third, prompt, s)
	for i := 0; ; i++ {
		if _, ok := req.pipe.Excluded()[liar.host.ID()]; ok {
			break
		}
		if i == 16 {
			t.Fatal("16 generations and the lying witness was never caught")
		}
		got, _, err := generateWith(req, honest.host.ID(), prompt, s)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("generation %d: %q %v, want %q", i, layers.Decode(got), err, layers.Decode(want))
		}
	}
	if _, ok := req.pipe.Excluded()[honest.host.ID()]; ok {
		t.Fatal("the honest stage is excluded")
	}
	eventually(t, 20*time.Second, "the holder that never used the liar to exclude it on the proof", func() bool {
		_, ok := third.pipe.Excluded()[liar.host.ID()]
		return ok
	})
}
