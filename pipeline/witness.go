package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"golang.org/x/sync/errgroup"
)

// Full audits. With full audits on, every step of a remote stage also runs on a witness: this
// node when it holds the span at the stage's version, else another holder naming that
// version. The two answers are compared bit for bit before the step's output is used, so no
// token comes from an answer two holders did not agree on. On a disagreement the case so far
// is audited (a third computation decides, two against one): a convicted stage is excluded,
// its fraud proof gossiped, and the stage failed over; a convicted witness is excluded and
// replaced, and the stage's answer stands.

// ErrNoWitness is returned under full audits when no second holder of a stage's span at its
// version can check it.
var ErrNoWitness = errors.New("pipeline: no second holder to check the stage against")

// ErrDisagreement marks a stage failed over because a witness disagreed with it.
var ErrDisagreement = errors.New("pipeline: the stage and its witness disagree")

// witness is the second computation of a hop's steps.
type witness struct {
	peer   peer.ID
	local  *layers.Session
	remote *p2p.ForwardClient
}

func (w *witness) step(ctx context.Context, p *Pipeline, x *layers.Tensor) (*layers.Tensor, error) {
	if w.local != nil {
		return w.local.Step(x)
	}
	ctx, cancel := context.WithTimeout(ctx, p.speed.timeout(w.peer, x.Dims[0]*x.Dims[1]))
	defer cancel()
	out, err := w.remote.Step(ctx, ToWire(x))
	if err != nil {
		return nil, err
	}
	return FromWire(out), nil
}

func (w *witness) close(p *Pipeline) {
	if w.local != nil {
		w.local.Close()
	}
	if w.remote != nil {
		w.remote.Close()
		p.using.add(w.peer, -1, 0)
	}
}

// openVerifier opens a session on span at version weights with the first verifier it can:
// this node when it holds the span at that version, else a holder that names that version;
// never one in tried, to which it adds each one it tries. Audits and full audits both use it.
func (p *Pipeline) openVerifier(ctx context.Context, span layers.Span, weights string, tried map[peer.ID]bool) (*witness, error) {
	self := p.host.ID()
	if !tried[self] {
		tried[self] = true
		if held := p.localSpan(); p.local() != nil && held.First <= span.First && span.Last <= held.Last {
			if st, err := p.stageFor(span); err == nil && st.Hash() == weights {
				sess, err := st.NewSession(1)
				if err != nil {
					return nil, err
				}
				return &witness{peer: self, local: sess}, nil
			}
		}
	}
	for id, spans := range p.holdings(ctx) {
		if tried[id] || !holdsSpan(spans, span) {
			continue
		}
		tried[id] = true
		cl, err := p.host.OpenForward(ctx, id, p2p.ForwardOpen{Model: p.model.Name, First: span.First, Last: span.Last, Batch: 1})
		if err != nil {
			continue
		}
		if cl.Weights() != weights { // another version: its answer would differ honestly
			cl.Close()
			continue
		}
		p.using.add(id, 1, 0)
		return &witness{peer: id, remote: cl}, nil
	}
	return nil, fmt.Errorf("no holder of layers %s at weights %.12s", span, weights)
}

// SetAuditFull turns full audits on or off.
func (p *Pipeline) SetAuditFull(on bool) {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	p.audits.full = on
}

func (p *Pipeline) auditFull() bool {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	return p.audits.full
}

// openWitness opens a witness for a hop: this node at the hop's version, else another holder
// of its span naming that version, never the hop's own peer or one the route failed.
func (r *Route) openWitness(hr *hopRunner) (*witness, error) {
	tried := map[peer.ID]bool{hr.hop.Peer: true}
	for id := range r.failed {
		tried[id] = true
	}
	w, err := r.p.openVerifier(r.ctx, hr.hop.Span, hr.weights, tried)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (full audits)", ErrNoWitness, err)
	}
	return w, nil
}

// witnessedStep runs a remote hop's step on the stage and on its witness at once and returns
// the stage's answer only when both agree bit for bit (or an audit found the witness wrong).
// A witness that fails is replaced (once) and checks the answer afresh; a stage that fails
// takes its witness with it, since both had the step.
func (r *Route) witnessedStep(hr *hopRunner, x *layers.Tensor) (*layers.Tensor, error) {
	var out, seen *layers.Tensor
	var werr error
	for attempt := 0; attempt < 2; attempt++ {
		if hr.witness == nil {
			w, err := r.openWitness(hr)
			if err != nil {
				return nil, err
			}
			hr.witness = w
			if hr.history != nil { // a witness that joins late first rebuilds the session's cache
				if _, err := w.step(r.ctx, r.p, hr.history); err != nil {
					r.dropWitness(hr)
					werr = err
					continue
				}
			}
		}
		if out == nil {
			var g errgroup.Group
			var serr error
			g.Go(func() error { out, serr = r.remoteStep(hr, x); return nil })
			g.Go(func() error { seen, werr = hr.witness.step(r.ctx, r.p, x); return nil })
			g.Wait()
			if serr != nil {
				r.dropWitness(hr)
				return nil, serr
			}
		} else {
			seen, werr = hr.witness.step(r.ctx, r.p, x)
		}
		if werr == nil {
			break
		}
		r.dropWitness(hr)
	}
	if werr != nil {
		return nil, fmt.Errorf("%w: the witnesses of layers %s failed: %v", ErrNoWitness, hr.hop.Span, werr)
	}
	if sameBits(out, seen) {
		return out, nil
	}
	w := hr.witness
	wp := w.peer
	r.dropWitness(hr) // its cache took the step; a new one rebuilds it next time
	c := AuditCase{Peer: hr.hop.Peer, Span: hr.hop.Span, Weights: hr.weights, In: joinSeq(hr.history, x), Out: joinSeq(hr.outputs, out), Receipts: hr.remote.Receipts()}
	res := r.p.Audit(r.ctx, c)
	switch res.Verdict {
	case VerdictPassed, VerdictVerifierConvicted: // the witness was wrong
		r.p.Exclude(wp, fmt.Sprintf("as a witness, answered layers %s unlike the stage and an auditor", hr.hop.Span))
		if w.remote != nil {
			// Its earlier answers agreed with the stage's: its signed session is the stage's
			// outputs, then what it answered now; the proof convicts it elsewhere too.
			wc := AuditCase{Peer: wp, Span: hr.hop.Span, Weights: hr.weights, In: c.In, Out: joinSeq(hr.outputs, seen), Receipts: w.remote.Receipts()}
			if fp := proofOf(wc, out); fp != nil {
				if err := r.p.PublishProof(r.ctx, fp); err != nil {
					logger().Warn("fraud proof not gossiped", "accused", wp, "err", err)
				}
			}
		}
		return out, nil
	case VerdictConvicted:
		return nil, fmt.Errorf("%w: %s convicted: %s", ErrDisagreement, hr.hop.Peer, res.Reason)
	}
	return nil, fmt.Errorf("%w: %s and %s, undecided: %s", ErrDisagreement, hr.hop.Peer, wp, res.Reason)
}

func (r *Route) dropWitness(hr *hopRunner) {
	if hr.witness != nil {
		hr.witness.close(r.p)
		hr.witness = nil
	}
}

// joinSeq is a and b concatenated along the sequence axis, in a new tensor.
func joinSeq(a, b *layers.Tensor) *layers.Tensor {
	if a == nil {
		return appendSeq(nil, b)
	}
	return appendSeq(appendSeq(nil, a), b)
}
