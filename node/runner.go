package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// maxFailovers bounds how many times one request replaces a failed stage.
const maxFailovers = 4

// hopRunner is one stage of a running route, local or remote, with every input it was sent so
// far: if its peer fails, a replacement is opened and fed this history to rebuild its cache.
type hopRunner struct {
	hop     hop
	local   *layers.Session
	remote  *p2p.ForwardClient
	history *layers.Tensor
}

// routeRunner runs one sequence through a route, replacing failed stages.
type routeRunner struct {
	n         *Node
	ctx       context.Context
	hops      []*hopRunner
	failed    map[peer.ID]bool
	failovers int
}

// openRoute plans a route and opens a session on every stage of it.
func (n *Node) openRoute(ctx context.Context) (*routeRunner, error) {
	r := &routeRunner{n: n, ctx: ctx, failed: map[peer.ID]bool{}}
	for {
		route, err := n.planRoute(ctx, r.failed)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.hops = r.hops[:0]
		ok := true
		for _, h := range route {
			hr := &hopRunner{hop: h}
			if err := r.open(hr); err != nil {
				logger().Warn("stage unavailable; planning around it", "peer", h.peer, "span", h.span.String(), "err", err)
				r.failed[h.peer] = true
				ok = false
				break
			}
			r.hops = append(r.hops, hr)
		}
		if ok {
			return r, nil
		}
		r.Close()
		if len(r.failed) > maxFailovers {
			return nil, fmt.Errorf("node: no working route after %d failed peers", len(r.failed))
		}
	}
}

func (r *routeRunner) open(hr *hopRunner) error {
	if hr.hop.self {
		st, err := r.n.stageFor(hr.hop.span)
		if err != nil {
			return err
		}
		hr.local, err = st.NewSession(1)
		return err
	}
	c, err := r.n.host.OpenForward(r.ctx, hr.hop.peer, p2p.ForwardOpen{Model: r.n.model.Name, First: hr.hop.span.First, Last: hr.hop.span.Last, Batch: 1})
	if err != nil {
		return err
	}
	hr.remote = c
	r.n.using.add(hr.hop.peer, 1, 0)
	return nil
}

func (r *routeRunner) step(hr *hopRunner, x *layers.Tensor) (*layers.Tensor, error) {
	if hr.local != nil {
		return hr.local.Step(x)
	}
	out, err := hr.remote.Step(r.ctx, toWire(x))
	if err != nil {
		return nil, err
	}
	y := toLayers(out)
	if err := r.checkOutput(hr, x, y); err != nil {
		return nil, err
	}
	return y, nil
}

// ErrBadStageOutput marks a stage answer of the wrong dtype or shape: the stage is treated as
// failed (another holder takes over) and nothing of its answer is used.
var ErrBadStageOutput = errors.New("node: malformed stage output")

// checkOutput verifies a remote stage's answer before anything reads it: float32, finite
// (checked by the decoder), and shaped [batch, positions, width] for the input it was sent,
// width the model's activation or, on the last stage, its vocabulary.
func (r *routeRunner) checkOutput(hr *hopRunner, in, out *layers.Tensor) error {
	width := r.n.model.DModel
	if hr.hop.span.Last == r.n.model.Layers-1 {
		width = r.n.model.Vocab
	}
	want := []int{in.Dims[0], in.Dims[1], width}
	switch {
	case out.F32 == nil || out.I32 != nil:
		return fmt.Errorf("%w from %s: not float32", ErrBadStageOutput, hr.hop.peer)
	case !slices.Equal(out.Dims, want):
		return fmt.Errorf("%w from %s: shape %v, want %v", ErrBadStageOutput, hr.hop.peer, out.Dims, want)
	case len(out.F32) != out.Size():
		return fmt.Errorf("%w from %s: %d values for shape %v", ErrBadStageOutput, hr.hop.peer, len(out.F32), out.Dims)
	}
	return nil
}

// Step sends new tokens through every stage and returns the logits of the last one.
func (r *routeRunner) Step(tokens []int32) ([]float32, error) {
	x := layers.NewI32(tokens, 1, len(tokens))
	for _, hr := range r.hops {
		out, err := r.step(hr, x)
		for err != nil {
			var re *p2p.RemoteError
			if r.ctx.Err() != nil || hr.local != nil || errors.As(err, &re) && re.Code == "BAD_INPUT" || r.failovers >= maxFailovers {
				return nil, err
			}
			out, err = r.failover(hr, x, err)
		}
		hr.history = appendSeq(hr.history, x)
		x = out
	}
	v := x.Dims[2]
	return x.F32[(len(tokens)-1)*v:], nil
}

// failover replaces a failed stage with another holder of its span, replays the history to
// rebuild its cache, and runs the current input on it.
func (r *routeRunner) failover(hr *hopRunner, x *layers.Tensor, cause error) (*layers.Tensor, error) {
	r.failed[hr.hop.peer] = true
	r.failovers++
	r.n.metrics.failover()
	if hr.remote != nil {
		hr.remote.Close()
		r.n.using.add(hr.hop.peer, -1, 0)
		hr.remote = nil
	}
	next, ok := r.n.replacementFor(r.ctx, hr.hop.span, r.failed)
	if !ok {
		return nil, fmt.Errorf("node: stage %s failed (%v) and no other peer holds it", hr.hop.span, cause)
	}
	logger().Warn("stage failed; switching peer", "span", hr.hop.span.String(), "from", hr.hop.peer, "to", next.peer, "err", cause)
	hr.hop = next
	if err := r.open(hr); err != nil {
		return nil, err
	}
	if hr.history != nil {
		if _, err := r.step(hr, hr.history); err != nil {
			return nil, err
		}
	}
	return r.step(hr, x)
}

// Close ends every stage's session.
func (r *routeRunner) Close() {
	for _, hr := range r.hops {
		if hr.local != nil {
			hr.local.Close()
		}
		if hr.remote != nil {
			hr.remote.Close()
			r.n.using.add(hr.hop.peer, -1, 0)
		}
	}
	r.hops = nil
}

// appendSeq concatenates batch-1 tensors along the sequence axis.
func appendSeq(acc, x *layers.Tensor) *layers.Tensor {
	if acc == nil {
		c := &layers.Tensor{Dims: append([]int{}, x.Dims...)}
		c.F32 = append(c.F32, x.F32...)
		c.I32 = append(c.I32, x.I32...)
		return c
	}
	acc.Dims[1] += x.Dims[1]
	acc.F32 = append(acc.F32, x.F32...)
	acc.I32 = append(acc.I32, x.I32...)
	return acc
}
