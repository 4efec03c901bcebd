package layers

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ErrContextFull is returned when a session would grow past the model's context.
var ErrContextFull = errors.New("layers: context full")

// ErrSessionClosed is returned by a closed session.
var ErrSessionClosed = errors.New("layers: session closed")

// Session is one sequence being decoded on a stage: it keeps the keys and values of every
// position seen so far (the KV cache), so each new token costs one position of compute instead
// of the whole prefix. The buffers grow with the sequence (a power of two of positions, at
// least minCache, at most the model's context), so an opened session costs nothing until it is
// used and attention runs over the filled part of the cache rounded up, not the whole context.
// A session is not safe for concurrent use; different sessions are.
type Session struct {
	st      *Stage
	inPlace bool // the backend writes the cache in place (DynamicUpdateSlice)
	batch   int
	pos     int
	cost    time.Duration // the last Step's compute time (StepCost)
	with    *stepGroup    // the batched computation the last Step ran in (nil: alone)
	cap     int           // positions the buffers hold
	k, v    []*tensors.Tensor
	pooled  bool // one sequence: the cache is slot `slot` of the stage's pool of size cap
	slot    int
	closed  bool
	ended   atomic.Bool // closed, readable by the stage's batcher
}

// minCache is the smallest cache a used session holds, in positions.
const minCache = 16

// NewSession starts an empty sequence of the given batch size on the stage.
func (s *Stage) NewSession(batch int) (*Session, error) {
	if batch < 1 || batch > 64 {
		return nil, fmt.Errorf("%w: session batch %d (want 1-64)", ErrBadInput, batch)
	}
	s.mu.Lock()
	if s.dec == nil {
		var err error
		n, l := len(s.params.Specs), s.span.Len()
		if s.dec, err = NewExec(s.be, func(in []*Node) []*Node { return s.decodeGraph(in, n, l) }); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.dec.SetMaxCache(maxCompiled)
	}
	s.mu.Unlock()
	return &Session{st: s, batch: batch, inPlace: s.updatesInPlace(), pooled: batch == 1 && s.poolsOn()}, nil
}

// CacheBytes is what the session's KV cache holds now, in bytes.
func (ss *Session) CacheBytes() int64 {
	cfg := ss.st.cfg
	return int64(ss.batch) * int64(cfg.Heads*cfg.HeadDim()) * int64(ss.cap) * 4 * 2 * int64(ss.st.span.Len())
}

// capFor is the cache size the session needs to hold n positions: what it holds, or the
// next power of two from minCache, at most the model's context.
func (ss *Session) capFor(n int) int {
	if n <= ss.cap {
		return ss.cap
	}
	c := max(minCache, ss.cap)
	for c < n {
		c *= 2
	}
	return min(c, ss.st.cfg.Context)
}

// grow makes the cache buffers hold at least n positions, copying what they hold. A pooled
// session moves to the pool of its new size; the stage's mu must be held.
func (ss *Session) grow(n int) {
	if n <= ss.cap {
		return
	}
	c := ss.capFor(n)
	h, hd := ss.st.cfg.Heads, ss.st.cfg.HeadDim()
	if ss.pooled {
		ss.moveTo(c, h, hd)
		return
	}
	// Keys are [B,H,hd,C] (rows of positions), values [B,H,C,hd] (blocks of positions).
	resize := func(old []*tensors.Tensor, rows, unit int, dims ...int) []*tensors.Tensor {
		out := make([]*tensors.Tensor, ss.st.span.Len())
		for i := range out {
			data, t := ss.newCache(shapes.Make(dtypes.Float32, dims...))
			if old != nil {
				ss.readCache(old[i], func(prev []float32) { widen(data, prev, rows, unit, ss.cap, c) })
				old[i].FinalizeAll()
			}
			out[i] = t
		}
		return out
	}
	ss.k = resize(ss.k, ss.batch*h*hd, 1, ss.batch, h, hd, c)
	ss.v = resize(ss.v, ss.batch*h, hd, ss.batch, h, c, hd)
	ss.cap = c
}

// moveTo takes a slot in the stage's pool of c positions, copying the positions the session
// holds from its slot in the smaller pool, which it frees. Called with the stage's mu held.
func (ss *Session) moveTo(c, h, hd int) {
	st := ss.st
	to := st.pool(c)
	if from := st.pools[ss.cap]; ss.cap > 0 && from != nil {
		// Sessions that step together grow together: room for all of the smaller pool's at
		// once, not a reallocation (and a copy of every slot) at each doubling.
		to.reserve(len(to.held) + len(from.held))
	}
	j := to.add(ss)
	if ss.cap > 0 {
		from := st.pools[ss.cap]
		i, old := ss.slot, ss.cap
		for l := range to.k {
			// Keys [H,hd,C]: h*hd rows of positions; values [H,C,hd]: h blocks of positions.
			widen(to.k[l][j*to.slot:], from.k[l][i*from.slot:], h*hd, 1, old, c)
			widen(to.v[l][j*to.slot:], from.v[l][i*from.slot:], h, hd, old, c)
		}
		st.leavePool(old, i)
	}
	ss.slot, ss.cap = j, c
}

// widen copies a cache of old positions into one of c: rows of old positions of unit values
// each, the rows c positions apart in dst.
func widen(dst, src []float32, rows, unit, old, c int) {
	for r := 0; r < rows; r++ {
		copy(dst[r*c*unit:r*c*unit+old*unit], src[r*old*unit:(r+1)*old*unit])
	}
}

// leavePool frees slot i of the pool of c positions, and the pool with its last session.
// Called with s.mu held.
func (s *Stage) leavePool(c, i int) {
	if p := s.pools[c]; p != nil && p.remove(i) {
		delete(s.pools, c)
		s.keepSpare(p)
	}
}

// newCache makes a zeroed cache buffer: on the backend itself when it shares its buffers
// with Go (the project's does), so the computation it is donated to takes it as it is; a
// tensor made in Go memory and handed over was copied once more, and read back once more
// at the next growth (four copies of the cache each time it doubled, 15% of a batch-8
// decode of 256 tokens).
func (ss *Session) newCache(shape shapes.Shape) ([]float32, *tensors.Tensor) {
	be := ss.st.be
	if ss.inPlace && be.HasSharedBuffers() {
		if buf, flat, err := be.NewSharedBuffer(0, shape); err == nil {
			if t, err := tensors.FromBuffer(be, buf); err == nil {
				return flat.([]float32), t
			}
		}
	}
	t := tensors.FromShape(shape)
	var data []float32
	tensors.MustMutableFlatData(t, func(d []float32) { data = d }) // a local tensor's own slice
	return data, t
}

// readCache calls read with the values of a cache tensor, read in place where they live.
func (ss *Session) readCache(t *tensors.Tensor, read func([]float32)) {
	be := ss.st.be
	if t.IsOnDevice(0) && be.HasSharedBuffers() {
		if buf, err := t.Buffer(be, 0); err == nil {
			if flat, err := be.BufferData(buf); err == nil {
				read(flat.([]float32))
				return
			}
		}
	}
	tensors.MustConstFlatData(t, read)
}

// decodeGraph: inputs params..., in, cos, sin, mask, write, K..., V...; outputs out, K'..., V'...
func (s *Stage) decodeGraph(in []*Node, nParams, nLayers int) []*Node {
	n := s.nodes(in, nParams)
	if s.updatesInPlace() {
		n.pos = in[nParams+4]
	} else {
		n.write = in[nParams+4]
	}
	base := nParams + 5
	n.cacheK, n.cacheV = in[base:base+nLayers], in[base+nLayers:base+2*nLayers]
	n.newK, n.newV = make([]*Node, nLayers), make([]*Node, nLayers)
	out := []*Node{n.forward()}
	out = append(out, n.newK...)
	return append(out, n.newV...)
}

// Pos is the number of positions the session holds.
func (ss *Session) Pos() int { return ss.pos }

// Batch is the session's batch size.
func (ss *Session) Batch() int { return ss.batch }

// Step runs the stage on the next positions of the sequence: token IDs [B,T] on the first
// stage, an activation [B,T,D] otherwise; it returns the stage's output for those positions
// only. T can be the whole prompt (prefill) or one token.
func (ss *Session) Step(in *Tensor) (*Tensor, error) {
	if ss.closed {
		return nil, ErrSessionClosed
	}
	st := ss.st
	ss.with = nil
	b, t, err := st.checkInput(in)
	if err != nil {
		return nil, err
	}
	if b != ss.batch {
		return nil, fmt.Errorf("%w: batch %d in a session of batch %d", ErrBadInput, b, ss.batch)
	}
	c := st.cfg.Context
	if ss.pos+t > c {
		return nil, fmt.Errorf("%w: %d positions held, %d more do not fit in %d", ErrContextFull, ss.pos, t, c)
	}
	if t == 1 && ss.pooled {
		// One position of one sequence: stepped together with the stage's other sessions.
		return st.stepRow(ss, in)
	}
	return ss.stepAlone(in, t)
}

// StepCost is the compute time the session's last Step took: its share of a batched step's
// computation (the batch's time over its rows), or its own computation, without the time it
// waited for the stage or for other sessions to join it. Budgets charge this, not the wall
// time of Step.
func (ss *Session) StepCost() time.Duration { return ss.cost }

// LastBatch names the batched computation the session's last Step ran in: an ID no other
// computation of the process has, and the sessions it stepped (this one among them). A step
// computed alone has none (0, nil). A stage signs the answers of one computation together.
func (ss *Session) LastBatch() (id uint64, with []*Session) {
	if ss.with == nil {
		return 0, nil
	}
	return ss.with.id, ss.with.sessions
}

// stepAlone runs t positions of the session in a computation of its own.
func (ss *Session) stepAlone(in *Tensor, t int) (*Tensor, error) {
	st := ss.st
	c := st.cfg.Context
	// Pad the chunk to a bucket length so a few compiled graphs serve every prompt length; the
	// padded rows write past the sequence, where later steps overwrite them before the mask
	// lets anyone see them.
	tb := bucket(t, c-ss.pos)
	st.mu.Lock()
	defer st.mu.Unlock()
	start := time.Now() // the step's cost: not the wait for the stage
	defer func() { ss.cost = time.Since(start) }()
	if ss.closed {
		return nil, ErrSessionClosed
	}
	ss.grow(ss.pos + tb)
	c = ss.cap
	padded := padSeq(in, tb)
	cos, sin := ropeTables(st.cfg.HeadDim(), ss.pos, tb)
	mask := make([]float32, tb*c)
	for i := 0; i < tb; i++ {
		for j := ss.pos + i + 1; j < c; j++ {
			mask[i*c+j] = maskedOut
		}
	}
	where := NewI32([]int32{int32(ss.pos)})
	if !ss.inPlace {
		write := make([]float32, tb*c)
		for i := 0; i < tb; i++ {
			write[i*c+ss.pos+i] = 1
		}
		where = NewF32(write, tb, c)
	}
	args := make([]any, 0, len(st.params.Values)+5+2*st.span.Len())
	for _, pt := range st.paramTensors() {
		args = append(args, pt)
	}
	args = append(args, st.onBackend(padded), st.onBackend(cos), st.onBackend(sin),
		st.onBackend(NewF32(mask, tb, c)), st.onBackend(where))
	// The cache is handed over: the computation writes the new positions into it.
	caches, err := ss.donate()
	if err != nil {
		ss.closeLocked()
		return nil, err
	}
	outs, err := st.run(st.dec, append(args, caches...))
	if err == nil && ss.pooled {
		err = st.pools[ss.cap].settle(ss.slot, 1, outs[1:])
	}
	if err != nil {
		if ss.inPlace {
			ss.closeLocked() // the donated cache may be half written
		}
		return nil, err
	}
	if !ss.pooled {
		l := len(ss.k)
		ss.k, ss.v = outs[1:1+l], outs[1+l:1+2*l]
	}
	ss.pos += t
	return trimSeq(fromBackend(outs[0]), t), nil
}

// donate is the session's cache as a computation's arguments: its pool slot, its own
// buffers donated, or (on a backend that does not write in place) its tensors as they are.
func (ss *Session) donate() ([]any, error) {
	if ss.pooled {
		return ss.st.pools[ss.cap].donate(ss.slot, 1)
	}
	var out []any
	for _, t := range append(slices.Clip(ss.k), ss.v...) {
		if !ss.inPlace {
			out = append(out, t)
			continue
		}
		d, err := DonateTensorBuffer(t, ss.st.be, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// updatesInPlace tells whether the stage's backend writes the KV cache in place.
func (s *Stage) updatesInPlace() bool {
	return s.be.Capabilities().Operations[backends.OpTypeDynamicUpdateSlice]
}

// Close frees the session's buffers.
func (ss *Session) Close() {
	ss.st.mu.Lock()
	defer ss.st.mu.Unlock()
	ss.closeLocked()
}

// closeLocked is Close with the stage's mu held.
func (ss *Session) closeLocked() {
	if ss.closed {
		return
	}
	ss.closed = true
	ss.ended.Store(true)
	if ss.pooled && ss.cap > 0 {
		ss.st.leavePool(ss.cap, ss.slot)
		ss.cap = 0
	}
	for _, t := range append(ss.k, ss.v...) {
		t.FinalizeAll()
	}
	ss.k, ss.v = nil, nil
}

// maxCompiled bounds how many graph shapes one Exec keeps compiled.
const maxCompiled = 64

// bucket rounds a chunk length up to a power of two, without passing room.
func bucket(t, room int) int {
	b := 1
	for b < t {
		b *= 2
	}
	if b > room {
		return t
	}
	return b
}

// padSeq pads a [B,T] or [B,T,D] tensor with zeros along T to length tb.
func padSeq(in *Tensor, tb int) *Tensor {
	b, t := in.Dims[0], in.Dims[1]
	if t == tb {
		return in
	}
	row := 1
	for _, d := range in.Dims[2:] {
		row *= d
	}
	dims := append([]int{b, tb}, in.Dims[2:]...)
	if in.I32 != nil {
		out := make([]int32, b*tb*row)
		for i := 0; i < b; i++ {
			copy(out[i*tb*row:], in.I32[i*t*row:(i+1)*t*row])
		}
		return NewI32(out, dims...)
	}
	out := make([]float32, b*tb*row)
	for i := 0; i < b; i++ {
		copy(out[i*tb*row:], in.F32[i*t*row:(i+1)*t*row])
	}
	return NewF32(out, dims...)
}

// trimSeq keeps the first t positions of a [B,T,...] float tensor.
func trimSeq(x *Tensor, t int) *Tensor {
	b, tb := x.Dims[0], x.Dims[1]
	if t == tb {
		return x
	}
	row := 1
	for _, d := range x.Dims[2:] {
		row *= d
	}
	out := make([]float32, 0, b*t*row)
	for i := 0; i < b; i++ {
		out = append(out, x.F32[i*tb*row:i*tb*row+t*row]...)
	}
	return NewF32(out, append([]int{b, t}, x.Dims[2:]...)...)
}
