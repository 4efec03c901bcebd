package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// trainState is the node's local training: the inner optimizer of its stage and what it has
// seen of the loss.
type trainState struct {
	mu         sync.Mutex
	opt        *layers.AdamW
	lr         float64
	innerSteps int64
	tokens     int64
	losses     []float32 // recent losses, oldest first
	driving    bool
}

const lossHistory = 256

// applyInner takes one inner AdamW step on the held stage from gradients it computed, and
// records the loss the driver reported.
func (n *Node) applyInner(grads *layers.Params, loss float32, tokens int) error {
	st := n.Stage()
	t := &n.train
	t.mu.Lock()
	defer t.mu.Unlock()
	lr := n.settings.Get().Training.LearningRate
	if t.opt == nil || t.lr != lr {
		if t.opt == nil {
			t.opt = layers.NewAdamW(lr)
		}
		t.opt.LR, t.lr = lr, lr
	}
	if err := st.Step(t.opt, grads); err != nil {
		return err
	}
	t.innerSteps++
	n.wake()
	t.tokens += int64(tokens)
	t.losses = append(t.losses, loss)
	if len(t.losses) > lossHistory {
		t.losses = t.losses[len(t.losses)-lossHistory:]
	}
	return nil
}

// serveTrain opens a training session; training runs on the whole held span only, so every
// driver's gradients land on the same weights.
func (n *Node) serveTrain(from peer.ID, req p2p.ForwardOpen) (p2p.TrainSession, error) {
	if req.Model != n.model.Name {
		return nil, &p2p.RemoteError{Code: "UNKNOWN_MODEL", Message: fmt.Sprintf("this node serves %s, not %q", n.model.Name, req.Model)}
	}
	st := n.Stage()
	if st == nil || (layers.Span{First: req.First, Last: req.Last}) != st.Span() {
		return nil, &p2p.RemoteError{Code: "NOT_HELD", Message: fmt.Sprintf("training runs on whole spans; this node holds %s", n.Span())}
	}
	if !n.settings.Get().Training.Enabled {
		return nil, &p2p.RemoteError{Code: "TRAINING_DISABLED", Message: "training is turned off on this node"}
	}
	// The stage holding layer 0 trains on its own data shard only: a peer's tokens are never
	// trained on. Downstream stages take training steps only from a driver (a holder of
	// layer 0, which feeds its shard), not from any peer that opens a stream.
	if req.First == 0 {
		return nil, &p2p.RemoteError{Code: "FORBIDDEN", Message: "the first stage trains on its own data shard only; it takes no training input from peers"}
	}
	if !n.isDriver(from) {
		return nil, &p2p.RemoteError{Code: "FORBIDDEN", Message: "training steps are taken only from a holder of layer 0 (a driver)"}
	}
	return pipeline.NewTrainSession(st, n.applyInner), nil
}

// isDriver tells whether the coverage view shows p holding layer 0.
func (n *Node) isDriver(p peer.ID) bool {
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	for _, sp := range n.pipe.Holdings(ctx)[p] {
		if sp.First == 0 {
			return true
		}
	}
	return false
}
