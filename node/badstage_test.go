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

// A stage that answers malformed tensors (wrong rank, dtype, width, length) or refuses a good
// input (BAD_INPUT) is a failed stage:
// the requester never panics on it, fails over to an honest holder of the span and gives the
// honest answer.
func TestMalformedStageOutputFailsOverWithoutPanic(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, "0-3", "4-7", "4-7")
	a, honest, liar := nodes[0], nodes[1], nodes[2]
	waitCoverage(t, a)
	eventually(t, 10*time.Second, "both tail holders in the coverage", func() bool {
		return len(a.api.Coverage(ctx).Layers[7].Providers) == 2
	})
	prompt, s := layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 12}

	run := func(tail peer.ID) ([]int32, error) {
		r, err := a.pipe.OpenRoute(ctx, []pipeline.Hop{{Peer: a.host.ID(), Span: layers.Span{First: 0, Last: 3}, Self: true}, {Peer: tail, Span: layers.Span{First: 4, Last: 7}}})
		if err != nil {
			return nil, err
		}
		defer r.Close()
		out, _, err := layers.Generate(r, a.model.Context, prompt, s, nil)
		return out, err
	}
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
