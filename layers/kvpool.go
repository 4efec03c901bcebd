package layers

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The KV caches of a stage's single-sequence sessions live side by side, one pool per cache
// size: slot i of a layer's keys is keys[i*slot:(i+1)*slot]. A batched step of B sessions in
// consecutive slots hands each layer's B caches to one computation as a single [B,H,hd,C]
// tensor, written in place, so the step is a batch-B session's step: one product for every
// row's scores, one for its values, no copy and no per-row op but the writes of the new
// position. (Each session's cache a tensor of its own, a batch of 8 took a row slice, 2
// writes and 2 products per row and layer: 1.5-1.8x the time of one batch-8 session on the
// small preset's half model, now 1.2-1.4x.) A session stepping alone reads its own slot as a
// [1,H,hd,C] tensor, as before.
//
// Slots are kept packed (a session that leaves gets the last slot's session moved into its
// place) and a batch's sessions are moved next to each other before it runs (sessions that
// step together stay so, and are not moved again), so any set of sessions of one size is one
// range. A pool is freed when its last session leaves. Every method is called with the
// stage's mu held.
type kvPool struct {
	c       int         // positions per slot
	heads   int         // H
	headDim int         // hd
	slot    int         // values per slot and layer: H*hd*c
	k, v    [][]float32 // per layer of the span: slots x slot values
	held    []*Session  // by slot; len is the slots in use
	zeroed  int         // the slots from this one on hold only zeros
	be      backends.Backend
}

// wrapF32 is what a backend must offer for pooled caches (the project's cpu backend does).
type wrapF32 interface {
	WrapF32(flat []float32, s shapes.Shape) (backends.Buffer, error)
}

// poolsOn tells whether the stage keeps its single-sequence caches in pools.
func (s *Stage) poolsOn() bool {
	_, ok := s.be.(wrapF32)
	return ok && s.updatesInPlace()
}

// spareBytes bounds the memory of the empty pools a stage keeps for its next sessions: a
// pool made anew is memory the system hands over a page fault at a time (about 12 us a page
// here), 1,000 of them for 8 sessions' caches of 256 positions on the small preset.
const spareBytes = 64 << 20

// pool is the stage's pool of caches of c positions: the one in use, the spare one kept
// when its last session left, or a new one.
func (s *Stage) pool(c int) *kvPool {
	if p := s.pools[c]; p != nil {
		return p
	}
	if s.pools == nil {
		s.pools = map[int]*kvPool{}
	}
	if p := s.spare[c]; p != nil {
		delete(s.spare, c)
		s.pools[c] = p
		return p
	}
	h, hd, l := s.cfg.Heads, s.cfg.HeadDim(), s.span.Len()
	p := &kvPool{c: c, heads: h, headDim: hd, slot: h * hd * c, k: make([][]float32, l), v: make([][]float32, l), be: s.be}
	s.pools[c] = p
	return p
}

// keepSpare keeps an emptied pool for the next sessions of its size, within spareBytes for
// all the stage's spares (the largest go first when over). Called with s.mu held.
func (s *Stage) keepSpare(p *kvPool) {
	if s.spare == nil {
		s.spare = map[int]*kvPool{}
	}
	s.spare[p.c] = p
	for {
		total, biggest := 0, 0
		for c, q := range s.spare {
			total += q.bytes()
			if biggest == 0 || q.bytes() > s.spare[biggest].bytes() {
				biggest = c
			}
		}
		if total <= spareBytes {
			return
		}
		delete(s.spare, biggest)
	}
}

// bytes is the memory of the pool's arrays.
func (p *kvPool) bytes() int { return 2 * len(p.k) * p.slots() * p.slot * 4 }

// slots is how many sessions the pool's arrays hold.
func (p *kvPool) slots() int {
	if len(p.k) == 0 || p.slot == 0 {
		return 0
	}
	return len(p.k[0]) / p.slot
}

// resize reallocates the arrays for n slots, keeping the slots in use.
func (p *kvPool) resize(n int) {
	keep := len(p.held) * p.slot
	for l := range p.k {
		k, v := make([]float32, n*p.slot), make([]float32, n*p.slot)
		copy(k, p.k[l][:keep])
		copy(v, p.v[l][:keep])
		p.k[l], p.v[l] = k, v
	}
	p.zeroed = len(p.held)
}

// reserve makes room for n slots in all.
func (p *kvPool) reserve(n int) {
	if n > p.slots() {
		p.resize(n)
	}
}

// add gives ss the next slot, cleared (positions a session has not written are read as
// masked positions, whose weight is exactly 0 only against finite values).
func (p *kvPool) add(ss *Session) int {
	i := len(p.held)
	if i == p.slots() {
		p.resize(max(1, 2*i))
	}
	if i < p.zeroed {
		for l := range p.k {
			clear(p.k[l][i*p.slot : (i+1)*p.slot])
			clear(p.v[l][i*p.slot : (i+1)*p.slot])
		}
	}
	p.zeroed = max(p.zeroed, i+1)
	p.held = append(p.held, ss)
	return i
}

// remove frees slot i, moving the last slot's session into it. It reports whether the pool
// is empty.
func (p *kvPool) remove(i int) bool {
	last := len(p.held) - 1
	if i != last {
		p.move(last, i)
	}
	p.held[last] = nil
	p.held = p.held[:last]
	if n := p.slots(); n > 8 && len(p.held) <= n/4 {
		p.resize(n / 2)
	}
	return len(p.held) == 0
}

// move copies slot from's values and session into slot to.
func (p *kvPool) move(from, to int) {
	for l := range p.k {
		copy(p.k[l][to*p.slot:(to+1)*p.slot], p.k[l][from*p.slot:(from+1)*p.slot])
		copy(p.v[l][to*p.slot:(to+1)*p.slot], p.v[l][from*p.slot:(from+1)*p.slot])
	}
	p.held[to] = p.held[from]
	p.held[to].slot = to
}

// swap exchanges slots i and j, values and sessions.
func (p *kvPool) swap(i, j int) {
	if i == j {
		return
	}
	tmp := make([]float32, p.slot)
	for l := range p.k {
		for _, a := range [][]float32{p.k[l], p.v[l]} {
			x, y := a[i*p.slot:(i+1)*p.slot], a[j*p.slot:(j+1)*p.slot]
			copy(tmp, x)
			copy(x, y)
			copy(y, tmp)
		}
	}
	p.held[i], p.held[j] = p.held[j], p.held[i]
	p.held[i].slot, p.held[j].slot = i, j
}

// arrange puts the sessions (of this pool) in consecutive slots, moving as few as it can
// (sessions that step together keep their slots from step to step), and returns the first.
func (p *kvPool) arrange(ss []*Session) int {
	lo := len(p.held)
	for _, s := range ss {
		lo = min(lo, s.slot)
	}
	lo = min(lo, len(p.held)-len(ss))
	hi := lo + len(ss)
	member := make([]bool, len(p.held))
	for _, s := range ss {
		member[s.slot] = true
	}
	free := lo
	for _, s := range ss {
		if s.slot >= lo && s.slot < hi {
			continue
		}
		for member[free] {
			free++
		}
		member[s.slot], member[free] = false, true
		p.swap(s.slot, free)
	}
	return lo
}

// donate hands slots first..first+n-1 of every layer to a computation that writes them in
// place: backend buffers over the pool's arrays, keys [n,H,hd,C] of every layer, then values
// [n,H,C,hd].
func (p *kvPool) donate(first, n int) ([]any, error) {
	out := make([]any, 0, 2*len(p.k))
	lo, hi := first*p.slot, (first+n)*p.slot
	wrap := p.be.(wrapF32)
	for _, kv := range []struct {
		a     [][]float32
		shape shapes.Shape
	}{
		{p.k, shapes.Make(dtypes.Float32, n, p.heads, p.headDim, p.c)},
		{p.v, shapes.Make(dtypes.Float32, n, p.heads, p.c, p.headDim)},
	} {
		for l := range kv.a {
			buf, err := wrap.WrapF32(kv.a[l][lo:hi:hi], kv.shape)
			if err != nil {
				return nil, err
			}
			t, err := tensors.FromBuffer(p.be, buf)
			if err != nil {
				return nil, err
			}
			d, err := DonateTensorBuffer(t, p.be, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// settle takes a computation's written caches (keys of every layer, then values) for slots
// first..first+n-1: the backend wrote them in place, into the pool's arrays; were one
// written elsewhere, it is copied in.
func (p *kvPool) settle(first, n int, outs []*tensors.Tensor) error {
	if len(outs) < 2*len(p.k) {
		return fmt.Errorf("layers: %d cache outputs for %d layers", len(outs), len(p.k))
	}
	lo, hi := first*p.slot, (first+n)*p.slot
	for i, t := range outs[:2*len(p.k)] {
		dst := p.k
		if i >= len(p.k) {
			dst = p.v
		}
		want := dst[i%len(p.k)][lo:hi]
		buf, err := t.Buffer(p.be, 0)
		if err != nil {
			return err
		}
		flat, err := p.be.BufferData(buf)
		if err != nil {
			return err
		}
		got, ok := flat.([]float32)
		if !ok || len(got) != len(want) {
			return fmt.Errorf("layers: cache output %d is %T of %d values, want %d", i, flat, len(got), len(want))
		}
		if &got[0] != &want[0] {
			copy(want, got)
		}
		t.FinalizeAll()
	}
	return nil
}
