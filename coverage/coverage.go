// Package coverage is a node's view of who holds which layers of the model, read from the
// DHT's provider records: one lookup per layer, in parallel, reused for a while. A refresh
// never holds a lock across the lookups: concurrent readers share one refresh
// (singleflight) and everyone else reads the last view meanwhile.
package coverage

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"golang.org/x/sync/singleflight"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "coverage") }

// LookupTimeout bounds one refresh of the view.
const LookupTimeout = 3 * time.Second

// LayerKey is the DHT content key of one layer of a model: "<model>/<layer>".
func LayerKey(model string, layer int) string { return model + "/" + strconv.Itoa(layer) }

// Finder is what the view needs of the DHT.
type Finder interface {
	ID() peer.ID
	FindProviders(ctx context.Context, key string, limit int) ([]peer.AddrInfo, error)
}

// Prober tells whether a peer answers now (a Finder may be one): a provider record outlives
// its holder by up to three reprovide intervals, so the view counts a holder only while it
// can be reached.
type Prober interface {
	Reachable(ctx context.Context, p peer.AddrInfo) bool
}

// ProbeTimeout bounds how long a refresh waits for the holders to answer.
const ProbeTimeout = 2 * time.Second

// Layer is who holds one layer.
type Layer struct {
	Index     int
	Providers []peer.ID // sorted
	// Replicas counts the holders other than this node: while a node chooses its layers they
	// are not yet announced, and once they are, a joining peer's view is what matters.
	Replicas int
}

// View is who holds each layer of a model, at one moment.
type View struct {
	Model    string
	Layers   []Layer
	Missing  []int // layers nobody holds
	Complete bool  // every layer has a holder
}

// ByPeer inverts the view: for each peer, the layers it holds, ascending.
func (v View) ByPeer() map[peer.ID][]int {
	out := map[peer.ID][]int{}
	for _, l := range v.Layers {
		for _, p := range l.Providers {
			out[p] = append(out[p], l.Index)
		}
	}
	return out
}

// Spans lists, for each peer of the view, the contiguous spans of layers it holds.
func (v View) Spans() map[peer.ID][]layers.Span {
	out := map[peer.ID][]layers.Span{}
	for p, ls := range v.ByPeer() {
		slices.Sort(ls)
		for i := 0; i < len(ls); {
			j := i
			for j+1 < len(ls) && ls[j+1] == ls[j]+1 {
				j++
			}
			out[p] = append(out[p], layers.Span{First: ls[i], Last: ls[j]})
			i = j + 1
		}
	}
	return out
}

// Cache reuses one view for Interval: the API's views, route planning and span choice all
// read it, and each refresh costs one DHT lookup per layer.
type Cache struct {
	finder   Finder
	model    string
	layers   int
	interval time.Duration
	group    singleflight.Group

	mu     sync.Mutex
	view   View
	at     time.Time
	set    bool
	forced bool // Expire asked the next Get to wait for a new lookup
}

// New makes a cache of a model's coverage, refreshed at most every interval.
func New(f Finder, model string, nlayers int, interval time.Duration) *Cache {
	return &Cache{finder: f, model: model, layers: nlayers, interval: interval}
}

// Get returns the cached view. A view older than the interval is returned as it is while
// one refresh runs behind it (stale while revalidating): a lookup that waits out a dead
// holder's dial takes seconds, and the round loop, route planning and the API must not wait
// for it. Only the first view, and one Expire asked for, are waited for; a caller whose ctx
// ends first gets the last view (or an empty one) and the refresh carries on for the others.
func (c *Cache) Get(ctx context.Context) View {
	c.mu.Lock()
	v, set, forced := c.view, c.set, c.forced
	fresh := set && !forced && time.Since(c.at) < c.interval
	c.mu.Unlock()
	if fresh {
		return v
	}
	ch := c.group.DoChan("refresh", func() (any, error) {
		lctx, cancel := context.WithTimeout(context.Background(), LookupTimeout)
		defer cancel()
		v := c.Lookup(lctx)
		c.mu.Lock()
		c.view, c.at, c.set, c.forced = v, time.Now(), true, false
		c.mu.Unlock()
		return v, nil
	})
	if set && !forced {
		return v
	}
	select {
	case r := <-ch:
		return r.Val.(View)
	case <-ctx.Done():
		if set {
			return v
		}
		return c.empty()
	}
}

// Expire makes the next Get wait for a new lookup if the view is older than maxAge (the view
// stays the fallback when that Get's ctx ends first). A caller that meets a peer the view
// may not know yet uses it; maxAge bounds how often that costs a lookup.
func (c *Cache) Expire(maxAge time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set && time.Since(c.at) > maxAge {
		c.forced = true
	}
}

func (c *Cache) empty() View {
	v := View{Model: c.model, Layers: make([]Layer, c.layers)}
	for i := range v.Layers {
		v.Layers[i] = Layer{Index: i, Providers: []peer.ID{}}
		v.Missing = append(v.Missing, i)
	}
	return v
}

// Lookup asks the DHT for the providers of every layer, in parallel, now.
func (c *Cache) Lookup(ctx context.Context) View {
	v := c.empty()
	var wg sync.WaitGroup
	found := make([][]peer.AddrInfo, len(v.Layers))
	for i := range v.Layers {
		wg.Go(func() {
			provs, err := c.finder.FindProviders(ctx, LayerKey(c.model, i), 0)
			if err != nil {
				logger().Debug("coverage lookup", "layer", i, "err", err)
			}
			found[i] = provs
		})
	}
	wg.Wait()
	live := c.probe(found)
	for i, provs := range found {
		ids := make([]peer.ID, 0, len(provs))
		for _, p := range provs {
			if live[p.ID] {
				ids = append(ids, p.ID)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		v.Layers[i] = Layer{Index: i, Providers: ids, Replicas: len(ids)}
	}
	self := c.finder.ID()
	v.Missing = []int{}
	for i := range v.Layers {
		if slices.Contains(v.Layers[i].Providers, self) {
			v.Layers[i].Replicas--
		}
		if len(v.Layers[i].Providers) == 0 {
			v.Missing = append(v.Missing, i)
		}
	}
	v.Complete = len(v.Missing) == 0
	return v
}

// probe asks every holder found whether it answers, each once and in parallel; without a
// Prober every holder counts.
func (c *Cache) probe(found [][]peer.AddrInfo) map[peer.ID]bool {
	all := map[peer.ID]peer.AddrInfo{}
	for _, provs := range found {
		for _, p := range provs {
			if a, ok := all[p.ID]; !ok || len(a.Addrs) == 0 {
				all[p.ID] = p
			}
		}
	}
	live := make(map[peer.ID]bool, len(all))
	pr, ok := c.finder.(Prober)
	if !ok {
		for id := range all {
			live[id] = true
		}
		return live
	}
	// A fresh deadline: the lookups may have used the refresh's.
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, ai := range all {
		wg.Go(func() {
			ok := id == c.finder.ID() || pr.Reachable(ctx, ai)
			mu.Lock()
			live[id] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return live
}

// Providers looks up the holders of one layer now, with their addresses.
func (c *Cache) Providers(ctx context.Context, layer int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	return c.finder.FindProviders(ctx, LayerKey(c.model, layer), 0)
}
