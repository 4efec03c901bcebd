package coverage

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
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

// LayerKeys are the content keys of a span's layers.
func LayerKeys(model string, s layers.Span) []string {
	keys := make([]string, 0, s.Len())
	for _, i := range s.Indices() {
		keys = append(keys, LayerKey(model, i))
	}
	return keys
}

// Prober tells whether a peer answers now (a Finder may be one): a provider record outlives
// its holder by up to three reprovide intervals, so the view counts a holder only while it
// can be reached.
type Prober interface {
	Reachable(ctx context.Context, p peer.AddrInfo) bool
}

// ProbeTimeout bounds how long a refresh waits for the holders to answer.
const ProbeTimeout = 2 * time.Second

// Recorder finds peers' records (p2p.Host is one): what each holder says of its memory and
// measured throughput.
type Recorder interface {
	PeerRecord(ctx context.Context, id peer.ID) (p2p.PeerRecord, error)
}

// RecordTTL is how long a holder's record is reused before it is looked up again; a record
// whose span no longer matches the holder's provider records is looked up at once, and one
// without a measured throughput (the holder may be measuring) after noRecordTTL.
const RecordTTL = 5 * time.Minute

// noRecordTTL is how long a holder found without a record is not asked again.
const noRecordTTL = 30 * time.Second

// heldRecord is a record and when it was found (Seq 0: none was).
type heldRecord struct {
	rec p2p.PeerRecord
	at  time.Time
}

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
	// Records are the holders' records, for those that have one for this model (this node's
	// too, once it has one).
	Records map[peer.ID]p2p.PeerRecord
}

// Holds tells whether a peer holds any layer in the view.
func (v View) Holds(id peer.ID) bool {
	for _, l := range v.Layers {
		if _, ok := slices.BinarySearch(l.Providers, id); ok {
			return true
		}
	}
	return false
}

// Decode is a holder's measured decode throughput (tokens per second through the whole
// model), 0 when it is unknown.
func (v View) Decode(id peer.ID) float64 { return v.Records[id].Throughput.Decode }

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

// HoldersOf lists the peers other than self that hold exactly span.
func (v View) HoldersOf(span layers.Span, self peer.ID) []peer.ID {
	var out []peer.ID
	for id, spans := range v.Spans() {
		if id != self && slices.Contains(spans, span) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
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

// IncompleteInterval bounds how long a view with a layer nobody holds is reused: a node that
// has just started, or whose view lost a layer's last holder, sees the holders that come
// within seconds instead of after the whole interval (a complete view is reused longer).
const IncompleteInterval = 2 * time.Second

// Cache reuses one view for Interval (IncompleteInterval while a layer is missing): the API's
// views, route planning and span choice all read it, and each refresh costs one DHT lookup
// per layer.
type Cache struct {
	finder     Finder
	model      string
	layers     int
	interval   time.Duration
	incomplete time.Duration // the reuse of a view with a missing layer
	group      singleflight.Group

	mu      sync.Mutex
	view    View
	at      time.Time
	set     bool
	forced  bool // Expire asked the next Get to wait for a new lookup
	records map[peer.ID]heldRecord
}

// New makes a cache of a model's coverage, refreshed at most every interval.
func New(f Finder, model string, nlayers int, interval time.Duration) *Cache {
	return &Cache{finder: f, model: model, layers: nlayers, interval: interval, incomplete: min(interval, IncompleteInterval)}
}

// Get returns the cached view. A view older than the interval is returned as it is while
// one refresh runs behind it (stale while revalidating): a lookup that waits out a dead
// holder's dial takes seconds, and the round loop, route planning and the API must not wait
// for it. Only the first view, and one Expire asked for, are waited for; a caller whose ctx
// ends first gets the last view (or an empty one) and the refresh carries on for the others.
func (c *Cache) Get(ctx context.Context) View {
	c.mu.Lock()
	v, set, forced := c.view, c.set, c.forced
	ttl := c.interval
	if !v.Complete {
		ttl = c.incomplete
	}
	fresh := set && !forced && time.Since(c.at) < ttl
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

// Last is the last view, without a refresh or a wait (an empty one before the first lookup).
func (c *Cache) Last() View {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.set {
		return c.empty()
	}
	return c.view
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
	v := View{Model: c.model, Layers: make([]Layer, c.layers), Records: map[peer.ID]p2p.PeerRecord{}}
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
		v.Layers[i] = Layer{Index: i, Providers: ids}
	}
	v.Records = c.recordsOf(v)
	// A holder's own signed record names the span it holds now; its provider records of other
	// layers are what it announced before it moved (they stay in the DHT until they expire).
	// Where it still provides layers of its record, its claims outside the record are dropped.
	for id, r := range v.Records {
		if !slices.ContainsFunc(v.Layers, func(l Layer) bool { return l.Index >= r.First && l.Index <= r.Last && slices.Contains(l.Providers, id) }) {
			continue
		}
		for i := range v.Layers {
			if i < r.First || i > r.Last {
				v.Layers[i].Providers = slices.DeleteFunc(v.Layers[i].Providers, func(p peer.ID) bool { return p == id })
			}
		}
	}
	self := c.finder.ID()
	v.Missing = []int{}
	for i := range v.Layers {
		v.Layers[i].Replicas = len(v.Layers[i].Providers)
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

// recordsOf finds the records of the view's holders: reused while younger than RecordTTL and
// naming the span the holder provides, else looked up, in parallel. A holder without a record
// (an older node, or one not yet put) is left out; so is a record of another model.
func (c *Cache) recordsOf(v View) map[peer.ID]p2p.PeerRecord {
	out := map[peer.ID]p2p.PeerRecord{}
	rf, ok := c.finder.(Recorder)
	if !ok {
		return out
	}
	spans := v.Spans()
	c.mu.Lock()
	if c.records == nil {
		c.records = map[peer.ID]heldRecord{}
	}
	var stale []peer.ID
	for id, sp := range spans {
		h, ok := c.records[id]
		switch {
		case id == c.finder.ID(): // this node's own: no lookup
			stale = append(stale, id)
		case ok && h.rec.Seq == 0 && time.Since(h.at) < noRecordTTL: // none a moment ago
		case ok && h.rec.Throughput.Decode == 0 && time.Since(h.at) >= noRecordTTL: // not measured then: look again
			stale = append(stale, id)
		case ok && time.Since(h.at) < RecordTTL && len(sp) == 1 && h.rec.First == sp[0].First && h.rec.Last == sp[0].Last:
			out[id] = h.rec
		default:
			stale = append(stale, id)
		}
	}
	for id := range c.records {
		if _, held := spans[id]; !held {
			delete(c.records, id)
		}
	}
	c.mu.Unlock()
	found := eachPeer(stale, func(ctx context.Context, id peer.ID) (p2p.PeerRecord, bool) {
		r, err := rf.PeerRecord(ctx, id)
		if err != nil {
			logger().Debug("no peer record", "peer", id, "err", err)
		}
		return r, err == nil && r.Model == c.model
	})
	maps.Copy(out, found)
	c.mu.Lock()
	for _, id := range stale {
		c.records[id] = heldRecord{rec: out[id], at: time.Now()}
	}
	c.mu.Unlock()
	return out
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
	pr, ok := c.finder.(Prober)
	return eachPeer(slices.Collect(maps.Keys(all)), func(ctx context.Context, id peer.ID) (bool, bool) {
		return !ok || id == c.finder.ID() || pr.Reachable(ctx, all[id]), true
	})
}

// eachPeer runs f for every peer at once, under one fresh ProbeTimeout deadline (a refresh's
// lookups may have used its own), and keeps what f says to keep.
func eachPeer[T any](ids []peer.ID, f func(ctx context.Context, id peer.ID) (T, bool)) map[peer.ID]T {
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	out := make(map[peer.ID]T, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if v, keep := f(ctx, id); keep {
				mu.Lock()
				out[id] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// Providers looks up the holders of one layer now, with their addresses.
func (c *Cache) Providers(ctx context.Context, layer int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	return c.finder.FindProviders(ctx, LayerKey(c.model, layer), 0)
}

// Capacity is what the holders' records say the network can do.
type Capacity struct {
	// Layers is, for each layer, the tokens per second its holders pass through it together
	// when decoding one sequence each: a holder that decodes d tokens/s through all L layers
	// and holds k of them passes d*L/k through each. Holders without a measured record add
	// nothing.
	Layers []float64
	// Decode is the whole model's figure: its slowest layer's (0 while any layer has no
	// measured holder). DecodeBatch8 is the same from the holders' batch-8 figures.
	Decode, DecodeBatch8   float64
	MemoryBytes, UsedBytes int64 // the budgets and span weights of the holders with records
	Recorded, Measured     int   // holders with a record; those with a measured throughput
}

// heldLen is how many layers a holder computes per token: its record's span (what it serves),
// else the span its provider records show (a lookup may find some of them before the rest).
func (v View) heldLen(id peer.ID, sp layers.Span) int {
	if r, ok := v.Records[id]; ok && r.Holds() && r.First <= sp.First && sp.Last <= r.Last {
		return r.Last - r.First + 1
	}
	return sp.Len()
}

// Capacity sums the holders' records layer by layer.
func (v View) Capacity() Capacity {
	c := Capacity{Layers: make([]float64, len(v.Layers))}
	b8 := make([]float64, len(v.Layers))
	L := float64(len(v.Layers))
	spans := v.Spans()
	for id, r := range v.Records {
		c.Recorded++
		c.MemoryBytes += r.MemoryBytes
		c.UsedBytes += r.UsedBytes
		if r.Throughput.Decode > 0 {
			c.Measured++
		}
		for _, sp := range spans[id] {
			k := float64(v.heldLen(id, sp))
			for l := sp.First; l <= sp.Last && l < len(v.Layers); l++ {
				c.Layers[l] += r.Throughput.Decode * L / k
				b8[l] += r.Throughput.DecodeBatch8 * L / k
			}
		}
	}
	if len(v.Layers) > 0 {
		c.Decode, c.DecodeBatch8 = slices.Min(c.Layers), slices.Min(b8)
	}
	return c
}
