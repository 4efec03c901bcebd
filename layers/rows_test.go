package layers

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// Sessions stepped together in batched steps get the bits they get alone: six sequences of
// different prompt lengths (so different positions and cache sizes in every batch), decoded
// concurrently on two stages, against each decoded on its own.
func TestBatchedStepsGiveEachSessionItsOwnBits(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	cfg.Context = 128
	var stages []*Stage
	for _, sp := range []Span{{0, 1}, {2, 3}} {
		st, err := NewStage(cfg, sp, cfg.InitParams(sp, 5))
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, st)
	}
	const seqs, steps = 6, 40
	decode := func(i int) [][]float32 {
		pipe, err := NewPipeline(stages)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer pipe.Close()
		prompt := Encode("To be or not"[:3+i]) // 3..8 tokens
		logits, err := pipe.Step(prompt)
		var out [][]float32
		for s := 0; s < steps && err == nil; s++ {
			out = append(out, logits)
			best := 0
			for j, x := range logits {
				if x > logits[best] {
					best = j
				}
			}
			logits, err = pipe.Step([]int32{int32(best)})
		}
		if err != nil {
			t.Error(err)
		}
		return out
	}
	alone := make([][][]float32, seqs)
	for i := range alone {
		alone[i] = decode(i)
	}
	together := make([][][]float32, seqs)
	var wg sync.WaitGroup
	for i := range together {
		wg.Add(1)
		go func() { defer wg.Done(); together[i] = decode(i) }()
	}
	wg.Wait()
	for i := range alone {
		if len(together[i]) != steps || len(alone[i]) != steps {
			t.Fatalf("sequence %d: %d and %d steps", i, len(alone[i]), len(together[i]))
		}
		for s := range alone[i] {
			for j := range alone[i][s] {
				if math.Float32bits(alone[i][s][j]) != math.Float32bits(together[i][s][j]) {
					t.Fatalf("sequence %d, step %d, logit %d: alone %v, batched %v", i, s, j, alone[i][s][j], together[i][s][j])
				}
			}
		}
	}
	w0, w1 := stages[0].BatchedWidest(), stages[1].BatchedWidest()
	t.Logf("widest batched step: %d and %d sessions", w0, w1)
	if w0 < 2 && w1 < 2 {
		t.Fatal("no step was batched: the test compared nothing")
	}
}

// Sessions decoding side by side whose steps come back at staggered times (each from its own
// round trip through other stages) still step together: the leader waits for the sessions
// active lately, not only the last batch's. Four sessions, each step 1.5 ms after its last
// one ended, started 0.3 ms apart.
func TestStaggeredSessionsStillStepTogether(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	sp := Span{First: 0, Last: cfg.Layers - 1}
	st, err := NewStage(cfg, sp, cfg.InitParams(sp, 5))
	if err != nil {
		t.Fatal(err)
	}
	const seqs, steps = 4, 30
	var wg sync.WaitGroup
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss, err := st.NewSession(1)
			if err != nil {
				t.Error(err)
				return
			}
			defer ss.Close()
			time.Sleep(time.Duration(i) * 300 * time.Microsecond)
			for range steps {
				if _, err := ss.Step(NewI32([]int32{BOS}, 1, 1)); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(1500 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	mean := st.BatchedMean()
	t.Logf("sessions per step: %.2f (widest %d)", mean, st.BatchedWidest())
	if mean < 2.5 {
		t.Fatalf("%d staggered sessions took %.2f sessions a step: they were split into smaller batches", seqs, mean)
	}
}

// A step's cost is its own compute: not the time it waited for the stage, and in a batched
// step its share of the batch (the budgets charge peers this; a peer's 8 generations were each
// charged the whole batch and the waits).
func TestStepCostIsTheSessionsShareOfTheCompute(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	st, err := NewStage(cfg, Span{0, cfg.Layers - 1}, cfg.InitParams(Span{0, cfg.Layers - 1}, 3))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if _, err := ss.Step(NewI32(Encode("To be"), 1, 6)); err != nil { // compiles the graph
		t.Fatal(err)
	}
	// Held out of the stage for 200 ms, the step costs its computation only.
	st.mu.Lock()
	go func() { time.Sleep(200 * time.Millisecond); st.mu.Unlock() }()
	start := time.Now()
	if _, err := ss.Step(NewI32(Encode(" or not")[1:], 1, 7)); err != nil {
		t.Fatal(err)
	}
	if wall, cost := time.Since(start), ss.StepCost(); wall < 200*time.Millisecond || cost <= 0 || cost > wall-150*time.Millisecond {
		t.Fatalf("a step that waited for the stage: wall %v, cost %v", wall, cost)
	}
	// Eight sessions stepping together are charged a share each: in all, well under the sum
	// of their steps' wall times (each of which is the whole batch's).
	const n, steps = 8, 30
	var mu sync.Mutex
	var walls, costs time.Duration
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := st.NewSession(1)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			s.Step(NewI32([]int32{BOS}, 1, 1))
			for range steps {
				t0 := time.Now()
				if _, err := s.Step(NewI32([]int32{BOS}, 1, 1)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				walls += time.Since(t0)
				costs += s.StepCost()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if costs <= 0 || costs > walls/2 || st.BatchedWidest() < 2 {
		t.Fatalf("8 sessions' steps cost %v in all, their walls %v (widest batch %d)", costs, walls, st.BatchedWidest())
	}
	t.Logf("8 sessions' steps: cost %v, wall %v, mean batch %.1f", costs, walls, st.BatchedMean())
}

// A session's last step names its batched computation: every session of that computation
// names the same one and the same sessions, itself among them; a step computed alone (a
// prompt) names none.
func TestLastBatchNamesTheComputationsSessions(t *testing.T) {
	withBackend(t, BackendCPU)
	cfg := tinyConfig()
	sp := Span{First: 0, Last: cfg.Layers - 1}
	st, err := NewStage(cfg, sp, cfg.InitParams(sp, 5))
	if err != nil {
		t.Fatal(err)
	}
	const seqs = 4
	var sessions []*Session
	for range seqs {
		ss, err := st.NewSession(1)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		if _, err := ss.Step(NewI32([]int32{BOS, 70, 71}, 1, 3)); err != nil {
			t.Fatal(err)
		}
		if id, with := ss.LastBatch(); id != 0 || with != nil {
			t.Fatalf("a prompt's step names computation %d of %d sessions", id, len(with))
		}
		sessions = append(sessions, ss)
	}
	reporters := map[uint64][]*Session{}
	lists := map[uint64][]*Session{}
	// Rounds in which every session steps at once, until some of them ran in one computation
	// (a round's steps may also each run alone, on a machine that schedules them one by one).
	for round := 0; len(reporters) < 3; round++ {
		if round == cfg.Context-4 {
			t.Fatalf("%d batched computations in %d rounds of %d sessions stepping at once", len(reporters), round, seqs)
		}
		var wg sync.WaitGroup
		errs := make([]error, seqs)
		for i, ss := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = ss.Step(NewI32([]int32{BOS}, 1, 1))
			}()
		}
		wg.Wait()
		for i, ss := range sessions {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if id, with := ss.LastBatch(); id != 0 {
				reporters[id] = append(reporters[id], ss)
				lists[id] = with
			}
		}
	}
	for id, rs := range reporters {
		if len(rs) != len(lists[id]) {
			t.Fatalf("computation %d: %d sessions name it, its list has %d", id, len(rs), len(lists[id]))
		}
		for _, ss := range rs {
			if !slices.Contains(lists[id], ss) {
				t.Fatalf("computation %d: a session that names it is not in its list", id)
			}
		}
	}
}
