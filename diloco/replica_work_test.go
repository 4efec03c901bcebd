package diloco

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

func TestCancelWhileAggregatingReleasesTheRound(t *testing.T) {
	n := newMemNet()
	agg := n.join(t, "a", 1, func(cfg *ReplicaConfig) { cfg.RoundTimeout = time.Minute })
	n.join(t, "b", 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agg.r.RunRound(ctx, agg.w.train(5)) }()
	for !agg.r.State().Collecting {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled round: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a cancelled aggregation did not return")
	}
	if agg.r.State().Collecting {
		t.Fatal("the abandoned round is still collecting")
	}
}

// keptWeights are toy weights that keep the work done during a round (LocalWeights).
type keptWeights struct{ *toyWeights }

func (k keptWeights) SetLocal(p *layers.Params) error { return k.SetParams(p) }

// Inner steps taken while a round runs are not lost: the weights after the round are the new
// theta_0 plus that work, and the next round's pseudo-gradient carries it.
func TestWorkDuringTheRoundIsKept(t *testing.T) {
	n := newMemNet()
	var during, after *layers.Params
	m := n.join(t, "a", 1, func(cfg *ReplicaConfig) {
		w := cfg.Weights.(*toyWeights)
		cfg.Weights = keptWeights{w}
		cfg.Tamper = func(*layers.Params) { // runs once the round's weights are read
			during = w.Params()
			w.train(3)
			after = w.Params()
		}
	})
	steps := m.w.train(5)
	if err := m.r.RunRound(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	_, theta0, _ := m.r.Snapshot()
	want := Rebase(theta0, during, after)
	got := m.w.Params()
	if got.Hash() != want.Hash() || got.Hash() == theta0.Hash() {
		t.Fatalf("weights after the round: %v, want theta_0 %v plus the work %v", got.Values[0][:3], theta0.Values[0][:3], want.Values[0][:3])
	}
	pg, err := PseudoGradient(theta0, got)
	if err != nil || Norm(pg) == 0 {
		t.Fatalf("the next round's pseudo-gradient carries nothing: %v", err)
	}
}

// The wait for late replicas adapts to the round's work: once rounds were timed, a replica
// that never contributes costs about the minimum wait, not the round timeout.
func TestDeadlineAdaptsToTheRoundsWork(t *testing.T) {
	n := newMemNet()
	adaptive := func(cfg *ReplicaConfig) { cfg.RoundTimeout, cfg.MinDeadline = 30*time.Second, 300*time.Millisecond }
	ms := []member{n.join(t, "a", 1, adaptive), n.join(t, "b", 2, adaptive), n.join(t, "c", 3, adaptive)}
	if d := ms[0].r.Deadline(); d != 30*time.Second {
		t.Fatalf("before any round: %v, want the round timeout", d)
	}
	for range 3 {
		if errs := roundAll(ms, 5); errs["a"] != nil || errs["b"] != nil || errs["c"] != nil {
			t.Fatal(errs)
		}
	}
	if d := ms[0].r.Deadline(); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("after rounds of milliseconds: %v, want about a second", d)
	}
	start := time.Now()
	errs := roundAll(ms[:2], 5) // c stays connected and silent
	if errs["a"] != nil || errs["b"] != nil {
		t.Fatal(errs)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the round waited %v for a silent replica", took)
	}
	if st := ms[0].r.State(); !slices.Equal(st.LastUsed, []string{"a", "b"}) {
		t.Fatalf("used %v", st.LastUsed)
	}
}

// A catch-up to the next round keeps the replica's work since its own theta_0: it moves onto
// the adopted one. From further behind, the work was done on weights the span has left and is
// dropped (carried over, a joiner's hundreds of steps got its contribution excluded).
func TestCatchUpKeepsLocalWork(t *testing.T) {
	for _, tc := range []struct {
		round int64
		keeps bool
	}{{1, true}, {7, false}} {
		n := newMemNet()
		m := n.join(t, "a", 1, func(cfg *ReplicaConfig) { cfg.Weights = keptWeights{cfg.Weights.(*toyWeights)} })
		steps := m.w.train(4)
		_, old, _ := m.r.Snapshot()
		worked := m.w.Params()
		ahead := old.Clone()
		for i := range ahead.Values[0] {
			ahead.Values[0][i] += 0.5
		}
		if err := m.r.Adopt(tc.round, ahead, nil, steps); err != nil {
			t.Fatal(err)
		}
		want := ahead
		if tc.keeps {
			want = Rebase(ahead, old, worked)
		}
		if got := m.w.Params(); got.Hash() != want.Hash() || tc.keeps && got.Hash() == ahead.Hash() {
			t.Fatalf("after a catch-up to round %d: %v, want %v", tc.round, got.Values[0][:3], want.Values[0][:3])
		}
		if st := m.r.State(); st.Round != tc.round || st.Hash != ahead.Hash() {
			t.Fatalf("state %+v", st)
		}
	}
}

// A contribution far larger than the recent rounds' is refused whatever else the round
// holds: here the only other contribution carries no work (norm 0), which left the pairwise
// check nothing to compare with.
func TestContributionOverTheRecentRoundsIsRefused(t *testing.T) {
	n := newMemNet()
	var poison atomic.Bool
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 2, func(cfg *ReplicaConfig) {
		cfg.Weights = keptWeights{cfg.Weights.(*toyWeights)}
		cfg.Tamper = func(p *layers.Params) {
			if poison.Load() {
				for _, v := range p.Values {
					for i := range v {
						v[i] *= 1000
					}
				}
			}
		}
	})}
	for range 3 {
		if errs := roundAll(ms, 5); errs["a"] != nil || errs["b"] != nil {
			t.Fatal(errs)
		}
	}
	poison.Store(true)
	ms[1].w.train(5) // a takes no inner step: its pseudo-gradient is zero
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { errA = ms[0].r.RunRound(context.Background(), ms[0].w.steps) })
	wg.Go(func() { errB = ms[1].r.RunRound(context.Background(), ms[1].w.steps) })
	wg.Wait()
	if errA != nil || errB == nil {
		t.Fatalf("a: %v; b: %v (want b refused)", errA, errB)
	}
	if ex := ms[0].r.Exclusions(); len(ex) == 0 || ex[0].Peer != "b" || !strings.Contains(ex[0].Reason, "recent rounds") || !ex[0].Fault() {
		t.Fatalf("exclusions %+v", ex)
	}
	if st := ms[0].r.State(); !slices.Equal(st.LastUsed, []string{"a"}) {
		t.Fatalf("used %v", st.LastUsed)
	}
	// b catches up to a's round: the work its refused contribution carried is dropped, not
	// moved onto the new theta_0 (carried round after round, it kept b excluded for good).
	round, theta, velocity := ms[0].r.Snapshot()
	if err := ms[1].r.Adopt(round, theta, velocity, ms[1].w.steps); err != nil {
		t.Fatal(err)
	}
	if got := ms[1].w.Params(); got.Hash() != theta.Hash() {
		t.Fatalf("after its refused round b kept its work: %v, theta_0 %v", got.Values[0][:3], theta.Values[0][:3])
	}
}

// A theta_0 a replica took alone with a pseudo-gradient scaled 1000x is refused by a replica
// one round behind; one an honest round could reach is taken.
func TestPoisonedCheckpointIsImplausible(t *testing.T) {
	n := newMemNet()
	m := n.join(t, "a", 1, nil)
	m.w.train(5)
	_, theta0, _ := m.r.Snapshot()
	pg, err := PseudoGradient(theta0, m.w.Params())
	if err != nil {
		t.Fatal(err)
	}
	step := func(scale float32) *layers.Params {
		out := theta0.Clone()
		for i, v := range out.Values {
			for j := range v {
				v[j] -= 0.7 * 1.9 * scale * pg.Values[i][j] // a first outer step, Nesterov 0.9
			}
		}
		return out
	}
	if err := m.r.Plausible(1, step(1)); err != nil {
		t.Fatalf("an honest round's theta_0: %v", err)
	}
	if err := m.r.Plausible(1, step(1000)); err == nil {
		t.Fatal("a theta_0 moved by a 1000x pseudo-gradient was plausible")
	}
	if err := m.r.Plausible(200, step(1000)); err != nil {
		t.Fatalf("200 rounds ahead, the same distance is plausible: %v", err)
	}
}

// Rebase without work is theta_0 bit for bit, negative zeros included.
func TestRebaseWithoutWorkKeepsTheBits(t *testing.T) {
	theta0 := vecParams(float32(math.Copysign(0, -1)), 1.5, -2)
	snap := vecParams(0.25, 0.5, 0.75)
	if got := Rebase(theta0, snap, snap.Clone()); got.Hash() != theta0.Hash() {
		t.Fatalf("rebase without work: %v, want %v", got.Values[0], theta0.Values[0])
	}
}

// A contribution to a replica that never begins aggregating the round (it does not train) is
// sent on once that replica's deadline has passed, not held until the contributor's timeout:
// the contributor goes on to the next replica (here itself) and the round closes.
func TestContributionToAnIdleAggregatorIsHandedBack(t *testing.T) {
	n := newMemNet()
	short := func(cfg *ReplicaConfig) { cfg.RoundTimeout = 200 * time.Millisecond }
	n.join(t, "a", 1, short) // the aggregator by ID, which never runs the round
	b := n.join(t, "b", 2, short)
	steps := b.w.train(5)
	start := time.Now()
	if err := b.r.RunRound(context.Background(), steps); err != nil {
		t.Fatalf("a round whose first aggregator is idle: %v", err)
	}
	if st := b.r.State(); st.Round != 1 {
		t.Fatalf("after the idle aggregator: %+v", st)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("handed back after %v", took)
	}
	if c := n.replica("a").collect; c != nil && len(c.got) != 0 {
		t.Fatalf("the idle aggregator kept the contribution: %v", c.got)
	}
}

// A replica that does not train (Settings.Idle) sends a contributor on at once, whatever its
// learning rate: held until the begin deadline, every trainer that put it first lost that wait
// each round, and refused for its idle learning rate, they never rounded at all.
func TestIdleReplicaSendsContributorsOnAtOnce(t *testing.T) {
	n := newMemNet()
	long := func(cfg *ReplicaConfig) { cfg.RoundTimeout = 5 * time.Second }
	n.join(t, "a", 1, func(cfg *ReplicaConfig) {
		long(cfg)
		cfg.Settings = func() Settings {
			return Settings{Compression: CompressNone, OuterLR: 0.7, OuterMomentum: 0.9, InnerLR: 1e-4, Idle: true}
		}
	})
	b := n.join(t, "b", 2, long)
	steps := b.w.train(5)
	start := time.Now()
	if err := b.r.RunRound(context.Background(), steps); err != nil {
		t.Fatalf("a round whose first aggregator does not train: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the idle replica held the contributor %v (its begin deadline is over 5 s)", took)
	}
	if st := b.r.State(); st.Round != 1 || len(st.LastUsed) != 1 {
		t.Fatalf("after the idle replica: %+v", st)
	}
	if ex := n.replica("a").Exclusions(); len(ex) != 0 {
		t.Fatalf("the idle replica refused the trainer: %+v", ex)
	}
}

// A replica whose inner steps run at another learning rate is refused with that reason (its
// pseudo-gradients would otherwise be excluded as outliers round after round, with a reason
// that names only their size); at the same rate both are used.
func TestContributionAtAnotherInnerRateIsRefused(t *testing.T) {
	n := newMemNet()
	rate := func(lr float32) func(*ReplicaConfig) {
		return func(cfg *ReplicaConfig) {
			cfg.Settings = func() Settings {
				return Settings{Compression: CompressNone, OuterLR: 0.7, OuterMomentum: 0.9, InnerLR: lr}
			}
		}
	}
	ms := []member{n.join(t, "a", 1, rate(3e-3)), n.join(t, "b", 2, rate(1e-4))}
	errs := roundAll(ms, 5)
	if errs["a"] != nil || errs["b"] == nil || !strings.Contains(errs["b"].Error(), "learning rate") {
		t.Fatalf("a: %v; b: %v (want b refused for its learning rate)", errs["a"], errs["b"])
	}
	if ex := ms[0].r.Exclusions(); len(ex) == 0 || ex[0].Peer != "b" || !strings.Contains(ex[0].Reason, "learning rate") {
		t.Fatalf("exclusions %+v", ex)
	}
	n2 := newMemNet()
	same := []member{n2.join(t, "a", 1, rate(3e-3)), n2.join(t, "b", 2, rate(3e-3))}
	if errs := roundAll(same, 5); errs["a"] != nil || errs["b"] != nil {
		t.Fatal(errs)
	}
	if st := same[0].r.State(); len(st.LastUsed) != 2 {
		t.Fatalf("used %v", st.LastUsed)
	}
}

// A failed round's reason stays in the replica's state until a round succeeds.
func TestFailureReasonLastsUntilARoundSucceeds(t *testing.T) {
	n := newMemNet()
	a := n.join(t, "a", 1, nil)
	steps := a.w.train(5)
	a.r.Fail(steps, errors.New("diloco: excluded from round 0: another learning rate"))
	if st := a.r.State(); st.Failed != 1 || !strings.Contains(st.LastFailure, "learning rate") || st.StepsAtEnd != steps {
		t.Fatalf("after a failure: %+v", st)
	}
	if err := a.r.RunRound(context.Background(), a.w.train(5)); err != nil {
		t.Fatal(err)
	}
	if st := a.r.State(); st.LastFailure != "" || st.Round != 1 {
		t.Fatalf("after a round that succeeded: %+v", st)
	}
}
