package coverage

import (
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

func TestChooseSpan(t *testing.T) {
	m, _ := layers.Preset("neuroshard-small") // 8 layers
	per := m.LayerMemoryBytes()
	extra := (m.EmbeddingParams() + m.HeadParams()) * 4 * 6
	for _, tc := range []struct {
		name     string
		replicas []int
		budget   int64
		want     layers.Span
	}{
		{"everything fits", []int{0, 0, 0, 0, 0, 0, 0, 0}, 1 << 40, layers.Span{First: 0, Last: 7}},
		{"empty network, three layers", []int{0, 0, 0, 0, 0, 0, 0, 0}, 3*per + extra, layers.Span{First: 0, Last: 2}},
		{"second node covers the next block", []int{1, 1, 1, 0, 0, 0, 0, 0}, 3*per + extra, layers.Span{First: 3, Last: 5}},
		{"third node covers the tail", []int{1, 1, 1, 1, 1, 1, 0, 0}, 3*per + extra, layers.Span{First: 5, Last: 7}},
		{"a hole beats a thin span", []int{1, 1, 1, 1, 0, 5, 5, 5}, 3*per + extra, layers.Span{First: 2, Last: 4}},
		{"least replicated when all covered", []int{3, 3, 1, 1, 3, 3, 2, 2}, 2*per + extra, layers.Span{First: 2, Last: 3}},
		{"aligned wins a tie", []int{1, 0, 0, 0, 0, 1, 1, 1}, 2*per + extra, layers.Span{First: 2, Last: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseSpan(m, tc.replicas, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ChooseSpan(m, make([]int, 8), 10); !errors.Is(err, ErrNoSpanFits) {
		t.Fatalf("tiny budget: %v", err)
	}
	if _, err := ChooseSpan(m, make([]int, 3), 1<<40); err == nil {
		t.Fatal("wrong replica count accepted")
	}
}

// viewOf builds a view of 8 layers from each holder's span and measured decode speed (0: a
// holder without a measured record).
func viewOf(holders map[peer.ID]layers.Span, decode map[peer.ID]float64) View {
	v := View{Model: "neuroshard-small", Layers: make([]Layer, 8), Records: map[peer.ID]p2p.PeerRecord{}}
	for i := range v.Layers {
		v.Layers[i].Index = i
	}
	for id, sp := range holders {
		for l := sp.First; l <= sp.Last; l++ {
			v.Layers[l].Providers = append(v.Layers[l].Providers, id)
		}
		if d := decode[id]; d > 0 {
			v.Records[id] = p2p.PeerRecord{Peer: id, Seq: 1, Model: v.Model, First: sp.First, Last: sp.Last, Throughput: p2p.Throughput{Decode: d}}
		}
	}
	return v
}

// A joining node goes where the swarm is thinnest in throughput, not in heads.
func TestChooseSpanWeighsHoldersBySpeed(t *testing.T) {
	m, _ := layers.Preset("neuroshard-small")
	budget := 4*m.LayerMemoryBytes() + (m.EmbeddingParams()+m.HeadParams())*4*6
	first, second := layers.Span{First: 0, Last: 3}, layers.Span{First: 4, Last: 7}
	// Two holders on each half: by heads the halves tie (and the first wins the tie); with
	// the second half's holders measured 10x slower, the newcomer takes the second half.
	holders := map[peer.ID]layers.Span{"a": first, "b": first, "c": second, "d": second}
	for _, tc := range []struct {
		name   string
		decode map[peer.ID]float64
		want   layers.Span
	}{
		{"nothing measured", nil, first},
		{"every holder as fast", map[peer.ID]float64{"a": 500, "b": 500, "c": 500, "d": 500}, first},
		{"the second half slow", map[peer.ID]float64{"a": 500, "b": 500, "c": 50, "d": 50}, second},
		{"the first half slow", map[peer.ID]float64{"a": 50, "b": 50, "c": 500, "d": 500}, first},
		// One fast holder of the second half outweighs two slow ones of the first.
		{"unmeasured at the median", map[peer.ID]float64{"a": 100, "b": 100, "c": 1000}, first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := viewOf(holders, tc.decode)
			got, err := ChooseSpan(m, v.Load("me"), budget)
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v (load %v)", got, err, tc.want, v.Load("me"))
			}
		})
	}
	// This node's own holding does not count toward the load it compares.
	v := viewOf(map[peer.ID]layers.Span{"me": first, "a": second}, nil)
	if load := v.Load("me"); load[0] != 0 || load[7] != 2 {
		t.Fatalf("load %v", load)
	}
	// Capacity: 500 tokens/s through 8 layers, 4 held, passes 1000 through each of them.
	c := viewOf(holders, map[peer.ID]float64{"a": 500, "b": 500, "c": 50, "d": 50}).Capacity()
	if c.Layers[0] != 2000 || c.Layers[7] != 200 || c.Decode != 200 || c.Recorded != 4 || c.Measured != 4 {
		t.Fatalf("capacity %+v", c)
	}
}

// The balance rule: a node moves to the span that raises the swarm's slowest layer most, by
// at least the threshold, and never leaves a layer nobody else holds.
func TestRebalanceMovesWhereTheSwarmIsSlowest(t *testing.T) {
	m, _ := layers.Preset("neuroshard-small")
	budget := 4*m.LayerMemoryBytes() + (m.EmbeddingParams()+m.HeadParams())*4*6
	first, second := layers.Span{First: 0, Last: 3}, layers.Span{First: 4, Last: 7}
	for _, tc := range []struct {
		name    string
		holders map[peer.ID]layers.Span
		decode  map[peer.ID]float64
		move    bool
		to      layers.Span
	}{
		// me and a fast node on the first half, a slow one alone on the second: the second
		// half carries 100 tokens/s, the first 2400; with me there it would carry 900.
		{"to the slow half", map[peer.ID]layers.Span{"me": first, "fast": first, "slow": second},
			map[peer.ID]float64{"me": 400, "fast": 800, "slow": 50}, true, second},
		// me alone on the first half: leaving it would leave layers nobody holds.
		{"never leave a layer alone", map[peer.ID]layers.Span{"me": first, "slow": second, "slow2": second},
			map[peer.ID]float64{"me": 400, "slow": 50, "slow2": 50}, false, first},
		// Balanced: no span gains 20%.
		{"balanced stays", map[peer.ID]layers.Span{"me": first, "a": first, "b": second, "c": second},
			map[peer.ID]float64{"me": 400, "a": 400, "b": 400, "c": 400}, false, first},
		// A layer nobody holds: a node whose span others cover goes there.
		{"covers a gap", map[peer.ID]layers.Span{"me": first, "a": first, "b": {First: 4, Last: 5}},
			map[peer.ID]float64{"me": 400, "a": 400, "b": 400}, true, second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := viewOf(tc.holders, tc.decode)
			mv, ok := Rebalance(m, v, "me", first, budget, 0.2)
			if ok != tc.move || (ok && mv.To != tc.to) {
				t.Fatalf("move %v to %v (now %.0f, after %.0f), want %v to %v", ok, mv.To, mv.Now, mv.After, tc.move, tc.to)
			}
			if ok && mv.Gain() < 1.2 && mv.Now > 0 {
				t.Fatalf("moved for a gain of %.2f", mv.Gain())
			}
		})
	}
}

// The balancer moves only when the rule names the same span twice in a row.
func TestBalancerWaitsForTheSameAdviceTwice(t *testing.T) {
	model, _ := layers.Preset("neuroshard-small")
	budget := 4*model.LayerMemoryBytes() + (model.EmbeddingParams()+model.HeadParams())*4*6
	first, second := layers.Span{First: 0, Last: 3}, layers.Span{First: 4, Last: 7}
	v := viewOf(map[peer.ID]layers.Span{"me": first, "fast": first, "slow": second}, map[peer.ID]float64{"me": 1000, "fast": 1000, "slow": 50})
	var b Balancer
	if _, ok := b.Look(model, v, "me", first, budget); ok {
		t.Fatal("moved at the first look")
	}
	m, ok := b.Look(model, v, "me", first, budget)
	if !ok || m.To != second {
		t.Fatalf("second look: %+v %v, want a move to 4-7", m, ok)
	}
	// Advice that comes and goes starts the count again.
	b.Look(model, v, "me", first, budget)
	if _, ok := b.Look(model, v, "me", second, budget); ok {
		t.Fatal("moved from 4-7, where the rule keeps it")
	}
	if _, ok := b.Look(model, v, "me", first, budget); ok {
		t.Fatal("moved after one look since the advice changed")
	}
}

// A span the node cannot take (in a trained network, one nobody holds exactly) is never
// advised; the rule picks among the others, or stays.
func TestRebalanceAmongTakesOnlyAllowedSpans(t *testing.T) {
	model, _ := layers.Preset("neuroshard-small")
	budget := 4*model.LayerMemoryBytes() + (model.EmbeddingParams()+model.HeadParams())*4*6
	first, second := layers.Span{First: 0, Last: 3}, layers.Span{First: 4, Last: 7}
	v := viewOf(map[peer.ID]layers.Span{"me": first, "fast": first, "slow": second}, map[peer.ID]float64{"me": 1000, "fast": 1000, "slow": 50})
	if m, ok := RebalanceAmong(model, v, "me", first, budget, MoveThreshold, nil); !ok || m.To != second {
		t.Fatalf("all spans allowed: %+v %v, want a move to 4-7", m, ok)
	}
	var asked []layers.Span
	m, ok := RebalanceAmong(model, v, "me", first, budget, MoveThreshold, func(sp layers.Span) bool {
		asked = append(asked, sp)
		return sp != second
	})
	if ok && m.To == second || len(asked) == 0 {
		t.Fatalf("4-7 not allowed: %+v %v (asked about %d spans)", m, ok, len(asked))
	}
	if slices.Contains(asked, first) {
		t.Fatal("asked about the span it holds")
	}
}
