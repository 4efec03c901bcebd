package pipeline

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Audits. The engine is deterministic, so two honest holders of a span that run the same
// weights version give the same bits for the same inputs, and a prefill of a session's
// inputs gives the bits its token-by-token steps gave. After a generation, the requester
// picks some of the remote stages it used (AuditRate each) and has their work recomputed from
// the inputs it sent them: by itself when it holds the span at that version, otherwise by
// another holder that names the same version. A mismatch with its own computation convicts
// the stage; a mismatch with another peer's is decided by a third computation (itself or a
// third holder), two against one. A convicted peer is excluded from this node's routes at once.

// DefaultAuditRate is the chance that a remote stage of a finished generation is audited:
// a stage that always cheats is caught within a few requests (1 - 0.75^4 = 68% by its fourth).
const DefaultAuditRate = 0.25

// AuditCase is one stage's work in a generation: what it was sent and what it answered.
type AuditCase struct {
	Peer     peer.ID
	Span     layers.Span
	Weights  string              // the version the stage named when the session opened
	In, Out  *layers.Tensor      // every input it was sent and every output it gave, in order
	Receipts []p2p.SignedReceipt // the stage's signed receipt of each step (a fraud proof's core)
}

// AuditResult is what an audit found.
type AuditResult struct {
	Case     AuditCase
	Verdict  string  // "passed", "convicted", "verifier convicted", "inconclusive"
	Verifier peer.ID // who recomputed (this node's ID when it did)
	Reason   string
	Proof    *FraudProof // for a conviction of a stage that signed its answers
}

// Verdicts of an audit.
const (
	VerdictPassed            = "passed"
	VerdictConvicted         = "convicted"
	VerdictVerifierConvicted = "verifier convicted" // the stage was right, its first verifier not
	VerdictInconclusive      = "inconclusive"
)

// Exclusion is why a peer is kept out of this node's routes.
type Exclusion struct {
	Peer   peer.ID
	Reason string
	At     time.Time
}

type auditState struct {
	mu       sync.Mutex
	full     bool // every remote step checked by a witness (witness.go)
	excluded map[peer.ID]Exclusion
	passed   map[peer.ID]int
	rate     float64
}

// Excluded lists the peers excluded from routes, with why.
func (p *Pipeline) Excluded() map[peer.ID]Exclusion {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	return maps.Clone(p.audits.excluded)
}

// AuditsPassed is how many audits each peer has passed.
func (p *Pipeline) AuditsPassed() map[peer.ID]int {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	return maps.Clone(p.audits.passed)
}

func (p *Pipeline) isExcluded(id peer.ID) bool {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	_, ok := p.audits.excluded[id]
	return ok
}

// Exclude keeps a peer out of this node's routes from now on.
func (p *Pipeline) Exclude(id peer.ID, reason string) {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	if p.audits.excluded == nil {
		p.audits.excluded = map[peer.ID]Exclusion{}
	}
	if _, ok := p.audits.excluded[id]; !ok {
		p.audits.excluded[id] = Exclusion{Peer: id, Reason: reason, At: time.Now()}
		logger().Warn("peer excluded from routes", "peer", id, "reason", reason)
	}
}

func (p *Pipeline) passed(id peer.ID) {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	if p.audits.passed == nil {
		p.audits.passed = map[peer.ID]int{}
	}
	p.audits.passed[id]++
}

// SetAuditRate changes the audit rate (0 or less: none).
func (p *Pipeline) SetAuditRate(r float64) {
	p.audits.mu.Lock()
	defer p.audits.mu.Unlock()
	p.audits.rate = max(0, min(r, 1))
}

// AuditCases are the remote stages of a route to audit, each chosen with the audit rate.
func (p *Pipeline) AuditCases(r *Route) []AuditCase {
	if p.auditFull() {
		return nil // every step was checked already
	}
	var out []AuditCase
	for _, hr := range r.hops {
		if hr.remote == nil || hr.history == nil || hr.outputs == nil || hr.weights == "" {
			continue
		}
		p.audits.mu.Lock()
		chance := auditChance(p.audits.rate, p.audits.passed[hr.hop.Peer])
		p.audits.mu.Unlock()
		if rand.Float64() >= chance {
			continue
		}
		out = append(out, AuditCase{Peer: hr.hop.Peer, Span: hr.hop.Span, Weights: hr.weights, In: hr.history, Out: hr.outputs, Receipts: hr.remote.Receipts()})
	}
	return out
}

// Audit recomputes a case and acts on the verdict: a convicted peer is excluded, and the
// proof of its signed wrong answers gossiped (when the node is on the fraud topic).
func (p *Pipeline) Audit(ctx context.Context, c AuditCase) AuditResult {
	res := p.audit(ctx, c, true)
	if res.Proof != nil {
		if err := p.PublishProof(ctx, res.Proof); err != nil {
			logger().Warn("fraud proof not gossiped", "accused", c.Peer, "err", err)
		}
	}
	return res
}

// audit recomputes a case and excludes a convicted peer; with prove, a conviction carries
// the fraud proof the case's receipts make.
func (p *Pipeline) audit(ctx context.Context, c AuditCase, prove bool) AuditResult {
	res := AuditResult{Case: c, Verdict: VerdictInconclusive}
	tried := map[peer.ID]bool{c.Peer: true}
	first, by, err := p.recompute(ctx, c, tried)
	if err != nil {
		res.Reason = err.Error()
		return res
	}
	res.Verifier = by
	if sameBits(first, c.Out) {
		res.Verdict = VerdictPassed
		p.passed(c.Peer)
		return res
	}
	if by == p.host.ID() { // this node's own computation
		res.Verdict, res.Reason = VerdictConvicted, fmt.Sprintf("answers for layers %s differ from this node's recomputation of the same inputs on weights %.12s", c.Span, c.Weights)
		p.Exclude(c.Peer, res.Reason)
		if prove {
			res.Proof = proofOf(c, first)
		}
		return res
	}
	// Another peer disagrees with the stage: a third computation decides.
	third, tb, err := p.recompute(ctx, c, tried)
	if err != nil {
		res.Reason = fmt.Sprintf("the stage and %s disagree and no third holder could decide: %v", by, err)
		return res
	}
	switch {
	case sameBits(third, first):
		res.Verdict, res.Reason = VerdictConvicted, fmt.Sprintf("answers for layers %s differ from two other holders' (%s, %s) on weights %.12s", c.Span, by, tb, c.Weights)
		p.Exclude(c.Peer, res.Reason)
		if prove {
			res.Proof = proofOf(c, first)
		}
	case sameBits(third, c.Out):
		res.Verdict, res.Verifier = VerdictVerifierConvicted, by
		res.Reason = fmt.Sprintf("%s recomputed layers %s wrongly (the stage and %s agree)", by, c.Span, tb)
		p.Exclude(by, res.Reason)
		p.passed(c.Peer)
	default:
		res.Reason = "three holders gave three answers"
	}
	return res
}

// recompute runs the case's inputs on the first verifier it can: this node when it holds the
// span at the case's version, else a holder that names that version, never one in tried
// (which it adds to).
func (p *Pipeline) recompute(ctx context.Context, c AuditCase, tried map[peer.ID]bool) (*layers.Tensor, peer.ID, error) {
	for {
		w, err := p.openVerifier(ctx, c.Span, c.Weights, tried)
		if err != nil {
			return nil, "", fmt.Errorf("%v to recompute them", err)
		}
		out, err := w.step(ctx, p, c.In)
		w.close(p)
		if err == nil || w.local != nil {
			return out, w.peer, err
		}
	}
}

func holdsSpan(spans []layers.Span, s layers.Span) bool {
	for _, h := range spans {
		if h.First <= s.First && s.Last <= h.Last {
			return true
		}
	}
	return false
}

// sameBits compares two float32 tensors bit for bit.
func sameBits(a, b *layers.Tensor) bool {
	if a == nil || b == nil || len(a.F32) != len(b.F32) || len(a.Dims) != len(b.Dims) {
		return false
	}
	for i := range a.Dims {
		if a.Dims[i] != b.Dims[i] {
			return false
		}
	}
	for i := range a.F32 {
		if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
			return false
		}
	}
	return true
}

// trustedAfter is how many passed audits make a peer known: until then it is audited twice
// as often (a new peer cannot cheat cheaply while it is unknown).
const trustedAfter = 3

// auditChance is the chance a stage of a peer that passed so many audits is audited.
func auditChance(rate float64, passed int) float64 {
	if rate <= 0 {
		return 0
	}
	if passed < trustedAfter {
		return min(1, 2*rate)
	}
	return rate
}

// auditRate turns the config's rate into a chance: 0 is the default, negative none.
func auditRate(r float64) float64 {
	switch {
	case r == 0:
		return DefaultAuditRate
	case r < 0:
		return 0
	}
	return min(r, 1)
}
