package layers

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
)

// Batched decoding: one computation steps several sessions by one position each, whatever
// their positions. The projections and the MLP run on all their rows at once (the weights are
// read once for every session instead of once per session, which is what makes a batch
// cheaper than its sessions alone); so does attention, over the sessions' caches side by side
// in the stage's pool (kvpool.go), each row's new key and value written in place at its own
// position. Each row gets exactly the bits its session would get alone: every product is
// computed row by row (head by head) in the same order whatever the batch (the engine's
// contract), and attention over a cache grown larger for the batch only adds masked
// positions, whose weights are exactly zero.

// rowNodes are a batched step's extra inputs: per row, its position; per layer, the rows'
// caches. (Each row's mask is the stage's mask, [B,1,1,C].)
type rowNodes struct {
	at     []*Node // per row: its position, an int32 scalar
	k, v   []*Node // per layer: [B,H,hd,C] and [B,H,C,hd]
	nk, nv []*Node // the caches written
}

// rowsGraph: inputs params..., in [B,1] or [B,1,D], cos, sin [B,1,1,hd], pos [B], mask [B,C],
// then the key caches of every layer, then the value caches; outputs out [B,1,...], the key
// caches, the value caches.
func (s *Stage) rowsGraph(in []*Node, nParams, nLayers int) []*Node {
	n := s.nodes(in, nParams)
	b := n.in.Shape().Dimensions[0]
	pos, mask := in[nParams+3], in[nParams+4]
	n.mask = Reshape(mask, b, 1, 1, mask.Shape().Dimensions[1])
	r := &rowNodes{}
	for row := 0; row < b; row++ {
		r.at = append(r.at, Reshape(Slice(pos, AxisRange(row, row+1))))
	}
	base := nParams + 5
	r.k, r.v = in[base:base+nLayers], in[base+nLayers:base+2*nLayers]
	r.nk, r.nv = make([]*Node, nLayers), make([]*Node, nLayers)
	n.rows = r
	out := []*Node{n.forward()}
	out = append(out, r.nk...)
	return append(out, r.nv...)
}

// attentionRows is attention for a batched step: q, k, v of every row from one product each,
// each row's key and value written at its position, then every row against its own cache in
// one product for the scores and one for the values.
func (n *stageNodes) attentionRows(x *Node, i int) *Node {
	p := func(name string) *Node { return n.p[layerName(i, name)] }
	q := n.rope(n.heads(linear(x, p("wq")))) // [B,H,1,hd]
	kT := TransposeAllAxes(n.rope(n.heads(linear(x, p("wk")))), 0, 1, 3, 2)
	v := n.heads(linear(x, p("wv")))
	j := i - n.span.First
	r := n.rows
	g := x.Graph()
	zero := ScalarZero(g, dtypes.Int32)
	keys, values := r.k[j], r.v[j]
	for row, at := range r.at {
		one, idx := AxisRange(row, row+1), Const(g, int32(row))
		keys = DynamicUpdateSlice(keys, Slice(kT, one), []*Node{idx, zero, zero, at})
		values = DynamicUpdateSlice(values, Slice(v, one), []*Node{idx, zero, at, zero})
	}
	r.nk[j], r.nv[j] = keys, values
	scores := dot(q, []int{3}, []int{0, 1}, keys, []int{2}, []int{0, 1}) // [B,H,1,C]
	return n.attend(q, scores, values, x.Shape().Dimensions, p("wo"))
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
	cost time.Duration // the row's share of its batch's computation
	with *stepGroup    // the batch's computation
	lead bool
}

// stepGroup is one batched computation: the sessions it stepped (Session.LastBatch).
type stepGroup struct {
	id       uint64
	sessions []*Session
}

// stepGroups numbers the batched computations of the process.
var stepGroups atomic.Uint64

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
			ss.cost, ss.with = res.cost, res.with
			return res.out, res.err
		}
		if s.span.First == 0 && s.span.Last == s.cfg.Layers-1 {
			// Handed the lead by the batch that just ran, on a stage that is its sessions'
			// whole pipeline: that batch is on its way back. Run without it, the sessions
			// split into two batches that alternated for good (3 and 6 of 8, at 0.6-0.8x the
			// rate of one batch of 8). On a stage of part of the model, two groups that
			// alternate keep this stage and the others busy at once: the lead is taken as is.
			b.gather()
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
			r.done <- rowRes{out: out, err: err, cost: r.ss.cost}
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
	if !res.lead {
		ss.cost, ss.with = res.cost, res.with
	}
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
	s.mu.Lock()
	start := time.Now()
	// A session closed while its step waited (its requester gave up) takes no slot again.
	reqs = slices.DeleteFunc(reqs, func(r *rowReq) bool {
		if r.ss.closed {
			r.done <- rowRes{err: ErrSessionClosed}
		}
		return r.ss.closed
	})
	if len(reqs) == 0 {
		s.mu.Unlock()
		return
	}
	b, hd, l := len(reqs), s.cfg.HeadDim(), s.span.Len()
	// A batch shares one cache size (the extra positions stay masked), its sessions in
	// consecutive slots of that size's pool.
	c := 0
	for _, r := range reqs {
		c = max(c, r.ss.capFor(r.ss.pos+1))
	}
	for _, r := range reqs {
		r.ss.grow(c)
	}
	pool := s.pools[c]
	sessions := make([]*Session, len(reqs))
	for i, r := range reqs {
		sessions[i] = r.ss
	}
	first := pool.arrange(sessions)
	slices.SortFunc(reqs, func(a, b *rowReq) int { return a.ss.slot - b.ss.slot }) // row i is slot first+i
	ins := make([]*Tensor, b)
	for i, r := range reqs {
		ins[i] = r.in
	}
	x := concatRows(ins)
	pos := make([]int32, b)
	mask := make([]float32, b*c)
	cos, sin := make([]float32, b*hd), make([]float32, b*hd)
	for i, r := range reqs {
		p := r.ss.pos
		pos[i] = int32(p)
		for j := p + 1; j < c; j++ {
			mask[i*c+j] = maskedOut
		}
		rc, rs := ropeTables(hd, p, 1)
		copy(cos[i*hd:], rc.F32)
		copy(sin[i*hd:], rs.F32)
	}
	out, err := s.runRowsLocked(x, b, l, pool, first, pos, mask, cos, sin)
	s.mu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	width := out.Size() / b
	cost := time.Since(start) / time.Duration(b)
	with := &stepGroup{id: stepGroups.Add(1), sessions: sessions}
	for i, r := range reqs {
		r.ss.pos++
		dims := append([]int{1}, out.Dims[1:]...)
		r.done <- rowRes{out: NewF32(out.F32[i*width:(i+1)*width], dims...), cost: cost, with: with}
	}
}

// runRowsLocked runs the batched computation over b slots of pool from first. Called with
// s.mu held.
func (s *Stage) runRowsLocked(x *Tensor, b, l int, pool *kvPool, first int, pos []int32, mask, cos, sin []float32) (*Tensor, error) {
	hd, c := s.cfg.HeadDim(), pool.c
	if s.rows == nil {
		var err error
		n := len(s.params.Specs)
		if s.rows, err = NewExec(s.be, func(in []*Node) []*Node { return s.rowsGraph(in, n, l) }); err != nil {
			return nil, err
		}
		s.rows.SetMaxCache(maxCompiled)
	}
	args := make([]any, 0, len(s.params.Values)+5+2*l)
	for _, pt := range s.paramTensors() {
		args = append(args, pt)
	}
	args = append(args, s.onBackend(x), s.onBackend(NewF32(cos, b, 1, 1, hd)), s.onBackend(NewF32(sin, b, 1, 1, hd)),
		s.onBackend(NewI32(pos, b)), s.onBackend(NewF32(mask, b, c)))
	caches, err := pool.donate(first, b)
	if err != nil {
		return nil, err
	}
	outs, err := s.run(s.rows, append(args, caches...))
	if err != nil {
		return nil, err
	}
	if err := pool.settle(first, b, outs[1:]); err != nil {
		return nil, err
	}
	return fromBackend(outs[0]), nil
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
