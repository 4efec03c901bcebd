package node

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// lyingSession answers every step with a tensor of its choice.
type lyingSession struct {
	answer func(in *p2p.Tensor) *p2p.Tensor
}

func (s lyingSession) Step(in *p2p.Tensor) (*p2p.Tensor, error) {
	if s.answer == nil {
		return nil, &p2p.RemoteError{Code: "BAD_INPUT", Message: "a lie about a good input"}
	}
	return s.answer(in), nil
}
func (s lyingSession) Close() {}

// generateThrough generates 12 greedy tokens after "ROMEO:" on a route of a's layers 0-3 and
// tail's 4-7.
func generateThrough(a *Node, tail peer.ID) ([]int32, error) {
	out, _, err := generateWith(a, tail, layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 12})
	return out, err
}

// generateWith generates through a's layers 0-3 and tail's 4-7 and returns the route's hops
// at the end (after any failover).
func generateWith(a *Node, tail peer.ID, prompt []int32, s layers.Sampling) ([]int32, []pipeline.Hop, error) {
	r, err := routeThrough(a, tail)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out, _, err := layers.Generate(r, a.model.Context, prompt, s, nil)
	return out, r.Hops(), err
}

// routeThrough opens a route of a's own layers 0-3 and tail's 4-7.
func routeThrough(a *Node, tail peer.ID) (*pipeline.Route, error) {
	return a.pipe.OpenRoute(context.Background(), []pipeline.Hop{{Peer: a.host.ID(), Span: layers.Span{First: 0, Last: 3}, Self: true},
		{Peer: tail, Span: layers.Span{First: 4, Last: 7}}})
}

// A stage that answers malformed tensors (wrong rank, dtype, width, length) or refuses a good
// input (BAD_INPUT) is a failed stage:
// the requester never panics on it, fails over to an honest holder of the span and gives the
// honest answer.
func TestMalformedStageOutputFailsOverWithoutPanic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := startNetwork(t, "0-3", "4-7", "4-7")
	a, honest, liar := nodes[0], nodes[1], nodes[2]
	waitCoverage(t, a)
	eventually(t, 10*time.Second, "both tail holders in the coverage", func() bool {
		return len(a.api.Coverage(ctx).Layers[7].Providers) == 2
	})
	run := func(tail peer.ID) ([]int32, error) { return generateThrough(a, tail) }
	want, err := run(honest.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	v := a.model.Vocab
	for name, answer := range map[string]func(in *p2p.Tensor) *p2p.Tensor{
		"rank 2": func(in *p2p.Tensor) *p2p.Tensor { return &p2p.Tensor{Dims: []int{1, 2}, F32: []float32{1, 2}} },
		"int32": func(in *p2p.Tensor) *p2p.Tensor {
			return &p2p.Tensor{Dims: []int{1, in.Dims[1], v}, I32: make([]int32, in.Dims[1]*v)}
		},
		"width": func(in *p2p.Tensor) *p2p.Tensor {
			return &p2p.Tensor{Dims: []int{1, in.Dims[1], 3}, F32: make([]float32, 3*in.Dims[1])}
		},
		"positions": func(in *p2p.Tensor) *p2p.Tensor { return &p2p.Tensor{Dims: []int{1, 0, v}, F32: []float32{}} },
		"empty":     func(in *p2p.Tensor) *p2p.Tensor { return &p2p.Tensor{Dims: []int{}, F32: []float32{7}} },
		"refuses":   nil, // answers BAD_INPUT to a good input
	} {
		var served atomic.Int32
		liar.host.ServeForward(func(from peer.ID, req p2p.ForwardOpen) (p2p.ForwardSession, error) {
			served.Add(1)
			return lyingSession{answer: answer}, nil
		})
		got, err := run(liar.host.ID())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if served.Load() == 0 {
			t.Fatalf("%s: the lying stage was never asked", name)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: answer %q, the honest one is %q", name, layers.Decode(got), layers.Decode(want))
		}
	}
}

// stallingSession answers its first steps honestly, then never again (until closed).
type stallingSession struct {
	inner  p2p.ForwardSession
	honest int
	steps  *atomic.Int32
	closed chan struct{}
}

func (s stallingSession) Step(in *p2p.Tensor) (*p2p.Tensor, error) {
	if int(s.steps.Add(1)) > s.honest {
		select {
		case <-s.closed:
		case <-time.After(2 * time.Minute):
		}
		return nil, &p2p.RemoteError{Code: "STALLED", Message: "too late"}
	}
	return s.inner.Step(in)
}
func (s stallingSession) Close() {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.inner.Close()
}

// A stage that stops answering in the middle of a generation costs the requester the step
// floor plus twenty times that stage's measured speed, not the 60 s a step of an unmeasured
// stage may take: it fails over to an honest holder and the answer is the honest one.
func TestStallingStageFailsOverWithinItsMeasuredTime(t *testing.T) {
	ctx := context.Background()
	third := startNode(t, func() Config { c := testConfig(t); c.Layers = "4-7"; return c }())
	cfg := testConfig(t)
	cfg.Layers, cfg.Bootstrap, cfg.StepFloor = "0-3", third.Multiaddrs(), 300*time.Millisecond
	a := startNode(t, cfg)
	cfg = testConfig(t)
	cfg.Layers, cfg.Bootstrap = "4-7", third.Multiaddrs()
	staller := startNode(t, cfg)
	eventually(t, 15*time.Second, "both tail holders in the coverage", func() bool {
		return len(a.api.Coverage(ctx).Layers[7].Providers) == 2
	})
	var steps atomic.Int32
	staller.host.ServeForward(func(from peer.ID, req p2p.ForwardOpen) (p2p.ForwardSession, error) {
		inner, err := staller.pipe.ServeForward(from, req)
		if err != nil {
			return nil, err
		}
		return stallingSession{inner: inner, honest: 4, steps: &steps, closed: make(chan struct{})}, nil
	})
	run := func(tail peer.ID) ([]int32, error) { return generateThrough(a, tail) }
	want, err := run(third.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := run(staller.host.ID())
	took := time.Since(start)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("through the stalling stage: %q %v, the honest answer is %q", layers.Decode(got), err, layers.Decode(want))
	}
	if steps.Load() <= 4 {
		t.Fatalf("the stage stalled after %d steps: it never did", steps.Load())
	}
	if took > 10*time.Second {
		t.Fatalf("the stall cost %v", took)
	}
	t.Logf("a stage that stalled after 4 steps cost %v in all", took.Round(time.Millisecond))
}
