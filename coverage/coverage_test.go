package coverage

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// table answers provider lookups from a fixed map, optionally slowly, and counts them.
type table struct {
	self    peer.ID
	holders map[string][]peer.ID
	delay   time.Duration
	calls   atomic.Int64
	mu      sync.Mutex // guards holders against a refresh running behind a reader
}

func (t *table) set(h map[string][]peer.ID) {
	t.mu.Lock()
	t.holders = h
	t.mu.Unlock()
}

func (t *table) ID() peer.ID { return t.self }

func (t *table) FindProviders(ctx context.Context, key string, _ int) ([]peer.AddrInfo, error) {
	t.calls.Add(1)
	select {
	case <-time.After(t.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []peer.AddrInfo
	for _, p := range t.holders[key] {
		out = append(out, peer.AddrInfo{ID: p})
	}
	return out, nil
}

func TestLookupCountsOtherHoldersAndMissingLayers(t *testing.T) {
	a, b, me := peer.ID("a"), peer.ID("b"), peer.ID("me")
	f := &table{self: me, holders: map[string][]peer.ID{
		LayerKey("m", 0): {b, a, me, a}, // a duplicate record counts once
		LayerKey("m", 1): {a},
		LayerKey("m", 3): {a},
	}}
	v := New(f, "m", 4, time.Minute).Lookup(context.Background())
	if !slices.Equal(v.Layers[0].Providers, []peer.ID{a, b, me}) || v.Layers[0].Replicas != 2 {
		t.Fatalf("layer 0: %+v", v.Layers[0])
	}
	if !slices.Equal(v.Missing, []int{2}) || v.Complete {
		t.Fatalf("missing %v complete %v", v.Missing, v.Complete)
	}
	spans := v.Spans()
	if want := []layers.Span{{First: 0, Last: 1}, {First: 3, Last: 3}}; !slices.Equal(spans[a], want) {
		t.Fatalf("spans of a: %v, want %v", spans[a], want)
	}
	if by := v.ByPeer(); !slices.Equal(by[me], []int{0}) {
		t.Fatalf("layers of me: %v", by[me])
	}
}

func TestGetSharesOneRefreshAndNeverWaitsOnAnother(t *testing.T) {
	f := &table{self: "me", holders: map[string][]peer.ID{LayerKey("m", 0): {"a"}}, delay: 200 * time.Millisecond}
	c := New(f, "m", 1, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v := c.Get(context.Background()); !v.Complete {
				t.Error("a shared refresh returned an incomplete view")
			}
		})
	}
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("8 concurrent readers made %d lookups, want 1", n)
	}
	c.Get(context.Background())
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("a fresh view was looked up again (%d lookups)", n)
	}

	// A stale view is refreshed, but a reader that cannot wait gets the last view at once.
	c.interval = 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	v := c.Get(ctx)
	if took := time.Since(start); took > 150*time.Millisecond {
		t.Fatalf("an impatient reader waited %v for the refresh", took)
	}
	if !v.Complete {
		t.Fatal("the impatient reader did not get the last view")
	}
}

func TestGetBeforeAnyViewIsEmptyNotNil(t *testing.T) {
	f := &table{self: "me", delay: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	v := New(f, "m", 3, time.Minute).Get(ctx)
	if len(v.Layers) != 3 || !slices.Equal(v.Missing, []int{0, 1, 2}) || v.Complete || v.Layers[1].Providers == nil {
		t.Fatalf("view before the first lookup: %+v", v)
	}
}

// A stale view is answered at once while one refresh runs behind it (a lookup that waits out
// a dead holder's dial must not stall the round loop); the refresh's result serves the next
// reader. Expire makes the next reader wait for a new lookup instead.
func TestStaleViewIsAnsweredWhileItRefreshes(t *testing.T) {
	f := &table{self: "me", holders: map[string][]peer.ID{LayerKey("m", 0): {"a"}}, delay: 300 * time.Millisecond}
	c := New(f, "m", 1, 50*time.Millisecond)
	if v := c.Get(context.Background()); !v.Complete {
		t.Fatal("the first view was not waited for")
	}
	f.set(map[string][]peer.ID{}) // the holder leaves
	time.Sleep(60 * time.Millisecond)
	start := time.Now()
	if v := c.Get(context.Background()); !v.Complete {
		t.Fatal("the stale view was not the answer while refreshing")
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("a reader of a stale view waited %v", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Get(context.Background()).Complete {
		if time.Now().After(deadline) {
			t.Fatal("the refresh behind the stale view never landed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.calls.Load(); n > 4 {
		t.Fatalf("%d lookups: readers of a stale view each started one", n)
	}

	f.set(map[string][]peer.ID{LayerKey("m", 0): {"b"}})
	c.mu.Lock()
	c.interval = time.Hour
	c.mu.Unlock()
	c.Expire(0)
	start = time.Now()
	if v := c.Get(context.Background()); !v.Complete || v.Layers[0].Providers[0] != "b" {
		t.Fatalf("after Expire the reader got the old view: %+v", v.Layers)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("after Expire the reader did not wait for the lookup (%v)", took)
	}
}

func TestIncompleteViewIsRefreshedSooner(t *testing.T) {
	f := &table{self: "me", holders: map[string][]peer.ID{LayerKey("m", 0): {"a"}}}
	c := New(f, "m", 2, time.Hour)
	if c.incomplete != IncompleteInterval {
		t.Fatalf("an incomplete view is reused %v, want %v", c.incomplete, IncompleteInterval)
	}
	c.incomplete = 100 * time.Millisecond
	if v := c.Get(context.Background()); v.Complete || !slices.Equal(v.Missing, []int{1}) {
		t.Fatalf("first view: %+v", v)
	}
	f.set(map[string][]peer.ID{LayerKey("m", 0): {"a"}, LayerKey("m", 1): {"b"}})
	if v := c.Get(context.Background()); v.Complete {
		t.Fatal("an incomplete view was refreshed before its interval")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !c.Get(context.Background()).Complete {
		if time.Now().After(deadline) {
			t.Fatal("the incomplete view was kept for the complete view's interval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Complete now: kept for the interval, whatever happens.
	calls := f.calls.Load()
	f.set(map[string][]peer.ID{})
	time.Sleep(250 * time.Millisecond)
	if v := c.Get(context.Background()); !v.Complete || f.calls.Load() != calls {
		t.Fatalf("a complete view was refreshed within its interval (%d lookups more)", f.calls.Load()-calls)
	}
}

// recorded is a table whose peers also have signed records.
type recorded struct {
	*table
	records map[peer.ID]p2p.PeerRecord
}

func (r *recorded) PeerRecord(_ context.Context, id peer.ID) (p2p.PeerRecord, error) {
	rec, ok := r.records[id]
	if !ok {
		return p2p.PeerRecord{}, errors.New("no record")
	}
	return rec, nil
}

// A holder that moved still has provider records of its old layers in the DHT until they
// expire; its own record names the span it holds now, and the view counts it there only. A
// record that names none of the layers it provides (an old record not replaced in the DHT
// yet) drops nothing.
func TestMovedHolderCountsWhereItsRecordSays(t *testing.T) {
	moved, lagging, other := peer.ID("moved"), peer.ID("lagging"), peer.ID("other")
	f := &recorded{table: &table{self: "me", holders: map[string][]peer.ID{
		LayerKey("m", 0): {moved, other}, LayerKey("m", 1): {moved, other},
		LayerKey("m", 2): {moved, lagging}, LayerKey("m", 3): {moved, lagging},
	}}, records: map[peer.ID]p2p.PeerRecord{
		moved:   {Peer: moved, Model: "m", First: 2, Last: 3, Seq: 2},
		lagging: {Peer: lagging, Model: "m", First: 0, Last: 1, Seq: 1},
		other:   {Peer: other, Model: "m", First: 0, Last: 1, Seq: 1},
	}}
	v := New(f, "m", 4, time.Minute).Lookup(context.Background())
	if spans := v.Spans(); !slices.Equal(spans[moved], []layers.Span{{First: 2, Last: 3}}) || !slices.Equal(spans[lagging], []layers.Span{{First: 2, Last: 3}}) {
		t.Fatalf("spans: moved %v, lagging %v", spans[moved], spans[lagging])
	}
	if v.Layers[0].Replicas != 1 || v.Layers[2].Replicas != 2 || !v.Complete {
		t.Fatalf("layers: %+v", v.Layers)
	}
}
