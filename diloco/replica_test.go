package diloco

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/layers"
)

// The round on an in-memory network: replicas exchange contributions by calling each other's
// Accept, sign with ed25519 keys, and see each other's rounds at once. Each replica trains a
// toy weight vector towards its own target (its data shard) between rounds, so every round
// has real, different pseudo-gradients. Rounds take milliseconds.

type memNet struct {
	mu       sync.Mutex
	replicas map[string]*Replica
	keys     map[string]ed25519.PrivateKey
	down     map[string]bool // unreachable: contributions to it fail, it counts as disconnected
	silent   map[string]bool // connected but never answers (a stuck replica)
	// stale[observer][peer], when set, is the round observer believes peer is at (a report
	// not arrived yet).
	stale map[string]map[string]int64
}

func newMemNet() *memNet {
	return &memNet{replicas: map[string]*Replica{}, keys: map[string]ed25519.PrivateKey{}, down: map[string]bool{}, silent: map[string]bool{}}
}

func (n *memNet) replica(id string) *Replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.replicas[id]
}

func (n *memNet) ids() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for id := range n.replicas {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// memPeer is one replica's view of the network: its transport, membership and signer.
type memPeer struct {
	net  *memNet
	self string
}

func (p memPeer) Contribute(ctx context.Context, to string, s Submission) (Outcome, []byte, error) {
	p.net.mu.Lock()
	down, silent, r := p.net.down[to], p.net.silent[to], p.net.replicas[to]
	p.net.mu.Unlock()
	if down || r == nil {
		return Outcome{}, nil, fmt.Errorf("%s unreachable", to)
	}
	if silent {
		<-ctx.Done()
		return Outcome{}, nil, ctx.Err()
	}
	return r.Accept(ctx, p.self, s)
}

func (p memPeer) Replicas(context.Context) []string { return p.net.ids() }

func (p memPeer) Round(peer string) (int64, bool) {
	p.net.mu.Lock()
	at, stale := p.net.stale[p.self][peer]
	p.net.mu.Unlock()
	if stale {
		return at, true
	}
	if r := p.net.replica(peer); r != nil {
		return r.State().Round, true
	}
	return 0, false
}

func (p memPeer) Connected(peer string) bool {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	return !p.net.down[peer] && p.net.replicas[peer] != nil
}

func (p memPeer) Sign(msg []byte) ([]byte, error) {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	return ed25519.Sign(p.net.keys[p.self], msg), nil
}

func (p memPeer) Verify(peer string, msg, sig []byte) error {
	p.net.mu.Lock()
	key, ok := p.net.keys[peer]
	p.net.mu.Unlock()
	if !ok || !ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig) {
		return errors.New("bad signature")
	}
	return nil
}

// toyWeights is a weight vector trained towards a target.
type toyWeights struct {
	mu     sync.Mutex
	p      *layers.Params
	target []float32
	steps  int64
}

func (w *toyWeights) Params() *layers.Params {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p.Clone()
}

func (w *toyWeights) SetParams(p *layers.Params) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p = p.Clone()
	return nil
}

// train takes h inner steps of gradient descent on |w - target|^2 / 2.
func (w *toyWeights) train(h int) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for range h {
		for i, x := range w.p.Values[0] {
			w.p.Values[0][i] = x - 0.1*(x-w.target[i])
		}
		w.steps++
	}
	return w.steps
}

type member struct {
	id string
	r  *Replica
	w  *toyWeights
}

const toyDims = 64

// join adds a replica whose shard pulls the weights towards target.
func (n *memNet) join(t *testing.T, id string, target float32, tweak func(*ReplicaConfig)) member {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, id)
	start := make([]float32, toyDims)
	tv := make([]float32, toyDims)
	for i := range tv {
		tv[i] = target + float32(i)/toyDims
	}
	w := &toyWeights{p: vecParams(start...), target: tv}
	p := memPeer{net: n, self: id}
	cfg := ReplicaConfig{Self: id, Specs: w.p.Specs, Weights: w, Transport: p, Membership: p, Signer: p,
		Settings:     func() Settings { return Settings{Compression: CompressNone, OuterLR: 0.7, OuterMomentum: 0.9} },
		RoundTimeout: 2 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	r := NewReplica(cfg)
	n.mu.Lock()
	n.replicas[id], n.keys[id] = r, ed25519.NewKeyFromSeed(seed)
	n.mu.Unlock()
	return member{id: id, r: r, w: w}
}

// roundAll has every member train h steps and run the round, concurrently; it returns each
// member's error.
func roundAll(ms []member, h int) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			steps := m.w.train(h)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := m.r.RunRound(ctx, steps)
			if err != nil {
				m.r.Skip(steps, true)
			}
			mu.Lock()
			errs[m.id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func TestReplicasAgreeBitForBitEveryRound(t *testing.T) {
	n := newMemNet()
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 2, nil), n.join(t, "c", 3, nil)}
	start := time.Now()
	for round := int64(1); round <= 10; round++ {
		for id, err := range roundAll(ms, 5) {
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, id, err)
			}
		}
		want := ms[0].r.State()
		for _, m := range ms {
			st := m.r.State()
			if st.Round != round || st.Hash != want.Hash || m.w.Params().Hash() != st.Hash {
				t.Fatalf("round %d: %s at round %d hash %s (weights %s), %s at %s", round, m.id, st.Round, short(st.Hash),
					short(m.w.Params().Hash()), ms[0].id, short(want.Hash))
			}
			if len(st.LastUsed) != 3 {
				t.Fatalf("round %d used %v, want all three", round, st.LastUsed)
			}
		}
	}
	// Averaging shards 1, 2 and 3 pulls the weights towards 2.
	if w := ms[0].w.Params().Values[0][0]; w < 1.5 || w > 2.5 {
		t.Fatalf("weight %.3f after 10 rounds, want near the mean target 2", w)
	}
	t.Logf("10 rounds of 3 replicas in %v", time.Since(start))
}

func TestPoisonedContributionIsExcludedAndFlagged(t *testing.T) {
	n := newMemNet()
	scale := func(cfg *ReplicaConfig) {
		cfg.Tamper = func(p *layers.Params) {
			for i := range p.Values[0] {
				p.Values[0][i] *= 1000
			}
		}
	}
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 1, nil), n.join(t, "z", 1, scale)}
	for range 3 {
		errs := roundAll(ms, 5)
		if errs["a"] != nil || errs["b"] != nil {
			t.Fatalf("honest replicas: %v", errs)
		}
	}
	a, b := ms[0].r.State(), ms[1].r.State()
	if a.Hash != b.Hash || slices.Contains(a.LastUsed, "z") {
		t.Fatalf("honest replicas disagree or used the poisoned one: %+v %+v", a, b)
	}
	ex := ms[0].r.Exclusions()
	if !slices.ContainsFunc(ex, func(e Exclusion) bool { return e.Peer == "z" && strings.Contains(e.Reason, "norm") }) {
		t.Fatalf("exclusions %+v, want z flagged for its norm", ex)
	}
	if w := ms[0].w.Params().Values[0][0]; w < 0.5 || w > 1.5 {
		t.Fatalf("weight %.3f, want near the honest target 1", w)
	}
	// Two replicas only, one poisoned: the larger is left out, so the honest one is not moved.
	n2 := newMemNet()
	pair := []member{n2.join(t, "a", 1, nil), n2.join(t, "z", 1, scale)}
	roundAll(pair, 5)
	if st := pair[0].r.State(); !slices.Equal(st.LastUsed, []string{"a"}) {
		t.Fatalf("of two, used %v, want the honest one alone", st.LastUsed)
	}
}

func TestAlteredResultIsRefusedByTheContributor(t *testing.T) {
	n := newMemNet()
	agg, other := n.join(t, "a", 1, nil), n.join(t, "b", 2, nil)
	agg.r.SetTamperResult(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	errs := roundAll([]member{agg, other}, 5)
	if errs["b"] == nil || !strings.Contains(errs["b"].Error(), "does not verify") {
		t.Fatalf("the contributor took an altered round: %v", errs["b"])
	}
	if st := other.r.State(); st.Round != 0 || st.OK != 0 || st.Failed != 1 {
		t.Fatalf("contributor state after the lie: %+v", st)
	}
}

func TestUnreachableAggregatorIsSkipped(t *testing.T) {
	n := newMemNet()
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 2, nil), n.join(t, "c", 3, nil)}
	n.mu.Lock()
	n.down["a"] = true
	n.mu.Unlock()
	errs := roundAll(ms[1:], 5)
	if errs["b"] != nil || errs["c"] != nil {
		t.Fatalf("without the first aggregator: %v", errs)
	}
	b, c := ms[1].r.State(), ms[2].r.State()
	if b.Round != 1 || b.Hash != c.Hash || !slices.Equal(b.LastUsed, []string{"b", "c"}) {
		t.Fatalf("b %+v c %+v", b, c)
	}
}

// Replicas whose views of the rounds differ meet at one aggregator: b believes a (first in the
// order) is a round behind and aggregates; when a's round reaches it, b hands the round over
// and contributes to a, with c, instead of two rounds taken apart.
func TestAggregatorHandsTheRoundToALowerReplica(t *testing.T) {
	n := newMemNet()
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 2, nil), n.join(t, "c", 3, nil)}
	n.mu.Lock()
	n.stale = map[string]map[string]int64{"b": {"a": -1}}
	n.mu.Unlock()
	var replans atomic.Int32
	run := func(m member, wait time.Duration) error {
		time.Sleep(wait)
		steps := m.w.train(5)
		for {
			err := m.r.RunRound(context.Background(), steps)
			if !errors.Is(err, ErrReplan) {
				return err
			}
			replans.Add(1)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	start := time.Now()
	for i, wait := range []time.Duration{200 * time.Millisecond, 0, 0} {
		wg.Go(func() { errs[i] = run(ms[i], wait) })
	}
	time.Sleep(50 * time.Millisecond) // b aggregates by now, waiting for c, which went to a
	n.mu.Lock()
	n.stale = nil // a's report arrives
	n.mu.Unlock()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("rounds: %v", errs)
	}
	a, b, c := ms[0].r.State(), ms[1].r.State(), ms[2].r.State()
	if a.Round != 1 || a.Hash != b.Hash || a.Hash != c.Hash || !slices.Equal(a.LastUsed, []string{"a", "b", "c"}) {
		t.Fatalf("a %+v\nb %+v\nc %+v", a, b, c)
	}
	if replans.Load() != 1 {
		t.Fatalf("%d replans, want b's one", replans.Load())
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the round took %v: someone waited for a deadline", took)
	}
}

func TestLateReplicaIsLeftOutAtTheDeadline(t *testing.T) {
	n := newMemNet()
	short := func(cfg *ReplicaConfig) { cfg.RoundTimeout = 150 * time.Millisecond }
	agg := n.join(t, "a", 1, short)
	n.join(t, "b", 2, short) // connected, at round 0, never contributes
	start := time.Now()
	steps := agg.w.train(5)
	if err := agg.r.RunRound(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Fatalf("the round closed after %v, want the 150 ms deadline", took)
	}
	if st := agg.r.State(); st.Round != 1 || !slices.Equal(st.LastUsed, []string{"a"}) {
		t.Fatalf("after the deadline: %+v", st)
	}
}

// A contribution wakes the aggregator at once: no polling interval between the last arrival
// and the round's close.
func TestArrivalClosesTheRoundAtOnce(t *testing.T) {
	n := newMemNet()
	ms := []member{n.join(t, "a", 1, nil), n.join(t, "b", 2, nil)}
	go func() {
		time.Sleep(50 * time.Millisecond) // the aggregator is waiting by then
		steps := ms[1].w.train(5)
		ms[1].r.RunRound(context.Background(), steps)
	}()
	steps := ms[0].w.train(5)
	start := time.Now()
	if err := ms[0].r.RunRound(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 50*time.Millisecond+connectedWait/2 {
		t.Fatalf("the round closed %v after it started; the contribution came at 50 ms", took)
	}
}

func TestCatchUpDuringTheRoundMakesItFail(t *testing.T) {
	n := newMemNet()
	agg := n.join(t, "a", 1, func(cfg *ReplicaConfig) { cfg.RoundTimeout = 300 * time.Millisecond })
	n.join(t, "b", 2, nil) // never contributes: the aggregator waits
	steps := agg.w.train(5)
	done := make(chan error, 1)
	go func() { done <- agg.r.RunRound(context.Background(), steps) }()
	for !agg.r.State().Collecting {
		time.Sleep(time.Millisecond)
	}
	caught := vecParams(make([]float32, toyDims)...)
	caught.Values[0][0] = 0.5
	if err := agg.r.Adopt(7, caught, nil, steps); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "theta_0 changed") {
		t.Fatalf("a round whose theta_0 was replaced: %v", err)
	}
	if st := agg.r.State(); st.Round != 7 || st.Hash != caught.Hash() {
		t.Fatalf("the moot round overwrote the catch-up: %+v", st)
	}
}

func TestBehindAndOtherSettingsAreTold(t *testing.T) {
	n := newMemNet()
	agg := n.join(t, "a", 1, nil)
	behind := n.join(t, "b", 2, nil)
	// b's theta_0 differs from the aggregator's: it is told to resync from it.
	other := vecParams(make([]float32, toyDims)...)
	other.Values[0][3] = 1
	if err := behind.r.Adopt(0, other, nil, 0); err != nil {
		t.Fatal(err)
	}
	errs := roundAll([]member{agg, behind}, 5)
	var re *ResyncError
	if !errors.As(errs["b"], &re) || re.From != "a" || !errors.Is(errs["b"], ErrResync) {
		t.Fatalf("a replica on other weights: %v", errs["b"])
	}
	// A contribution for a newer round tells the aggregator that it is the one behind.
	if _, _, err := agg.r.Accept(context.Background(), "b", Submission{Round: 9}); !errors.Is(err, ErrBehind) {
		t.Fatalf("a contribution from round 9: %v", err)
	}
	// Another outer step is refused, with the settings named.
	n2 := newMemNet()
	x := n2.join(t, "a", 1, nil)
	y := n2.join(t, "b", 2, func(cfg *ReplicaConfig) {
		cfg.Settings = func() Settings { return Settings{Compression: CompressNone, OuterLR: 1, OuterMomentum: 0} }
	})
	errs = roundAll([]member{x, y}, 5)
	if errs["b"] == nil || !strings.Contains(errs["b"].Error(), "outer step of lr 1, momentum 0") {
		t.Fatalf("another outer step: %v", errs["b"])
	}
}
