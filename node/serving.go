package node

import (
	"sync/atomic"

	"github.com/neuroshard/neuroshard/layers"
)

// Inference runs on a pinned version of the span's weights: theta_0 of the last completed
// DiLoCo round (or the loaded weights before any), in a stage of its own. Training steps the
// training stage's weights many times a round; a request served from those would depend on
// when it came, two replicas of a span would answer it differently, and every forward pass
// would wait for the training stage's lock. A new version is published when theta_0 changes
// (a round ends, a checkpoint is adopted); a session keeps the stage it opened on until it
// ends, so old versions live exactly as long as sessions use them.
type servedVersion struct {
	stage *layers.Stage
	hash  string // of the weights, computed once when published
}

type served struct{ v atomic.Pointer[servedVersion] }

// Serving is the stage inference runs on (nil before Start).
func (n *Node) Serving() *layers.Stage {
	if v := n.served.v.Load(); v != nil {
		return v.stage
	}
	return nil
}

// ServedHash is the hash of the weights inference runs on ("" before Start); it never waits
// on a computation.
func (n *Node) ServedHash() string {
	if v := n.served.v.Load(); v != nil {
		return v.hash
	}
	return ""
}

// publishServing makes params (copied) the version new inference sessions run on.
func (n *Node) publishServing(span layers.Span, params *layers.Params) error {
	st, err := layers.NewStage(n.model, span, params)
	if err != nil {
		return err
	}
	n.served.v.Store(&servedVersion{stage: st, hash: params.Hash()})
	return nil
}

// roundWeights are the weights the DiLoCo replica reads and writes: the training stage's, and
// each theta_0 it sets becomes the served version too.
type roundWeights struct {
	n  *Node
	st *layers.Stage
}

func (w roundWeights) Params() *layers.Params { return w.st.Params() }

func (w roundWeights) SetParams(p *layers.Params) error {
	if err := w.st.SetParams(p); err != nil {
		return err
	}
	return w.n.publishServing(w.st.Span(), p)
}

// SetLocal sets the training weights alone (theta_0 plus the inner steps taken while a round
// ran): the served version stays theta_0.
func (w roundWeights) SetLocal(p *layers.Params) error { return w.st.SetParams(p) }
