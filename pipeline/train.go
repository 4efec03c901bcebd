package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Training across stages: the driver (the holder of layer 0) runs each micro-batch forward
// through a route of whole spans and its gradients back, over one training stream per remote
// stage; every stage takes its inner step when its gradients arrive.

// maxPendingInputs bounds the micro-batch inputs one training session keeps for backwards.
const maxPendingInputs = 64

// Apply takes one inner optimizer step on a stage from the gradients it computed; loss is the
// micro-batch's loss, tokens how many it covered.
type Apply func(grads *layers.Params, loss float32, tokens int) error

// TrainSession runs a driver's training stream on a local stage (it implements
// p2p.TrainSession).
type TrainSession struct {
	stage  *layers.Stage
	apply  Apply
	mu     sync.Mutex
	inputs map[uint64]pendingInput
}

type pendingInput struct {
	in *layers.Tensor
	at time.Time
}

// NewTrainSession serves training on stage, stepping it with apply.
func NewTrainSession(stage *layers.Stage, apply Apply) *TrainSession {
	return &TrainSession{stage: stage, apply: apply, inputs: map[uint64]pendingInput{}}
}

func (s *TrainSession) keep(id uint64, in *layers.Tensor) error {
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

func (s *TrainSession) take(id uint64) (*layers.Tensor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.inputs[id]
	delete(s.inputs, id)
	return p.in, ok
}

func badInput(err error) error { return &p2p.RemoteError{Code: "BAD_INPUT", Message: err.Error()} }

// Forward runs a micro-batch through the stage and keeps its input for the backward.
func (s *TrainSession) Forward(id uint64, in *p2p.Tensor) (*p2p.Tensor, error) {
	x := FromWire(in)
	out, err := s.stage.Forward(x)
	if err != nil {
		return nil, badInput(err)
	}
	if err := s.keep(id, x); err != nil {
		return nil, err
	}
	return ToWire(out), nil
}

// Loss runs the last stage forward and back against the targets and steps it.
func (s *TrainSession) Loss(id uint64, in, targets *p2p.Tensor) (float32, *p2p.Tensor, error) {
	g, err := s.stage.BackwardLoss(FromWire(in), FromWire(targets))
	if err != nil {
		return 0, nil, badInput(err)
	}
	if err := s.apply(g.Params, g.Loss, targets.Dims[0]*targets.Dims[1]); err != nil {
		return 0, nil, err
	}
	var gi *p2p.Tensor
	if g.Input != nil {
		gi = ToWire(g.Input)
	}
	return g.Loss, gi, nil
}

// Backward takes the gradient of a micro-batch's output, steps the stage and returns the
// gradient of its input.
func (s *TrainSession) Backward(id uint64, loss float32, gradOut *p2p.Tensor) (*p2p.Tensor, error) {
	in, ok := s.take(id)
	if !ok {
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: fmt.Sprintf("no forward of micro-batch %d on this stream", id)}
	}
	g, err := s.stage.Backward(in, FromWire(gradOut))
	if err != nil {
		return nil, badInput(err)
	}
	if err := s.apply(g.Params, loss, in.Dims[0]*in.Dims[1]); err != nil {
		return nil, err
	}
	if g.Input == nil {
		return nil, nil
	}
	return ToWire(g.Input), nil
}

// Close ends the session (inputs waiting for a backward are dropped with it).
func (s *TrainSession) Close() {}

// TrainHop is one stage of a training route, local or remote.
type TrainHop interface {
	Hop() Hop
	Forward(ctx context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error)
	Loss(ctx context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error)
	Backward(ctx context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error)
	Close()
}

type localTrainHop struct {
	hop Hop
	s   *TrainSession
}

func (h localTrainHop) Hop() Hop { return h.hop }

func (h localTrainHop) Forward(_ context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error) {
	out, err := h.s.Forward(id, ToWire(in))
	if err != nil {
		return nil, err
	}
	return FromWire(out), nil
}

func (h localTrainHop) Loss(_ context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error) {
	loss, g, err := h.s.Loss(id, ToWire(in), ToWire(targets))
	if err != nil || g == nil {
		return loss, nil, err
	}
	return loss, FromWire(g), nil
}

func (h localTrainHop) Backward(_ context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error) {
	g, err := h.s.Backward(id, loss, ToWire(gradOut))
	if err != nil || g == nil {
		return nil, err
	}
	return FromWire(g), nil
}

func (h localTrainHop) Close() {}

type remoteTrainHop struct {
	c   *p2p.TrainClient
	hop Hop
}

func (h remoteTrainHop) Hop() Hop { return h.hop }

func (h remoteTrainHop) Forward(ctx context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error) {
	out, err := h.c.Forward(ctx, id, ToWire(in))
	if err != nil {
		return nil, err
	}
	return FromWire(out), nil
}

func (h remoteTrainHop) Loss(ctx context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error) {
	loss, g, err := h.c.Loss(ctx, id, ToWire(in), ToWire(targets))
	if err != nil || g == nil {
		return loss, nil, err
	}
	return loss, FromWire(g), nil
}

func (h remoteTrainHop) Backward(ctx context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error) {
	g, err := h.c.Backward(ctx, id, loss, ToWire(gradOut))
	if err != nil || g == nil {
		return nil, err
	}
	return FromWire(g), nil
}

func (h remoteTrainHop) Close() { h.c.Close() }

// PlanTrainRoute chains whole spans from layer 0 to the last (training runs on whole spans
// only), starting with this node's own span. Drivers spread over the replicas of each span:
// the driver ranked rank among the holders of its own span takes the (rank mod r)-th of the r
// holders of the next, by peer ID, so two drivers and two replicas pair up instead of
// crowding one.
func (p *Pipeline) PlanTrainRoute(ctx context.Context, rank int) ([]Hop, error) {
	hold := p.holdings(ctx)
	var route []Hop
	for l := 0; l < p.model.Layers; {
		var cands []Hop
		for id, spans := range hold {
			for _, sp := range spans {
				if sp.First == l {
					cands = append(cands, Hop{Peer: id, Span: sp, Self: id == p.host.ID()})
				}
			}
		}
		if len(cands) == 0 {
			return nil, &NoRouteError{Model: p.model.Name, Missing: []int{l}}
		}
		slices.SortFunc(cands, func(a, b Hop) int { return strings.Compare(string(a.Peer), string(b.Peer)) })
		pick := cands[max(rank, 0)%len(cands)]
		if l == 0 {
			pick = Hop{Peer: p.host.ID(), Span: p.localSpan(), Self: true}
		}
		route = append(route, pick)
		l = pick.Span.Last + 1
	}
	return route, nil
}

// TrainRouteStale tells whether the route a driver of the given rank would plan now differs
// from the one it runs (hops): a replica joined or left its span or a later one. A route that
// cannot be planned now is not stale: the one running may still work.
func (p *Pipeline) TrainRouteStale(ctx context.Context, rank int, hops []TrainHop) bool {
	want, err := p.PlanTrainRoute(ctx, rank)
	if err != nil || slices.EqualFunc(hops, want, func(h TrainHop, w Hop) bool { return h.Hop() == w }) {
		return false
	}
	logger().Info("training route changed; re-planning", "route", want)
	return true
}

// OpenTrainRoute plans a training route and opens a training stream on each remote stage;
// the local stage steps with apply.
func (p *Pipeline) OpenTrainRoute(ctx context.Context, rank int, apply Apply) ([]TrainHop, error) {
	route, err := p.PlanTrainRoute(ctx, rank)
	if err != nil {
		return nil, err
	}
	var hops []TrainHop
	for _, h := range route {
		if h.Self {
			hops = append(hops, localTrainHop{hop: h, s: NewTrainSession(p.train(), apply)})
			continue
		}
		c, err := p.host.OpenTrain(ctx, h.Peer, p2p.ForwardOpen{Model: p.model.Name, First: h.Span.First, Last: h.Span.Last, Batch: 1})
		if err != nil {
			for _, o := range hops {
				o.Close()
			}
			return nil, err
		}
		hops = append(hops, remoteTrainHop{c: c, hop: h})
	}
	return hops, nil
}

// TrainBatch runs one micro-batch forward and back through the route; every stage steps its
// inner optimizer when its gradients arrive.
func TrainBatch(ctx context.Context, hops []TrainHop, id uint64, tokens, targets *layers.Tensor) (float32, error) {
	x := tokens
	for _, h := range hops[:len(hops)-1] {
		out, err := h.Forward(ctx, id, x)
		if err != nil {
			return 0, err
		}
		x = out
	}
	loss, g, err := hops[len(hops)-1].Loss(ctx, id, x, targets)
	if err != nil {
		return 0, err
	}
	for i := len(hops) - 2; i >= 0; i-- {
		if g, err = hops[i].Backward(ctx, id, loss, g); err != nil {
			return 0, err
		}
	}
	return loss, nil
}

var _ p2p.TrainSession = (*TrainSession)(nil)
