package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// static answers provider lookups from a fixed table: route planning's input, without a DHT.
// Remote stages are never opened by these tests (real hosts run them in the node's tests).
type static struct {
	self    peer.ID
	holders map[int][]peer.ID
	model   string
	latency map[peer.ID]time.Duration
	records map[peer.ID]p2p.PeerRecord
}

func (s *static) PeerRecord(_ context.Context, id peer.ID) (p2p.PeerRecord, error) {
	if r, ok := s.records[id]; ok {
		return r, nil
	}
	return p2p.PeerRecord{}, errors.New("no record")
}

func (s *static) ID() peer.ID                     { return s.self }
func (s *static) Latency(p peer.ID) time.Duration { return s.latency[p] }
func (s *static) OpenForward(context.Context, peer.ID, p2p.ForwardOpen) (*p2p.ForwardClient, error) {
	return nil, errors.New("no network in this test")
}
func (s *static) OpenTrain(context.Context, peer.ID, p2p.ForwardOpen) (*p2p.TrainClient, error) {
	return nil, errors.New("no network in this test")
}
func (s *static) FindProviders(_ context.Context, key string, _ int) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for l, ps := range s.holders {
		if coverage.LayerKey(s.model, l) == key {
			for _, p := range ps {
				out = append(out, peer.AddrInfo{ID: p})
			}
		}
	}
	return out, nil
}

func tiny(t *testing.T) layers.Config {
	m, err := layers.Preset("neuroshard-tiny")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newPipeline(t *testing.T, h *static, local *layers.Stage) *Pipeline {
	m := tiny(t)
	h.model = m.Name
	return New(Config{Model: m, Host: h, Coverage: coverage.New(h, m.Name, m.Layers, time.Hour),
		Local: func() *layers.Stage { return local }})
}

func TestPlanTakesFewestHopsThenLowestLatency(t *testing.T) {
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	h := &static{self: "me", holders: map[int][]peer.ID{0: {a, b}, 1: {a, b}, 2: {b, c}, 3: {b, c}},
		latency: map[peer.ID]time.Duration{a: time.Millisecond, b: 9 * time.Millisecond, c: time.Millisecond}}
	p := newPipeline(t, h, nil)
	route, err := p.planRoute(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(route) != 1 || route[0].Peer != b {
		t.Fatalf("route %v, want b alone (one hop beats two faster ones)", route)
	}
	route, err = p.planRoute(context.Background(), map[peer.ID]bool{b: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Hop{{Peer: a, Span: layers.Span{First: 0, Last: 1}}, {Peer: c, Span: layers.Span{First: 2, Last: 3}}}
	if !slices.Equal(route, want) {
		t.Fatalf("route without b: %v, want %v", route, want)
	}
}

func TestPlanWeighsHoldersByTheirMeasuredSpeed(t *testing.T) {
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	all := map[int][]peer.ID{0: {a, b}, 1: {a, b}, 2: {a, b}, 3: {a, b}}
	h := &static{self: "me", holders: all, latency: map[peer.ID]time.Duration{a: time.Millisecond, b: 2 * time.Millisecond}}
	p := newPipeline(t, h, nil)
	if route, err := p.planRoute(context.Background(), nil); err != nil || len(route) != 1 || route[0].Peer != a {
		t.Fatalf("without records: %v %v, want a (the nearer)", route, err)
	}
	rec := func(decode float64) p2p.PeerRecord {
		return p2p.PeerRecord{Seq: 1, Model: "neuroshard-tiny", First: 0, Last: 3, Throughput: p2p.Throughput{Decode: decode}}
	}
	// a decodes at 100 tokens/s (10 ms a step), b at 1000 (1 ms): b's 3 ms beat a's 11.
	h.records = map[peer.ID]p2p.PeerRecord{a: rec(100), b: rec(1000)}
	p = newPipeline(t, h, nil)
	if route, err := p.planRoute(context.Background(), nil); err != nil || len(route) != 1 || route[0].Peer != b {
		t.Fatalf("with records: %v %v, want b (the faster)", route, err)
	}
	// Load still comes first: with a session open on b, idle a serves.
	p.using.add(b, 1, 100)
	if route, err := p.planRoute(context.Background(), nil); err != nil || route[0].Peer != a {
		t.Fatalf("b busy: %v %v, want a", route, err)
	}
	p.using.add(b, -1, 100)
	// Failover takes the faster holder too.
	if hop, ok := p.replacementFor(context.Background(), layers.Span{First: 0, Last: 3}, nil); !ok || hop.Peer != b {
		t.Fatalf("replacement %v %v, want b", hop, ok)
	}
	// A holder without a record counts at the median of the known speeds (here 1000: b's),
	// so a nearer unmeasured c beats b and a slow measured a does not.
	for l := range all {
		all[l] = append(all[l], c)
	}
	h.latency[c] = time.Millisecond
	p = newPipeline(t, h, nil)
	if route, err := p.planRoute(context.Background(), nil); err != nil || route[0].Peer != c {
		t.Fatalf("with unmeasured c: %v %v, want c", route, err)
	}
}

func TestPlanNamesTheLayersNobodyHolds(t *testing.T) {
	h := &static{self: "me", holders: map[int][]peer.ID{0: {"a"}, 1: {"a"}, 3: {"c"}}}
	_, err := newPipeline(t, h, nil).planRoute(context.Background(), nil)
	var nr *NoRouteError
	if !errors.Is(err, ErrNoRoute) || !errors.As(err, &nr) || !slices.Equal(nr.Missing, []int{2}) {
		t.Fatalf("error %v, want a NoRouteError missing layer 2", err)
	}
}

// A route on this node's own stage runs exactly as the stage does alone.
func TestLocalRouteMatchesTheStage(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: m.Layers - 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	h := &static{self: "me"}
	p := newPipeline(t, h, st)
	r, err := p.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if hops := r.Hops(); len(hops) != 1 || !hops[0].Self {
		t.Fatalf("hops %v, want this node alone", hops)
	}
	prompt := layers.Encode("ROMEO:")
	s := layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 8}
	got, _, err := layers.Generate(r, m.Context, prompt, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	want, _, err := layers.Generate(stageRunner{sess}, m.Context, prompt, s, nil)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("route %q, stage %q (%v)", layers.Decode(got), layers.Decode(want), err)
	}
}

type stageRunner struct{ s *layers.Session }

func (r stageRunner) Step(tokens []int32) ([]float32, error) {
	out, err := r.s.Step(layers.NewI32(tokens, 1, len(tokens)))
	if err != nil {
		return nil, err
	}
	return out.F32[(len(tokens)-1)*out.Dims[2]:], nil
}

// The node's generations and the sessions it serves share one KV-cache budget, reserved at
// open for what a cache can grow to: full is an immediate BusyError (with a retry time), one
// peer holds at most a quarter of it, and every release gives back what was taken.
func TestKVBudgetIsSharedAndBoundsEachPeer(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: m.Layers - 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	whole := sessionBytes(m, span, 1, m.Context) // one session of the whole context
	p := New(Config{Model: m, KVBudget: 8 * whole, Local: func() *layers.Stage { return st }})

	// A peer: at most a quarter of the budget (two whole-context sessions); another peer
	// still gets its own.
	open := func(from peer.ID) (p2p.ForwardSession, error) {
		return p.ServeForward(from, p2p.ForwardOpen{Model: m.Name, First: 0, Last: m.Layers - 1, Batch: 1})
	}
	var held []p2p.ForwardSession
	for range 2 {
		s, err := open("a")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	var re *p2p.RemoteError
	if _, err := open("a"); !errors.As(err, &re) || re.Code != "BUSY" || !strings.Contains(re.Message, "retry") {
		t.Fatalf("a third session for one peer: %v, want BUSY", err)
	}
	if _, err := p.ServeForward("a", p2p.ForwardOpen{Model: m.Name, First: 0, Last: m.Layers - 1, Batch: 1000}); !errors.As(err, &re) || re.Code != "BAD_INPUT" {
		t.Fatalf("batch 1000: %v", err)
	}
	for range 2 {
		s, err := open("b")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	if got := p.KVReserved(); got != 4*whole {
		t.Fatalf("reserved %d, want %d", got, 4*whole)
	}
	// The node's own generations take the rest, then are refused at once.
	var rels []func()
	for range 4 {
		rel, err := p.Acquire(m.Context)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	var busy *BusyError
	if _, err := p.Acquire(m.Context); !errors.Is(err, ErrBusy) || !errors.As(err, &busy) || busy.Limit != 8*whole {
		t.Fatalf("a generation past the budget: %v", err)
	}
	if p.Running() != 4 {
		t.Fatalf("running %d", p.Running())
	}
	rels[0]()
	rels[0]() // twice is once
	if rel, err := p.Acquire(m.Context); err != nil {
		t.Fatalf("after a release: %v", err)
	} else {
		rel()
	}
	for _, rel := range rels {
		rel()
	}
	for _, s := range held {
		s.Close()
	}
	if got := p.KVReserved(); got != 0 || p.Running() != 0 {
		t.Fatalf("after every release: %d bytes reserved, %d running", got, p.Running())
	}
}

// A peer is audited twice as often until it has passed a few audits; no rate, no audits.
func TestNewPeersAreAuditedMoreOften(t *testing.T) {
	for _, tc := range []struct {
		rate   float64
		passed int
		want   float64
	}{{0.25, 0, 0.5}, {0.25, trustedAfter - 1, 0.5}, {0.25, trustedAfter, 0.25}, {0.7, 0, 1}, {0, 0, 0}} {
		if got := auditChance(tc.rate, tc.passed); got != tc.want {
			t.Errorf("rate %g after %d passed audits: %g, want %g", tc.rate, tc.passed, got, tc.want)
		}
	}
}

// While audits run, a peer that has not passed any yet costs as much as three open sessions
// on a known one: an idle newcomer does not draw the traffic, a busy known holder sheds it.
func TestRoutesPreferPeersThatPassedAudits(t *testing.T) {
	known, fresh := peer.ID("known"), peer.ID("fresh")
	h := &static{self: "me", holders: map[int][]peer.ID{0: {known, fresh}, 1: {known, fresh}, 2: {known, fresh}, 3: {known, fresh}},
		latency: map[peer.ID]time.Duration{known: 5 * time.Millisecond, fresh: time.Millisecond}}
	p := newPipeline(t, h, nil)
	route := func() peer.ID {
		r, err := p.planRoute(context.Background(), nil)
		if err != nil || len(r) != 1 {
			t.Fatalf("route %v %v", r, err)
		}
		return r[0].Peer
	}
	if got := route(); got != fresh {
		t.Fatalf("audits off: %s, want the faster peer", got)
	}
	p.SetAuditRate(0.25)
	for range trustedAfter {
		p.passed(known)
	}
	if got := route(); got != known {
		t.Fatalf("audits on: %s, want the peer that passed %d audits", got, trustedAfter)
	}
	for range trustedAfter + 1 {
		p.using.add(known, 1, 100)
	}
	if got := route(); got != fresh {
		t.Fatalf("with %d sessions on the known peer: %s, want the newcomer", trustedAfter+1, got)
	}
}

// A peer's sessions spend its compute budget: once spent, its next step is BUSY with the time
// to wait, while another peer is served; a step past MaxStepPositions is refused unrun.
func TestComputeBudgetIsPerPeer(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: m.Layers - 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Model: m, Local: func() *layers.Stage { return st }, ComputeShare: 1e-6, ComputeBurst: time.Microsecond})
	open := func(from peer.ID) p2p.ForwardSession {
		s, err := p.ServeForward(from, p2p.ForwardOpen{Model: m.Name, First: 0, Last: m.Layers - 1, Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	prompt := &p2p.Tensor{Dims: []int{1, 32}, I32: make([]int32, 32)}
	a := open("a")
	if _, err := a.Step(prompt); err != nil {
		t.Fatalf("the first step within the burst: %v", err)
	}
	var re *p2p.RemoteError
	if _, err := a.Step(&p2p.Tensor{Dims: []int{1, 1}, I32: []int32{5}}); !errors.As(err, &re) || re.Code != "BUSY" || !strings.Contains(re.Message, "retry in") {
		t.Fatalf("a step past the peer's budget: %v, want BUSY", err)
	}
	if _, err := open("b").Step(prompt); err != nil {
		t.Fatalf("another peer while the first is over budget: %v", err)
	}
	if _, err := open("c").Step(&p2p.Tensor{Dims: []int{2, MaxStepPositions}, I32: make([]int32, 2*MaxStepPositions)}); !errors.As(err, &re) || re.Code != "BAD_INPUT" {
		t.Fatalf("a step of %d positions: %v", 2*MaxStepPositions, err)
	}
}

// Peers without a standing here (no layers in the coverage view, no passed audit) are served
// from what the holders leave free: a crowd of fresh identities fills its part of the
// KV-cache budget and of the session slots, and a holder, or a peer that passed an audit,
// still gets in.
func TestStrangersAreServedLast(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: m.Layers - 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	whole := sessionBytes(m, span, 1, m.Context)
	holder, audited := peer.ID("holder"), peer.ID("audited")
	h := &static{self: "me", model: m.Name, holders: map[int][]peer.ID{0: {holder}, 1: {holder}}}
	newP := func(budget int64) *Pipeline {
		p := New(Config{Model: m, Host: h, Coverage: coverage.New(h, m.Name, m.Layers, time.Hour), KVBudget: budget,
			Local: func() *layers.Stage { return st }})
		p.cov.Get(context.Background()) // the view the checks read, without waiting, afterwards
		p.passed(audited)
		return p
	}
	open := func(p *Pipeline, from peer.ID) (p2p.ForwardSession, error) {
		return p.ServeForward(from, p2p.ForwardOpen{Model: m.Name, First: 0, Last: m.Layers - 1, Batch: 1})
	}
	busy := func(err error, what string) {
		t.Helper()
		var re *p2p.RemoteError
		if !errors.As(err, &re) || re.Code != "BUSY" || !strings.Contains(re.Message, what) {
			t.Fatalf("%v, want BUSY naming %q", err, what)
		}
	}
	var held []p2p.ForwardSession
	defer func() {
		for _, s := range held {
			s.Close()
		}
	}()
	// The budget: 8 whole-context sessions, strangers at most 6 of them (2 each).
	p := newP(8 * whole)
	for _, u := range []peer.ID{"u1", "u1", "u2", "u2", "u3", "u3"} {
		s, err := open(p, u)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	_, err = open(p, "u4")
	busy(err, "open to peers that hold no layers")
	for _, known := range []peer.ID{holder, audited} {
		s, err := open(p, known)
		if err != nil {
			t.Fatalf("%s refused: %v", known, err)
		}
		held = append(held, s)
	}
	// The slots: strangers at most 48 of the 64, 16 each.
	p = newP(1000 * whole)
	for i := range 48 {
		s, err := open(p, peer.ID(fmt.Sprint("s", i/16)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	_, err = open(p, "s9")
	busy(err, "kept for holders")
	s, err := open(p, holder)
	if err != nil {
		t.Fatalf("holder refused: %v", err)
	}
	held = append(held, s)
	// Every slot and byte comes back.
	for _, s := range held {
		s.Close()
	}
	held = nil
	if p.served.Load() != 0 || p.servedUnknown.Load() != 0 || p.KVReserved() != 0 {
		t.Fatalf("after closing: %d sessions, %d of strangers, %d bytes", p.served.Load(), p.servedUnknown.Load(), p.KVReserved())
	}
}

// A served session's answers are signed with the others of its batched computation: it names
// the computation and counts the sessions served to peers in it, not the node's own (whose
// steps sign nothing, and whose receipts would be waited for in vain).
func TestServedSessionsCountTheirComputationsServedSessions(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: m.Layers - 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Model: m, Local: func() *layers.Stage { return st }})
	var served []p2p.ForwardSession
	for _, from := range []peer.ID{"a", "b"} {
		s, err := p.ServeForward(from, p2p.ForwardOpen{Model: m.Name, First: 0, Last: m.Layers - 1, Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		served = append(served, s)
	}
	own, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	tok := &p2p.Tensor{Dims: []int{1, 1}, I32: []int32{layers.BOS}}
	for step := 0; ; step++ {
		if step == m.Context-1 {
			t.Fatal("the three sessions never stepped in one computation in a context's steps")
		}
		var wg sync.WaitGroup
		wg.Add(3)
		for _, s := range served {
			go func() { defer wg.Done(); _, _ = s.Step(tok) }()
		}
		go func() { defer wg.Done(); _, _ = own.Step(layers.NewI32([]int32{layers.BOS}, 1, 1)) }()
		wg.Wait()
		id, with := own.LastBatch()
		if len(with) != 3 {
			continue
		}
		for _, s := range served {
			gid, size := s.(p2p.SignGroup).SignGroup()
			if gid != id || size != 2 {
				t.Fatalf("a served session of computation %d (3 sessions, 2 served) names %d of %d", id, gid, size)
			}
		}
		return
	}
}

// A driver's training route is stale when the route it would plan now differs: a second
// replica of the next span joined (the driver of rank 1 moves to it, rank 0 stays). A route
// that cannot be planned now is not stale (the running one may still work).
func TestTrainRouteIsStaleWhenTheReplicasChange(t *testing.T) {
	m := tiny(t)
	span := layers.Span{First: 0, Last: 1}
	st, err := layers.NewStage(m, span, m.InitParams(span, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	x, y := peer.ID("x"), peer.ID("y")
	p := newPipeline(t, &static{self: "me", holders: map[int][]peer.ID{2: {x}, 3: {x}}}, st)
	route, err := p.PlanTrainRoute(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(route) != 2 || !route[0].Self || route[1].Peer != x {
		t.Fatalf("route %v, want this node then x", route)
	}
	var hops []TrainHop
	for _, h := range route {
		hops = append(hops, localTrainHop{hop: h})
	}
	if p.TrainRouteStale(ctx, 1, hops) {
		t.Fatal("the same replicas: the route is stale")
	}
	both := newPipeline(t, &static{self: "me", holders: map[int][]peer.ID{2: {x, y}, 3: {x, y}}}, st)
	if !both.TrainRouteStale(ctx, 1, hops) {
		t.Fatal("a second replica of 2-3 joined: the driver of rank 1 keeps its route")
	}
	if both.TrainRouteStale(ctx, 0, hops) {
		t.Fatal("a second replica of 2-3 joined: the driver of rank 0 leaves x")
	}
	gone := newPipeline(t, &static{self: "me", holders: map[int][]peer.ID{}}, st)
	if gone.TrainRouteStale(ctx, 1, hops) {
		t.Fatal("no route can be planned now: the running one was dropped")
	}
}
