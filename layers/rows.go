package layers

import (
	"math"
	"slices"
	"sync"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Batched decoding: one computation steps several sessions by one position each, whatever
// their positions. The projections and the MLP run on all their rows at once (the weights are
// read once for every session instead of once per session, which is what makes a batch
// cheaper than its sessions alone); attention runs row by row, each over its own session's
// cache, written in place. Each row gets exactly the bits its session would get alone: every
// product is computed row by row in the same order whatever the batch (the engine's
// contract), and attention over a cache grown larger for the batch only adds masked
// positions, whose weights are exactly zero.

// rowNodes are a batched step's extra inputs: per row, its position, its mask and its
// caches per layer.
type rowNodes struct {
	pos    *Node     // int32 [B]
	mask   *Node     // [B, C]
	k, v   [][]*Node // [layer][row]: [1,H,hd,C] and [1,H,C,hd]
	nk, nv [][]*Node // the caches written
}

// rowsGraph: inputs params..., in [B,1] or [B,1,D], cos, sin [B,1,1,hd], pos [B], mask [B,C],
// then per layer the B key caches, then per layer the B value caches; outputs out [B,1,...],
// the key caches, the value caches (same order).
func (s *Stage) rowsGraph(in []*Node, nParams, nLayers int) []*Node {
	n := s.nodes(in, nParams)
	b := n.in.Shape().Dimensions[0]
	r := &rowNodes{pos: in[nParams+3], mask: in[nParams+4]}
	n.mask = nil
	base := nParams + 5
	for l := 0; l < nLayers; l++ {
		r.k = append(r.k, in[base+l*b:base+(l+1)*b])
		r.v = append(r.v, in[base+(nLayers+l)*b:base+(nLayers+l+1)*b])
	}
	r.nk, r.nv = make([][]*Node, nLayers), make([][]*Node, nLayers)
	n.rows = r
	out := []*Node{n.forward()}
	for _, l := range r.nk {
		out = append(out, l...)
	}
	for _, l := range r.nv {
		out = append(out, l...)
	}
	return out
}

// attentionRows is attention for a batched step: q, k, v of every row from one product each,
// then each row against its own cache.
func (n *stageNodes) attentionRows(x *Node, i int) *Node {
	p := func(name string) *Node { return n.p[layerName(i, name)] }
	q := n.rope(n.heads(linear(x, p("wq")))) // [B,H,1,hd]
	k := n.rope(n.heads(linear(x, p("wk"))))
	v := n.heads(linear(x, p("wv")))
	j := i - n.span.First
	b := x.Shape().Dimensions[0]
	r := n.rows
	r.nk[j], r.nv[j] = make([]*Node, b), make([]*Node, b)
	outs, scores := make([]*Node, b), make([]*Node, b)
	scale := 1 / math.Sqrt(float64(n.cfg.HeadDim()))
	for row := 0; row < b; row++ {
		one := AxisRange(row, row+1)
		pos := Reshape(Slice(r.pos, one))
		zero := ScalarZero(x.Graph(), pos.DType())
		kT := DynamicUpdateSlice(r.k[j][row], TransposeAllAxes(Slice(k, one), 0, 1, 3, 2), []*Node{zero, zero, zero, pos})
		vv := DynamicUpdateSlice(r.v[j][row], Slice(v, one), []*Node{zero, zero, pos, zero})
		r.nk[j][row], r.nv[j][row] = kT, vv
		scores[row] = dot(Slice(q, one), []int{3}, []int{0, 1}, kT, []int{2}, []int{0, 1}) // [1,H,1,C]
	}
	// The rows' caches share one size: their scores are scaled, masked and normalised
	// together (each row's softmax over its own positions, the same bits as alone).
	c := r.mask.Shape().Dimensions[1]
	all := MulScalar(Concatenate(scores, 0), scale) // [B,H,1,C]
	all = Add(all, Reshape(r.mask, b, 1, 1, c))
	probs := Softmax(all, -1)
	for row := 0; row < b; row++ {
		outs[row] = dot(Slice(probs, AxisRange(row, row+1)), []int{3}, []int{0, 1}, r.nv[j][row], []int{2}, []int{0, 1}) // [1,H,1,hd]
	}
	out := Concatenate(outs, 0)
	out = TransposeAllAxes(out, 0, 2, 1, 3)
	out = Reshape(out, x.Shape().Dimensions...)
	return linear(out, p("wo"))
}

// maxRows bounds how many sessions one batched step takes.
const maxRows = 16

// rowReq is one session's single-position step waiting for a batched computation.
type rowReq struct {
	ss   *Session
	in   *Tensor
	done chan rowRes // buffered: the result, or the order to lead the next batch
}

type rowRes struct {
	out  *Tensor
	err  error
	lead bool
}

// batcher gathers single-position steps of a stage's sessions. Steps that come while a batch
// runs queue and run together next, led by the first of them. A step that finds the stage idle
// runs at once, unless other sessions that are decoding are due: sessions decoding side by
// side come back one after the other (each from its round trip through the other stages and
// its requester), and the first to arrive would otherwise run alone and split them into
// batches of one or two, step after step. So the leader waits for the sessions active lately
// (each stepped within a few of its own step intervals), at most half the shortest of those
// intervals and maxGather: batching never changes a row's bits, only when it runs.
type batcher struct {
	mu      sync.Mutex
	queue   []*rowReq
	running bool
	widest  int // the most sessions one step has taken (tests, metrics)
	steps   int // batched steps run, and the session steps they took
	rows    int
	active  map[*Session]*stepPace // sessions stepping lately
	arrived chan struct{}          // a step queued (buffered 1)
}

// stepPace is when a session last stepped and how far apart its steps come.
type stepPace struct {
	last     time.Time
	interval time.Duration // smoothed; 0 until the second step
}

// maxGather bounds how long a leader waits for the active sessions.
const maxGather = 2 * time.Millisecond

// note records a step of ss arriving now. Called with b.mu held.
func (b *batcher) note(ss *Session, now time.Time) {
	if b.active == nil {
		b.active = map[*Session]*stepPace{}
	}
	p := b.active[ss]
	if p == nil {
		b.active[ss] = &stepPace{last: now}
		return
	}
	gap := now.Sub(p.last)
	if p.interval == 0 {
		p.interval = gap
	} else {
		p.interval = (3*p.interval + gap) / 4
	}
	p.last = now
}

// due lists the sessions worth waiting for: open, not queued, and active lately (stepped
// within four of their intervals); wait is how long, at most, to wait for them. Sessions
// that ended or went quiet are forgotten. Called with b.mu held.
func (b *batcher) due(now time.Time) (missing int, wait time.Duration) {
	wait = maxGather
	for ss, p := range b.active {
		age := now.Sub(p.last)
		switch {
		case ss.ended.Load():
			delete(b.active, ss)
		case p.interval == 0 || age > 4*p.interval: // pace unknown, or gone quiet
			if age > time.Second {
				delete(b.active, ss)
			}
		case !slices.ContainsFunc(b.queue, func(r *rowReq) bool { return r.ss == ss }):
			missing++
			wait = min(wait, p.interval/2)
		}
	}
	return missing, wait
}

// gather waits, the lead taken, until the queue holds every session due, or the wait is
// over. Called without b.mu.
func (b *batcher) gather() {
	start := time.Now()
	for {
		b.mu.Lock()
		now := time.Now()
		missing, wait := b.due(now)
		full := len(b.queue) >= maxRows
		b.mu.Unlock()
		left := wait - now.Sub(start)
		if missing == 0 || full || left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-b.arrived:
		case <-t.C:
		}
		t.Stop()
	}
}

// BatchedWidest is the most sessions one batched step of the stage has taken.
func (s *Stage) BatchedWidest() int {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return s.batch.widest
}

// BatchedMean is how many sessions a single-position step of the stage took on average.
func (s *Stage) BatchedMean() float64 {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	if s.batch.steps == 0 {
		return 0
	}
	return float64(s.batch.rows) / float64(s.batch.steps)
}

// stepRow runs one position of ss through the stage together with other sessions' steps.
func (s *Stage) stepRow(ss *Session, in *Tensor) (*Tensor, error) {
	req := &rowReq{ss: ss, in: in, done: make(chan rowRes, 1)}
	b := &s.batch
	b.mu.Lock()
	if b.arrived == nil {
		b.arrived = make(chan struct{}, 1)
	}
	b.queue = append(b.queue, req)
	b.note(ss, time.Now())
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	if b.running {
		b.mu.Unlock()
		if res := <-req.done; !res.lead {
			return res.out, res.err
		}
	} else {
		b.running = true
		b.mu.Unlock()
		b.gather()
	}
	// Leading: run batches until this step's is done, then hand the lead on.
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxRows)
		reqs := slices.Clone(b.queue[:n])
		b.queue = slices.Delete(b.queue, 0, n)
		b.widest = max(b.widest, n)
		b.steps++
		b.rows += n
		b.mu.Unlock()
		mine := slices.Contains(reqs, req)
		if len(reqs) == 1 { // alone: the single-session computation, without the row split
			r := reqs[0]
			out, err := r.ss.stepAlone(r.in, 1)
			r.done <- rowRes{out: out, err: err}
		} else {
			s.runRows(reqs)
		}
		if mine {
			break
		}
	}
	b.mu.Lock()
	if len(b.queue) > 0 {
		next := b.queue[0]
		next.done <- rowRes{lead: true}
	} else {
		b.running = false
	}
	b.mu.Unlock()
	res := <-req.done
	return res.out, res.err
}

// runRows steps every request's session by one position in one computation and answers each.
func (s *Stage) runRows(reqs []*rowReq) {
	fail := func(err error) {
		for _, r := range reqs {
			r.ss.Close() // its cache was handed to the computation
			r.done <- rowRes{err: err}
		}
	}
	c := 0
	for _, r := range reqs {
		r.ss.grow(r.ss.pos + 1)
		c = max(c, r.ss.cap)
	}
	b, hd, l := len(reqs), s.cfg.HeadDim(), s.span.Len()
	pos := make([]int32, b)
	mask := make([]float32, b*c)
	cos, sin := make([]float32, b*hd), make([]float32, b*hd)
	ins := make([]*Tensor, b)
	for i, r := range reqs {
		r.ss.grow(c) // a batch shares one cache size; the extra positions stay masked
		p := r.ss.pos
		pos[i] = int32(p)
		for j := p + 1; j < c; j++ {
			mask[i*c+j] = maskedOut
		}
		rc, rs := ropeTables(hd, p, 1)
		copy(cos[i*hd:], rc.F32)
		copy(sin[i*hd:], rs.F32)
		ins[i] = r.in
	}
	x := concatRows(ins)
	s.mu.Lock()
	if s.rows == nil {
		var err error
		n := len(s.params.Specs)
		if s.rows, err = NewExec(s.be, func(in []*Node) []*Node { return s.rowsGraph(in, n, l) }); err != nil {
			s.mu.Unlock()
			fail(err)
			return
		}
		s.rows.SetMaxCache(maxCompiled)
	}
	args := make([]any, 0, len(s.params.Values)+5+2*l*b)
	for _, pt := range s.paramTensors() {
		args = append(args, pt)
	}
	args = append(args, toBackend(x), toBackend(NewF32(cos, b, 1, 1, hd)), toBackend(NewF32(sin, b, 1, 1, hd)),
		toBackend(NewI32(pos, b)), toBackend(NewF32(mask, b, c)))
	for _, kv := range []func(*Session) []*tensors.Tensor{func(ss *Session) []*tensors.Tensor { return ss.k }, func(ss *Session) []*tensors.Tensor { return ss.v }} {
		for layer := 0; layer < l; layer++ {
			for _, r := range reqs {
				d, err := DonateTensorBuffer(kv(r.ss)[layer], s.be, 0)
				if err != nil {
					s.mu.Unlock()
					fail(err)
					return
				}
				args = append(args, d)
			}
		}
	}
	outs, err := s.run(s.rows, args)
	s.mu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	out := fromBackend(outs[0])
	width := out.Size() / b
	for i, r := range reqs {
		ss := r.ss
		for layer := 0; layer < l; layer++ {
			ss.k[layer] = outs[1+layer*b+i]
			ss.v[layer] = outs[1+(l+layer)*b+i]
		}
		ss.pos++
		dims := append([]int{1}, out.Dims[1:]...)
		r.done <- rowRes{out: NewF32(out.F32[i*width:(i+1)*width], dims...)}
	}
}

// concatRows stacks [1,T,...] inputs into [B,T,...].
func concatRows(ins []*Tensor) *Tensor {
	dims := append([]int{len(ins)}, ins[0].Dims[1:]...)
	if ins[0].I32 != nil {
		var v []int32
		for _, t := range ins {
			v = append(v, t.I32...)
		}
		return NewI32(v, dims...)
	}
	var v []float32
	for _, t := range ins {
		v = append(v, t.F32...)
	}
	return NewF32(v, dims...)
}
