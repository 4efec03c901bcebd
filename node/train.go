package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// maxPendingInputs bounds the micro-batch inputs one training session keeps for backwards.
const maxPendingInputs = 64

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

// servedTrain runs a driver's training stream on the held stage.
type servedTrain struct {
	n      *Node
	stage  *layers.Stage
	mu     sync.Mutex
	inputs map[uint64]pendingInput
}

type pendingInput struct {
	in *layers.Tensor
	at time.Time
}

func (s *servedTrain) keep(id uint64, in *layers.Tensor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.inputs {
		if time.Since(p.at) > p2p.TrainInputTTL {
			delete(s.inputs, k)
		}
	}
	if len(s.inputs) >= maxPendingInputs {
		return &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("%d micro-batches await their backward", maxPendingInputs)}
	}
	s.inputs[id] = pendingInput{in: in, at: time.Now()}
	return nil
}

func (s *servedTrain) take(id uint64) (*layers.Tensor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.inputs[id]
	delete(s.inputs, id)
	return p.in, ok
}

func badInput(err error) error { return &p2p.RemoteError{Code: "BAD_INPUT", Message: err.Error()} }

func (s *servedTrain) Forward(id uint64, in *p2p.Tensor) (*p2p.Tensor, error) {
	x := pipeline.FromWire(in)
	out, err := s.stage.Forward(x)
	if err != nil {
		return nil, badInput(err)
	}
	if err := s.keep(id, x); err != nil {
		return nil, err
	}
	return pipeline.ToWire(out), nil
}

func (s *servedTrain) Loss(id uint64, in, targets *p2p.Tensor) (float32, *p2p.Tensor, error) {
	g, err := s.stage.BackwardLoss(pipeline.FromWire(in), pipeline.FromWire(targets))
	if err != nil {
		return 0, nil, badInput(err)
	}
	if err := s.n.applyInner(g.Params, g.Loss, targets.Dims[0]*targets.Dims[1]); err != nil {
		return 0, nil, err
	}
	var gi *p2p.Tensor
	if g.Input != nil {
		gi = pipeline.ToWire(g.Input)
	}
	return g.Loss, gi, nil
}

func (s *servedTrain) Backward(id uint64, loss float32, gradOut *p2p.Tensor) (*p2p.Tensor, error) {
	in, ok := s.take(id)
	if !ok {
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: fmt.Sprintf("no forward of micro-batch %d on this stream", id)}
	}
	g, err := s.stage.Backward(in, pipeline.FromWire(gradOut))
	if err != nil {
		return nil, badInput(err)
	}
	if err := s.n.applyInner(g.Params, loss, in.Dims[0]*in.Dims[1]); err != nil {
		return nil, err
	}
	if g.Input == nil {
		return nil, nil
	}
	return pipeline.ToWire(g.Input), nil
}

func (s *servedTrain) Close() {}

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
	return &servedTrain{n: n, stage: st, inputs: map[uint64]pendingInput{}}, nil
}
