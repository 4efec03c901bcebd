package pipeline

import (
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Bounds on the forward sessions (KV caches) a node keeps for other peers: in all, and per
// peer, so one peer cannot take every slot.
const (
	maxServedSessions  = 64
	maxSessionsPerPeer = 16
	maxBatch           = 64 // sequences in one session (layers.NewSession's bound)
	// keptSessions of the slots are kept for peers with a standing here (knownPeer).
	keptSessions = 16
)

// sessionCounts counts open sessions by peer: those this node serves, or those it opened.
type sessionCounts struct {
	mu sync.Mutex
	by map[peer.ID]int
}

// add changes a peer's count by d unless that would pass limit (0: no limit); it reports
// whether it did.
func (c *sessionCounts) add(p peer.ID, d, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[peer.ID]int{}
	}
	if d > 0 && limit > 0 && c.by[p]+d > limit {
		return false
	}
	c.by[p] += d
	if c.by[p] <= 0 {
		delete(c.by, p)
	}
	return true
}

func (c *sessionCounts) get(p peer.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[p]
}

// FromWire is a wire tensor as a model tensor (sharing its data).
func FromWire(t *p2p.Tensor) *layers.Tensor {
	return &layers.Tensor{Dims: t.Dims, F32: t.F32, I32: t.I32}
}

// ToWire is a model tensor as a wire tensor (sharing its data).
func ToWire(t *layers.Tensor) *p2p.Tensor { return &p2p.Tensor{Dims: t.Dims, F32: t.F32, I32: t.I32} }

// servedSession runs one peer's forward session on a local stage.
type servedSession struct {
	sess    *layers.Session
	weights string // the hash of the weights the session runs
	release func()
	once    sync.Once
	peer    peer.ID
	budget  *computeBudgets
	served  *sync.Map // the node's served sessions (*layers.Session), this one among them
}

// SignGroup names the batched computation of the last step and how many sessions served to
// peers it stepped (p2p.SignGroup): their receipts are signed together, once all are in.
// The node's own sessions in the batch sign nothing.
func (s *servedSession) SignGroup() (id uint64, size int) {
	id, with := s.sess.LastBatch()
	for _, o := range with {
		if _, ok := s.served.Load(o); ok {
			size++
		}
	}
	return id, max(size, 1)
}

// WeightsHash names the version the session runs (p2p.Versioned).
func (s *servedSession) WeightsHash() string { return s.weights }

func (s *servedSession) Step(in *p2p.Tensor) (*p2p.Tensor, error) {
	positions := 1
	for _, d := range in.Dims[:min(2, len(in.Dims))] {
		positions *= d
	}
	if err := s.budget.admit(s.peer, positions); err != nil {
		return nil, err
	}
	out, err := s.sess.Step(FromWire(in))
	// The session's own compute: its share of a batched step, not the batch's whole time or
	// the wait for the stage (a peer's 8 generations were each charged the batch of 8, and
	// throttled at an eighth of their share).
	s.budget.charge(s.peer, s.sess.StepCost())
	if err != nil {
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: err.Error()}
	}
	return ToWire(out), nil
}

func (s *servedSession) Close() {
	s.once.Do(func() {
		s.served.Delete(s.sess)
		s.sess.Close()
		s.release()
	})
}

// ServeForward answers a peer's forward request for a span within the node's own.
func (p *Pipeline) ServeForward(from peer.ID, req p2p.ForwardOpen) (p2p.ForwardSession, error) {
	if req.Model != p.model.Name {
		return nil, &p2p.RemoteError{Code: "UNKNOWN_MODEL", Message: fmt.Sprintf("this node serves %s, not %q", p.model.Name, req.Model)}
	}
	want := layers.Span{First: req.First, Last: req.Last}
	held := p.localSpan()
	if want.First < held.First || want.Last > held.Last || want.Last < want.First {
		return nil, &p2p.RemoteError{Code: "NOT_HELD", Message: fmt.Sprintf("layers %s requested, this node holds %s", want, held)}
	}
	st, err := p.stageFor(want)
	if err != nil {
		return nil, &p2p.RemoteError{Code: "UNAVAILABLE", Message: err.Error()}
	}
	if req.Batch < 1 || req.Batch > maxBatch {
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: fmt.Sprintf("session batch %d (want 1-%d)", req.Batch, maxBatch)}
	}
	if !p.servedBy.add(from, 1, maxSessionsPerPeer) {
		return nil, &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("%d sessions already open for this peer", maxSessionsPerPeer)}
	}
	known := p.knownPeer(from)
	strangers := int64(0) // this session's count among the unknown peers' sessions
	if !known {
		strangers = 1
	}
	unserve := func() { p.served.Add(-1); p.servedUnknown.Add(-strangers); p.servedBy.add(from, -1, 0) }
	total, unknown := p.served.Add(1), p.servedUnknown.Add(strangers)
	switch {
	case total > maxServedSessions:
		unserve()
		return nil, &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("%d sessions open; retry in %d s", maxServedSessions, RetryAfter)}
	case !known && unknown > maxServedSessions-keptSessions:
		unserve()
		return nil, &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("%d sessions open for peers that hold no layers and passed no audit here (the other %d are kept for holders); retry in %d s",
			maxServedSessions-keptSessions, keptSessions, RetryAfter)}
	}
	kv := sessionBytes(p.model, want, req.Batch, p.model.Context)
	if err := p.budget.reserve(from, kv, known); err != nil {
		unserve()
		return nil, &p2p.RemoteError{Code: "BUSY", Message: err.Error()}
	}
	release := func() { unserve(); p.budget.release(from, kv) }
	sess, err := st.NewSession(req.Batch)
	if err != nil {
		release()
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: err.Error()}
	}
	p.servedSessions.Store(sess, struct{}{})
	return &servedSession{sess: sess, weights: st.Hash(), release: release, peer: from, budget: &p.compute, served: &p.servedSessions}, nil
}

// knownPeer tells whether a peer has a standing here: it holds layers in the last coverage
// view (it announced them, answers, and can be audited), or it passed an audit of this node's.
// Others, fresh identities above all, are served from what the known leave free, and so last:
// a few identities cannot take every slot from the network's own holders. The check never
// waits on a lookup.
func (p *Pipeline) knownPeer(id peer.ID) bool {
	p.audits.mu.Lock()
	passed := p.audits.passed[id]
	p.audits.mu.Unlock()
	return passed > 0 || (p.cov != nil && p.cov.Last().Holds(id))
}

// subStages caches stages for parts of the held span (a route may need only its tail), keyed
// by span and rebuilt when the weights change.
type subStages struct {
	mu    sync.Mutex
	byKey map[layers.Span]subStage
}

type subStage struct {
	hash  string
	stage *layers.Stage
}

// stageFor returns a stage running exactly span, which lies within the held span.
func (p *Pipeline) stageFor(span layers.Span) (*layers.Stage, error) {
	st := p.local()
	if st == nil {
		return nil, fmt.Errorf("pipeline: no layers loaded yet")
	}
	if span == st.Span() {
		return st, nil
	}
	hash := st.Hash()
	p.subs.mu.Lock()
	defer p.subs.mu.Unlock()
	if c, ok := p.subs.byKey[span]; ok && c.hash == hash {
		return c.stage, nil
	}
	all := st.Params()
	specs := p.model.ParamSpecs(span)
	sub := &layers.Params{Specs: specs, Values: make([][]float32, len(specs))}
	for i, s := range specs {
		sub.Values[i] = all.Get(s.Name)
	}
	stage, err := layers.NewStage(p.model, span, sub)
	if err != nil {
		return nil, err
	}
	if p.subs.byKey == nil {
		p.subs.byKey = map[layers.Span]subStage{}
	}
	p.subs.byKey[span] = subStage{hash: hash, stage: stage}
	return stage, nil
}
