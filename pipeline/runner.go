package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// maxFailovers bounds how many times one request replaces a failed stage.
const maxFailovers = 4

// maxBusyWait bounds how long a route waits, in all, for a stage that asked it to come back
// (BUSY with a retry time) when no other peer holds the stage's span.
const maxBusyWait = 10 * time.Second

// errNoHolder marks a failed stage that no other peer holds: nothing more to try.
var errNoHolder = errors.New("no other peer holds it")

// hopRunner is one stage of a running route, local or remote, with every input it was sent so
// far: if its peer fails, a replacement is opened and fed this history to rebuild its cache.
type hopRunner struct {
	hop     Hop
	local   *layers.Session
	remote  *p2p.ForwardClient
	history *layers.Tensor
	outputs *layers.Tensor // what the current peer answered for history (audits)
	weights string         // the version the current peer named
	witness *witness       // under full audits, the second computation of its steps
}

// Route runs one sequence through a planned route of stages, replacing failed ones.
type Route struct {
	p         *Pipeline
	ctx       context.Context
	hops      []*hopRunner
	failed    map[peer.ID]bool
	failovers int
	waited    time.Duration // for BUSY stages, in all
}

// openRoute plans a route and opens a session on every stage of it.
func (p *Pipeline) openRoute(ctx context.Context) (*Route, error) {
	r := &Route{p: p, ctx: ctx, failed: map[peer.ID]bool{}}
	for {
		route, err := p.planRoute(ctx, r.failed)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.hops = r.hops[:0]
		ok := true
		for _, h := range route {
			hr := &hopRunner{hop: h}
			if err := r.open(hr); err != nil {
				logger().Warn("stage unavailable; planning around it", "peer", h.Peer, "span", h.Span.String(), "err", err)
				r.failed[h.Peer] = true
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
			return nil, fmt.Errorf("pipeline: no working route after %d failed peers", len(r.failed))
		}
	}
}

func (r *Route) open(hr *hopRunner) error {
	if hr.hop.Self {
		st, err := r.p.stageFor(hr.hop.Span)
		if err != nil {
			return err
		}
		hr.local, err = st.NewSession(1)
		return err
	}
	c, err := r.p.host.OpenForward(r.ctx, hr.hop.Peer, p2p.ForwardOpen{Model: r.p.model.Name, First: hr.hop.Span.First, Last: hr.hop.Span.Last, Batch: 1})
	if err != nil {
		return err
	}
	hr.remote, hr.weights = c, c.Weights()
	r.p.using.add(hr.hop.Peer, 1, 0)
	return nil
}

func (r *Route) step(hr *hopRunner, x *layers.Tensor) (*layers.Tensor, error) {
	if hr.local != nil {
		return hr.local.Step(x)
	}
	if r.p.auditFull() {
		return r.witnessedStep(hr, x)
	}
	return r.remoteStep(hr, x)
}

// remoteStep runs a step on a hop's remote stage within its measured time and checks the
// answer's form.
func (r *Route) remoteStep(hr *hopRunner, x *layers.Tensor) (*layers.Tensor, error) {
	positions := x.Dims[0] * x.Dims[1]
	ctx, cancel := context.WithTimeout(r.ctx, r.p.speed.timeout(hr.hop.Peer, positions))
	start := time.Now()
	out, err := hr.remote.Step(ctx, ToWire(x))
	cancel()
	if err != nil {
		return nil, err
	}
	r.p.speed.note(hr.hop.Peer, time.Since(start), positions)
	y := FromWire(out)
	if err := r.checkOutput(hr, x, y); err != nil {
		return nil, err
	}
	return y, nil
}

// ErrBadStageOutput marks a stage answer of the wrong dtype or shape: the stage is treated as
// failed (another holder takes over) and nothing of its answer is used.
var ErrBadStageOutput = errors.New("pipeline: malformed stage output")

// checkOutput verifies a remote stage's answer before anything reads it: float32, finite
// (checked by the decoder), and shaped [batch, positions, width] for the input it was sent,
// width the model's activation or, on the last stage, its vocabulary.
func (r *Route) checkOutput(hr *hopRunner, in, out *layers.Tensor) error {
	width := r.p.model.DModel
	if hr.hop.Span.Last == r.p.model.Layers-1 {
		width = r.p.model.Vocab
	}
	want := []int{in.Dims[0], in.Dims[1], width}
	switch {
	case out.F32 == nil || out.I32 != nil:
		return fmt.Errorf("%w from %s: not float32", ErrBadStageOutput, hr.hop.Peer)
	case !slices.Equal(out.Dims, want):
		return fmt.Errorf("%w from %s: shape %v, want %v", ErrBadStageOutput, hr.hop.Peer, out.Dims, want)
	case len(out.F32) != out.Size():
		return fmt.Errorf("%w from %s: %d values for shape %v", ErrBadStageOutput, hr.hop.Peer, len(out.F32), out.Dims)
	}
	return nil
}

// Step sends new tokens through every stage and returns the logits of the last one.
func (r *Route) Step(tokens []int32) ([]float32, error) {
	x := layers.NewI32(tokens, 1, len(tokens))
	for _, hr := range r.hops {
		out, err := r.step(hr, x)
		for err != nil {
			// A remote stage's refusal (BAD_INPUT included: a stage that lies about our input
			// must not stop the request) is failed over like any failure; the failovers are
			// bounded, so an input every holder refuses still ends in an error.
			if r.ctx.Err() != nil || hr.local != nil || r.failovers >= maxFailovers || errors.Is(err, ErrNoWitness) || errors.Is(err, errNoHolder) {
				return nil, err
			}
			if r.waitBusy(hr, err) {
				out, err = r.step(hr, x) // the same session: a refused step changed nothing
				continue
			}
			out, err = r.failover(hr, x, err)
		}
		hr.history = appendSeq(hr.history, x)
		if hr.remote != nil {
			hr.outputs = appendSeq(hr.outputs, out)
		}
		x = out
	}
	v := x.Dims[2]
	return x.F32[(len(tokens)-1)*v:], nil
}

// waitBusy waits out a stage's BUSY refusal when no other peer holds its span (another holder
// would serve now: failover), within maxBusyWait for the route in all. It reports whether to
// send the step again.
func (r *Route) waitBusy(hr *hopRunner, err error) bool {
	var re *p2p.RemoteError
	if hr.remote == nil || !errors.As(err, &re) || re.Code != "BUSY" || !(re.RetryAfter > 0 && re.RetryAfter <= maxBusyWait.Seconds()) {
		return false
	}
	wait := time.Duration(re.RetryAfter*float64(time.Second)) + 10*time.Millisecond
	if r.waited+wait > maxBusyWait {
		return false
	}
	exclude := maps.Clone(r.failed)
	exclude[hr.hop.Peer] = true
	if _, ok := r.p.replacementFor(r.ctx, hr.hop.Span, exclude); ok {
		return false
	}
	r.waited += wait
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		r.p.waits.Add(1)
		return true
	case <-r.ctx.Done():
		return false
	}
}

// failover replaces a failed stage with another holder of its span, replays the history to
// rebuild its cache, and runs the current input on it.
func (r *Route) failover(hr *hopRunner, x *layers.Tensor, cause error) (*layers.Tensor, error) {
	r.failed[hr.hop.Peer] = true
	r.failovers++
	r.p.onFailover()
	r.dropWitness(hr) // it took steps the replacement has not: a new one rebuilds with it
	if hr.remote != nil {
		hr.remote.Close()
		r.p.using.add(hr.hop.Peer, -1, 0)
		hr.remote = nil
	}
	next, ok := r.p.replacementFor(r.ctx, hr.hop.Span, r.failed)
	if !ok {
		return nil, fmt.Errorf("pipeline: stage %s failed (%v) and %w", hr.hop.Span, cause, errNoHolder)
	}
	logger().Warn("stage failed; switching peer", "span", hr.hop.Span.String(), "from", hr.hop.Peer, "to", next.Peer, "err", cause)
	hr.hop = next
	if err := r.open(hr); err != nil {
		return nil, err
	}
	hr.outputs = nil
	if hist := hr.history; hist != nil {
		hr.history = nil // the replay is the session's first step, for a witness too
		out, err := r.step(hr, hist)
		hr.history = hist
		if err != nil {
			return nil, err
		}
		hr.outputs = out // the new peer's answers for the history, for audits
	}
	return r.step(hr, x)
}

// Close ends every stage's session.
func (r *Route) Close() {
	for _, hr := range r.hops {
		if hr.local != nil {
			hr.local.Close()
		}
		if hr.remote != nil {
			hr.remote.Close()
			r.p.using.add(hr.hop.Peer, -1, 0)
		}
		r.dropWitness(hr)
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

// Hops is the route as it stands (after any failover).
func (r *Route) Hops() []Hop {
	out := make([]Hop, len(r.hops))
	for i, hr := range r.hops {
		out[i] = hr.hop
	}
	return out
}

// OpenRoute opens a session on each of the given hops, in order: a route the caller chose
// (an audit runs a span on one given peer). A stage that fails later is replaced as on a
// planned route.
func (p *Pipeline) OpenRoute(ctx context.Context, hops []Hop) (*Route, error) {
	r := &Route{p: p, ctx: ctx, failed: map[peer.ID]bool{}}
	for _, h := range hops {
		hr := &hopRunner{hop: h}
		if err := r.open(hr); err != nil {
			r.Close()
			return nil, err
		}
		r.hops = append(r.hops, hr)
	}
	return r, nil
}
