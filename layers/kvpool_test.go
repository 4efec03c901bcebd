package layers

import (
	"math"
	"sync"
	"testing"
)

// Sessions whose caches share the stage's pools keep their own bits while others come and
// go: five sequences decode side by side; one leaves early (the last slot's session is moved
// into its place), one steps a chunk of three positions alone in the middle (its cache moves
// to a larger pool while others step), and all grow through several cache sizes. Every output
// equals the sequence's own run on a stage of its own, and the pools are gone at the end.
func TestPooledCachesKeepEachSessionsBitsAsOthersComeAndGo(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	cfg.Context = 64
	sp := Span{First: 0, Last: cfg.Layers - 1}
	newStage := func() *Stage {
		st, err := NewStage(cfg, sp, cfg.InitParams(sp, 9))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const seqs, steps = 5, 40
	// The inputs of sequence i: a prompt of 2+i tokens, then one token a step, except
	// sequence 3, which sends three at once at step 15; sequence 1 stops after 10 steps.
	inputs := func(i int) [][]int32 {
		var out [][]int32
		prompt := make([]int32, 2+i)
		for j := range prompt {
			prompt[j] = int32(1 + (i*31+j*7)%200)
		}
		out = append(out, prompt)
		n := steps
		if i == 1 {
			n = 10
		}
		for s := 0; s < n; s++ {
			tok := []int32{int32(1 + (i*13+s*5)%200)}
			if i == 3 && s == 15 {
				tok = []int32{5, 6, 7}
			}
			out = append(out, tok)
		}
		return out
	}
	run := func(st *Stage, i int) [][]uint32 {
		ss, err := st.NewSession(1)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer ss.Close()
		var bits [][]uint32
		for _, in := range inputs(i) {
			out, err := ss.Step(NewI32(in, 1, len(in)))
			if err != nil {
				t.Error(err)
				return nil
			}
			row := make([]uint32, len(out.F32))
			for j, x := range out.F32 {
				row[j] = math.Float32bits(x)
			}
			bits = append(bits, row)
		}
		return bits
	}
	alone := make([][][]uint32, seqs)
	for i := range alone {
		alone[i] = run(newStage(), i)
	}
	shared := newStage()
	together := make([][][]uint32, seqs)
	var wg sync.WaitGroup
	for i := range together {
		wg.Add(1)
		go func() { defer wg.Done(); together[i] = run(shared, i) }()
	}
	wg.Wait()
	for i := range alone {
		if len(alone[i]) == 0 || len(alone[i]) != len(together[i]) {
			t.Fatalf("sequence %d: %d steps alone, %d together", i, len(alone[i]), len(together[i]))
		}
		for s := range alone[i] {
			for j := range alone[i][s] {
				if alone[i][s][j] != together[i][s][j] {
					t.Fatalf("sequence %d, step %d, value %d: alone %08x, together %08x", i, s, j, alone[i][s][j], together[i][s][j])
				}
			}
		}
	}
	if w := shared.BatchedWidest(); w < 2 {
		t.Fatalf("widest batch %d: no step was batched, the test compared nothing", w)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if len(shared.pools) != 0 {
		t.Fatalf("%d pools left after every session closed", len(shared.pools))
	}
}

// The pool keeps its slots packed: removing a middle slot moves the last session's values
// into it, and arranging a batch moves as few sessions as it can.
func TestPoolMovesTheLastSessionIntoAFreedSlot(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	sp := Span{First: 0, Last: 1}
	st, err := NewStage(cfg, sp, cfg.InitParams(sp, 9))
	if err != nil {
		t.Fatal(err)
	}
	if !st.poolsOn() {
		t.Fatal("the cpu backend keeps no pools")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.pool(16)
	var ss []*Session
	for i := range 5 {
		s := &Session{st: st, batch: 1, pooled: true}
		s.slot, s.cap = p.add(s), 16
		for l := range p.k {
			p.k[l][s.slot*p.slot] = float32(10*i + l)
			p.v[l][s.slot*p.slot+1] = float32(-10*i - l)
		}
		ss = append(ss, s)
	}
	mark := func(s *Session, i int) {
		t.Helper()
		for l := range p.k {
			if p.held[s.slot] != s || p.k[l][s.slot*p.slot] != float32(10*i+l) || p.v[l][s.slot*p.slot+1] != float32(-10*i-l) {
				t.Fatalf("session %d in slot %d: its values did not move with it", i, s.slot)
			}
		}
	}
	p.remove(ss[1].slot)
	if ss[4].slot != 1 || len(p.held) != 4 {
		t.Fatalf("after removing slot 1: the last session is in slot %d, %d slots held", ss[4].slot, len(p.held))
	}
	for _, i := range []int{0, 2, 3, 4} {
		mark(ss[i], i)
	}
	// Sessions 2 and 3 already sit side by side: nothing moves.
	if first := p.arrange([]*Session{ss[3], ss[2]}); first != 2 || ss[2].slot != 2 || ss[3].slot != 3 {
		t.Fatalf("arranging neighbours: first %d, slots %d and %d", first, ss[2].slot, ss[3].slot)
	}
	// Sessions 0 and 3 are apart: one of them moves next to the other.
	first := p.arrange([]*Session{ss[0], ss[3]})
	lo, hi := min(ss[0].slot, ss[3].slot), max(ss[0].slot, ss[3].slot)
	if lo != first || hi != first+1 {
		t.Fatalf("arranging 0 and 3: first %d, slots %d and %d", first, ss[0].slot, ss[3].slot)
	}
	for _, i := range []int{0, 2, 3, 4} {
		mark(ss[i], i)
	}
}
