package layers

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// Sessions whose caches share the stage's pools keep their own bits while others come and
// go: five sequences decode side by side; one leaves early (the last slot's session is moved
// into its place), one steps a chunk of three positions alone in the middle (its cache moves
// to a larger pool while others step), and all grow through several cache sizes. Every output
// equals the sequence's own run on a stage of its own; at the end the pools are kept as spares,
// and a second run on them gives the same bits.
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
	spares := func() map[*kvPool]bool {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if len(shared.pools) != 0 {
			t.Fatalf("%d pools in use after every session closed", len(shared.pools))
		}
		out, total := map[*kvPool]bool{}, 0
		for _, p := range shared.spare {
			out[p] = true
			total += p.bytes()
		}
		if len(out) == 0 || total > spareBytes {
			t.Fatalf("%d spare pools of %d bytes kept", len(out), total)
		}
		return out
	}
	// The emptied pools are kept, and the next sessions take them (their slots cleared):
	// the same bits again.
	before := spares()
	for i := range together {
		wg.Add(1)
		go func() { defer wg.Done(); together[i] = run(shared, i) }()
	}
	wg.Wait()
	for i := range alone {
		for s := range alone[i] {
			for j := range alone[i][s] {
				if alone[i][s][j] != together[i][s][j] {
					t.Fatalf("again on the kept pools: sequence %d, step %d, value %d: alone %08x, together %08x", i, s, j, alone[i][s][j], together[i][s][j])
				}
			}
		}
	}
	reused := 0
	for p := range spares() {
		if before[p] {
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("no kept pool was taken again")
	}
}

// The pool keeps its slots packed: removing a middle slot moves the last session's values
// into it, and arranging a batch moves as few sessions as it can.
func TestPoolMovesTheLastSessionIntoAFreedSlot(t *testing.T) {
	st, p := lockedPool(t)
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

// The pool's bookkeeping under a long random run of joins, leaves and batch arrangements (the
// slots grow from 1 to dozens and shrink back): after every change each session's slot holds
// that session's values in every layer, the slots in use are exactly the sessions held, and an
// arranged batch is one range starting where arrange says.
func TestPoolKeepsEachSessionsValuesThroughRandomChanges(t *testing.T) {
	st, p := lockedPool(t)
	r := rand.New(rand.NewPCG(4, 2))
	mark := map[*Session]float32{}
	var live []*Session
	next := float32(1)
	fill := func(s *Session) {
		for l := range p.k {
			for _, a := range [][]float32{p.k[l], p.v[l]} {
				slot := a[s.slot*p.slot : (s.slot+1)*p.slot]
				for i := range slot {
					slot[i] = mark[s] + float32(l)/8
				}
			}
		}
	}
	check := func(step int, what string) {
		t.Helper()
		if len(p.held) != len(live) {
			t.Fatalf("step %d (%s): %d slots held for %d sessions", step, what, len(p.held), len(live))
		}
		for _, s := range live {
			if s.slot < 0 || s.slot >= len(p.held) || p.held[s.slot] != s {
				t.Fatalf("step %d (%s): a session says slot %d, which holds another", step, what, s.slot)
			}
			for l := range p.k {
				want := mark[s] + float32(l)/8
				for _, a := range [][]float32{p.k[l], p.v[l]} {
					for _, i := range []int{0, p.slot / 2, p.slot - 1} {
						if got := a[s.slot*p.slot+i]; got != want {
							t.Fatalf("step %d (%s): slot %d layer %d value %d is %v, its session's is %v", step, what, s.slot, l, i, got, want)
						}
					}
				}
			}
		}
	}
	most := 0
	for step := 0; step < 3000; step++ {
		grow := step < 1500
		switch op := r.IntN(10); {
		case op < 4 && grow || op < 2 || len(live) == 0: // join
			s := &Session{st: st, batch: 1, pooled: true, cap: 16}
			s.slot = p.add(s)
			for l := range p.k { // a new session's positions read as zeros until it writes them
				for _, a := range [][]float32{p.k[l], p.v[l]} {
					for i, x := range a[s.slot*p.slot : (s.slot+1)*p.slot] {
						if x != 0 {
							t.Fatalf("step %d: a joining session's slot %d holds %v at layer %d value %d", step, s.slot, x, l, i)
						}
					}
				}
			}
			mark[s], next = next, next+1
			fill(s)
			live = append(live, s)
			check(step, "join")
		case op < 7: // leave
			i := r.IntN(len(live))
			p.remove(live[i].slot)
			live = append(live[:i], live[i+1:]...)
			check(step, "leave")
		default: // a batch of some of them
			n := 1 + r.IntN(len(live))
			batch := make([]*Session, 0, n)
			for _, j := range r.Perm(len(live))[:n] {
				batch = append(batch, live[j])
			}
			first := p.arrange(batch)
			for _, s := range batch {
				if s.slot < first || s.slot >= first+n {
					t.Fatalf("step %d: arranged batch of %d from slot %d has a session in slot %d", step, n, first, s.slot)
				}
			}
			check(step, "arrange")
		}
		most = max(most, p.slots())
	}
	t.Logf("slots grew to %d and ended at %d for %d sessions", most, p.slots(), len(live))
	if most < 16 {
		t.Fatalf("the run never grew the pool past %d slots: it tested little", most)
	}
}

// lockedPool is a two-layer stage's pool of 16 positions, the stage locked until the test ends.
func lockedPool(t *testing.T) (*Stage, *kvPool) {
	t.Helper()
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
	t.Cleanup(st.mu.Unlock)
	return st, st.pool(16)
}
