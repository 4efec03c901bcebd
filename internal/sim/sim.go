package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
	"golang.org/x/sync/errgroup"
)

// Model is the simulated model: the small preset, whose Layers layers each peer holds Span
// of (and serves, with its deterministic initial weights, when the run measures inference).
const (
	Model  = "neuroshard-small"
	Layers = 8
	Span   = 2
)

// Config sizes one run.
type Config struct {
	Peers     int           // swarm size
	Latency   time.Duration // one-way link latency
	Lookups   int           // DHT lookups measured
	Messages  int           // gossip messages published
	Churn     float64       // share of the peers replaced per ChurnTime (0.1)
	ChurnTime time.Duration // the simulated minute
	// Inference makes every peer serve its span (the node's pipeline over its stage) and the
	// observer generate through the swarm once a second during the churn.
	Inference bool
	// Reprovide is how often a holder announces its layers again (0: the node's own
	// interval, 10 minutes, with records kept 30). Departed holders are dropped by the
	// coverage view's probes, not by their records' expiry.
	Reprovide time.Duration
	Seed      uint64
	Log       func(format string, args ...any) // progress, if set
}

// Result is what one run measured.
type Result struct {
	Peers           int     `json:"peers"`
	LatencyMS       float64 `json:"link_latency_ms"`
	JoinSeconds     float64 `json:"join_seconds"`
	RoutingTableP50 int     `json:"routing_table_p50"`
	// DHT: lookups of a random peer's closest peers from a random peer.
	LookupP50MS  float64 `json:"lookup_p50_ms"`
	LookupP99MS  float64 `json:"lookup_p99_ms"`
	LookupAsked  float64 `json:"lookup_peers_asked_mean"` // peers queried per lookup (Kademlia's hops, summed over its parallel paths)
	LookupFailed int     `json:"lookup_failed"`
	// Provider lookups: the holders of one layer.
	ProvidersP50MS float64 `json:"providers_p50_ms"`
	ProvidersFound float64 `json:"providers_found_share"` // share of lookups that found a holder
	// Gossip: a message's arrival at every subscribed peer.
	GossipDelivered float64 `json:"gossip_delivered_share"`
	GossipP50MS     float64 `json:"gossip_p50_ms"`
	GossipP99MS     float64 `json:"gossip_p99_ms"`
	// Churn: the observer's coverage view, sampled while peers leave and join.
	ChurnSamples  []ChurnSample `json:"churn_samples"`
	CoverageShare float64       `json:"coverage_complete_share"` // samples whose view held every layer
	DeadCounted   float64       `json:"dead_holders_counted_share"`
	// Inference under churn: generations of InferenceTokens tokens by the observer through
	// the swarm (failover included), one a second.
	InferenceTried int     `json:"inference_tried,omitempty"`
	InferenceOK    float64 `json:"inference_success_share,omitempty"`
	InferenceP50MS float64 `json:"inference_p50_ms,omitempty"`
	// What the simulation itself costs, to size a run: goroutines and the Go heap in use once
	// every peer joined and the routing tables settled, and the most the process took from
	// the system by the end.
	Goroutines      int     `json:"goroutines"`
	HeapMB          float64 `json:"heap_in_use_mb"`
	SysMB           float64 `json:"process_memory_mb"`
	ConnsPerPeerP50 int     `json:"connections_per_peer_p50"`
}

// InferenceTokens is how many tokens each generation under churn decodes.
const InferenceTokens = 8

// ChurnSample is one look of the observer at the coverage while peers come and go.
type ChurnSample struct {
	Second   float64 `json:"second"`
	Live     int     `json:"live_peers"`
	Complete bool    `json:"complete"`
	Holders  int     `json:"holders_in_view"`
	Dead     int     `json:"dead_in_view"` // holders the view counts that have left
	// Generated: the observer's generation in this look succeeded (inference runs only).
	Generated *bool `json:"generated,omitempty"`
}

type swarm struct {
	cfg   Config
	mn    mocknet.Mocknet
	rng   *rand.Rand
	mu    sync.Mutex
	hosts []*p2p.Host
	dead  map[peer.ID]bool
	model layers.Config
	pipes map[peer.ID]*pipeline.Pipeline // inference runs: each peer's pipeline
	cms   []io.Closer                    // the peers' connection managers
}

func (s *swarm) logf(format string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log(format, args...)
	}
}

// newPeer adds a host to the in-memory network, linked to every peer in it.
func (s *swarm) newPeer(index int) (peer.ID, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return "", err
	}
	h, err := s.mn.AddPeer(k, ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", index>>16&255, index>>8&255, index&255)))
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	dead := maps.Clone(s.dead)
	s.mu.Unlock()
	for _, other := range s.mn.Peers() {
		// Not to the peers that left: an in-memory link accepts dials to a closed host, and
		// a joiner's connection would make a departed holder reachable again.
		if other != h.ID() && !dead[other] {
			if _, err := s.mn.LinkPeers(h.ID(), other); err != nil {
				return "", err
			}
		}
	}
	return h.ID(), nil
}

// start runs the node's p2p parts over a peer's host, bootstrapping off a few live peers, and
// provides its span.
func (s *swarm) start(ctx context.Context, id peer.ID, index int) error {
	s.mu.Lock()
	var boot []peer.AddrInfo
	live := s.liveLocked()
	for _, i := range s.rng.Perm(len(live))[:min(3, len(live))] {
		b := live[i]
		boot = append(boot, peer.AddrInfo{ID: b.ID(), Addrs: b.Libp2p().Addrs()})
	}
	s.mu.Unlock()
	// The in-memory hosts have no connection manager: every peer would keep a connection to
	// every peer it ever met (a full mesh, about 1,000 goroutines a peer at 300 peers, beyond
	// this machine's memory at 1,000). Each gets the node's watermarks, as a real node has;
	// its grace period shortened as the simulated minute is.
	cm, err := connmgr.NewConnManager(p2p.ConnLow, p2p.ConnHigh, connmgr.WithGracePeriod(s.cfg.ChurnTime/6),
		connmgr.WithSilencePeriod(time.Second))
	if err != nil {
		return err
	}
	s.mn.Host(id).Network().Notify(cm.Notifee())
	s.mu.Lock()
	s.cms = append(s.cms, cm)
	s.mu.Unlock()
	n, err := p2p.Over(s.mn.Host(id), p2p.WithBootstrap(boot...), p2p.WithDHTMode(p2p.DHTModeServer), p2p.WithProfile(p2p.ProfileLocal),
		p2p.WithIntervals(s.cfg.Reprovide, time.Second, time.Hour))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	first := (index % (Layers / Span)) * Span
	var keys []string
	for l := first; l < first+Span; l++ {
		keys = append(keys, coverage.LayerKey(Model, l))
	}
	if s.cfg.Inference {
		if err := s.serve(n, layers.Span{First: first, Last: first + Span - 1}); err != nil {
			return err
		}
	}
	n.SetAnnounced(keys)
	s.mu.Lock()
	s.hosts = append(s.hosts, n)
	s.mu.Unlock()
	return nil
}

// serve gives a peer the node's inference side for its span: a stage with the preset's
// deterministic initial weights (as every holder of a span starts), a pipeline over its own
// coverage view (refreshed rarely: it serves, the observer plans), the forward protocol.
func (s *swarm) serve(n *p2p.Host, span layers.Span) error {
	st, err := layers.NewStage(s.model, span, s.model.InitParams(span, 0))
	if err != nil {
		return err
	}
	pipe := pipeline.New(pipeline.Config{Model: s.model, Host: n, Coverage: coverage.New(n, Model, Layers, time.Hour),
		Local: func() *layers.Stage { return st }, AuditRate: -1, KVBudget: 64 << 20})
	n.ServeForward(pipe.ServeForward)
	s.mu.Lock()
	s.pipes[n.ID()] = pipe
	s.mu.Unlock()
	return nil
}

func (s *swarm) liveLocked() []*p2p.Host {
	var out []*p2p.Host
	for _, h := range s.hosts {
		if !s.dead[h.ID()] {
			out = append(out, h)
		}
	}
	return out
}

func (s *swarm) live() []*p2p.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liveLocked()
}

// Run builds a swarm of cfg.Peers and measures it.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Peers < 4 {
		return Result{}, fmt.Errorf("sim: %d peers (at least 4)", cfg.Peers)
	}
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the hosts' own logs would drown the figures
	model, err := layers.Preset(Model)
	if err != nil {
		return Result{}, err
	}
	s := &swarm{cfg: cfg, mn: mocknet.New(), rng: rand.New(rand.NewPCG(cfg.Seed, 1)), dead: map[peer.ID]bool{}, model: model,
		pipes: map[peer.ID]*pipeline.Pipeline{}}
	s.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency})
	defer func() {
		// In parallel: one by one, 1,000 hosts took over ten minutes to close.
		var g errgroup.Group
		g.SetLimit(16)
		for _, h := range s.hosts {
			g.Go(h.Close)
		}
		g.Wait()
		for _, cm := range s.cms {
			cm.Close()
		}
		s.mn.Close()
	}()
	res := Result{Peers: cfg.Peers, LatencyMS: ms(cfg.Latency)}
	start := time.Now()
	// The first few alone, then the rest in parallel batches, each bootstrapping off peers
	// already in.
	ids := make([]peer.ID, cfg.Peers)
	for i := range ids {
		id, err := s.newPeer(i)
		if err != nil {
			return res, err
		}
		ids[i] = id
	}
	next := 0
	for next < cfg.Peers {
		batch := min(cfg.Peers-next, max(1, next/2), 50)
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := range batch {
			wg.Go(func() {
				if err := s.start(ctx, ids[next+i], next+i); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return res, err
		}
		next += batch
		s.logf("  %d peers joined", next)
	}
	res.JoinSeconds = time.Since(start).Seconds()
	// Routing tables fill through the DHT's own refreshes.
	settle := time.Now().Add(30 * time.Second)
	for time.Now().Before(settle) {
		if p := routingP50(s.live()); p >= min(cfg.Peers-1, 20) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.RoutingTableP50 = routingP50(s.live())
	s.logf("  routing tables: median %d peers", res.RoutingTableP50)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	res.Goroutines, res.HeapMB = runtime.NumGoroutine(), float64(m.HeapInuse)/(1<<20)
	res.ConnsPerPeerP50 = connsP50(s.live())
	s.logf("  %d goroutines, %.0f MB of heap, median %d connections a peer", res.Goroutines, res.HeapMB, res.ConnsPerPeerP50)

	s.lookups(ctx, &res)
	s.logf("  lookups: p50 %.0f ms, %.1f peers asked", res.LookupP50MS, res.LookupAsked)
	if err := s.gossip(ctx, &res); err != nil {
		return res, err
	}
	s.logf("  gossip: %.3f delivered, p50 %.0f ms, p99 %.0f ms", res.GossipDelivered, res.GossipP50MS, res.GossipP99MS)
	if err := s.churn(ctx, &res); err != nil {
		return res, err
	}
	s.logf("  churn: coverage complete in %.2f of the looks, dead holders counted in %.2f", res.CoverageShare, res.DeadCounted)
	if res.InferenceTried > 0 {
		s.logf("  inference under churn: %.2f of %d generations of %d tokens, p50 %.0f ms", res.InferenceOK, res.InferenceTried, InferenceTokens, res.InferenceP50MS)
	}
	runtime.ReadMemStats(&m)
	res.SysMB = float64(m.Sys) / (1 << 20)
	return res, nil
}

func connsP50(hs []*p2p.Host) int {
	var n []int
	for _, h := range hs {
		n = append(n, len(h.Libp2p().Network().Conns()))
	}
	slices.Sort(n)
	return n[len(n)/2]
}

func routingP50(hs []*p2p.Host) int {
	var sizes []int
	for _, h := range hs {
		sizes = append(sizes, len(h.RoutingTable()))
	}
	slices.Sort(sizes)
	return sizes[len(sizes)/2]
}

// lookups measures closest-peer lookups of random peers and provider lookups of layers.
func (s *swarm) lookups(ctx context.Context, res *Result) {
	hs := s.live()
	var times []float64
	asked := 0
	for range s.cfg.Lookups {
		from, target := hs[s.rng.IntN(len(hs))], hs[s.rng.IntN(len(hs))]
		ectx, stop := context.WithCancel(ctx)
		qctx, events := routing.RegisterForQueryEvents(ectx) // closed when ectx ends
		var n atomic.Int64
		done := make(chan struct{})
		go func() {
			for e := range events {
				if e.Type == routing.SendingQuery {
					n.Add(1)
				}
			}
			close(done)
		}()
		lctx, cancel := context.WithTimeout(qctx, 30*time.Second)
		t0 := time.Now()
		_, err := from.ClosestPeers(lctx, string(target.ID()))
		d := time.Since(t0)
		cancel()
		stop()
		<-done
		if err != nil {
			res.LookupFailed++
			continue
		}
		times = append(times, ms(d))
		asked += int(n.Load())
	}
	res.LookupP50MS, res.LookupP99MS = quantile(times, 0.5), quantile(times, 0.99)
	if len(times) > 0 {
		res.LookupAsked = float64(asked) / float64(len(times))
	}
	times = times[:0]
	found := 0
	for range s.cfg.Lookups {
		from := hs[s.rng.IntN(len(hs))]
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		provs, _ := from.FindProviders(lctx, coverage.LayerKey(Model, s.rng.IntN(Layers)), 1)
		times = append(times, ms(time.Since(t0)))
		cancel()
		if len(provs) > 0 {
			found++
		}
	}
	res.ProvidersP50MS = quantile(times, 0.5)
	res.ProvidersFound = float64(found) / float64(s.cfg.Lookups)
}

// gossip publishes messages from random peers and times their arrival everywhere.
func (s *swarm) gossip(ctx context.Context, res *Result) error {
	hs := s.live()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var delays []float64
	got := 0
	var topics []*p2p.Topic // they end with their hosts
	for _, h := range hs {
		t, err := h.JoinTopic("/sim/gossip", 1024, func(peer.ID, []byte) bool { return true }, func(_ peer.ID, data []byte) {
			mu.Lock()
			defer mu.Unlock()
			if at, ok := sent[string(data)]; ok {
				delays = append(delays, ms(time.Since(at)))
				got++
			}
		})
		if err != nil {
			return err
		}
		topics = append(topics, t)
	}
	time.Sleep(2 * time.Second) // the mesh forms over a few heartbeats (1 s each)
	for i := range s.cfg.Messages {
		from := s.rng.IntN(len(topics))
		msg := fmt.Sprintf("message %d from %d", i, from)
		mu.Lock()
		sent[msg] = time.Now()
		mu.Unlock()
		if err := topics[from].Publish(ctx, []byte(msg)); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	res.GossipDelivered = float64(got) / float64(s.cfg.Messages*(len(hs)-1))
	res.GossipP50MS, res.GossipP99MS = quantile(delays, 0.5), quantile(delays, 0.99)
	return nil
}

// churn replaces cfg.Churn of the peers over cfg.ChurnTime, one at a time, while an observer
// (a peer that stays) refreshes its coverage view every second.
func (s *swarm) churn(ctx context.Context, res *Result) error {
	hs := s.live()
	observer := hs[0]
	view := coverage.New(observer, Model, Layers, time.Second)
	var gen *pipeline.Pipeline // the observer's generations, planned on its view
	if s.cfg.Inference {
		span := layers.Span{First: 0, Last: Span - 1} // the observer is peer 0
		st, err := layers.NewStage(s.model, span, s.model.InitParams(span, 0))
		if err != nil {
			return err
		}
		gen = pipeline.New(pipeline.Config{Model: s.model, Host: observer, Coverage: view, Local: func() *layers.Stage { return st }, AuditRate: -1})
	}
	var genTimes []float64
	genOK := 0
	replace := max(1, int(float64(s.cfg.Peers)*s.cfg.Churn))
	every := s.cfg.ChurnTime / time.Duration(replace)
	start := time.Now()
	next := time.Now()
	index := s.cfg.Peers
	left := 0
	complete, deadSeen := 0, 0
	for time.Since(start) < s.cfg.ChurnTime+churnTail {
		if n := len(res.ChurnSamples); left == replace && n > 0 && res.ChurnSamples[n-1].Dead == 0 &&
			time.Since(start) > s.cfg.ChurnTime+2*time.Second {
			break // every replacement made, and the view has let the departed go
		}
		if left < replace && time.Now().After(next) {
			live := s.live()
			victim := live[1+s.rng.IntN(len(live)-1)] // never the observer
			s.vanish(victim)
			id, err := s.newPeer(index)
			if err == nil {
				err = s.start(ctx, id, index)
			}
			if err != nil {
				return err
			}
			index++
			left++
			next = next.Add(every)
		}
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v := view.Get(vctx)
		cancel()
		sample := ChurnSample{Second: time.Since(start).Seconds(), Live: len(s.live()), Complete: v.Complete}
		s.mu.Lock()
		for id := range v.ByPeer() {
			sample.Holders++
			if s.dead[id] {
				sample.Dead++
			}
		}
		s.mu.Unlock()
		if gen != nil {
			t0 := time.Now()
			ok := generate(ctx, gen, s.model.Context) == nil
			sample.Generated = &ok
			res.InferenceTried++
			if ok {
				genOK++
				genTimes = append(genTimes, ms(time.Since(t0)))
			}
		}
		res.ChurnSamples = append(res.ChurnSamples, sample)
		if sample.Complete {
			complete++
		}
		if sample.Dead > 0 {
			deadSeen++
		}
		time.Sleep(time.Second)
	}
	n := float64(len(res.ChurnSamples))
	res.CoverageShare, res.DeadCounted = float64(complete)/n, float64(deadSeen)/n
	if res.InferenceTried > 0 {
		res.InferenceOK = float64(genOK) / float64(res.InferenceTried)
		res.InferenceP50MS = quantile(genTimes, 0.5)
	}
	return nil
}

// generate decodes InferenceTokens greedy tokens through the swarm, as a node's API does
// (layers.Generate over a route): a route over the view's holders, failing over to another
// holder when one has gone.
func generate(ctx context.Context, p *pipeline.Pipeline, window int) error {
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := p.Open(gctx)
	if err != nil {
		return err
	}
	defer r.Close()
	greedy := layers.DefaultSampling()
	greedy.Temperature, greedy.MaxTokens = 0, InferenceTokens
	_, _, err = layers.Generate(r, window, layers.Encode("ROMEO:"), greedy, func(int32) error { return gctx.Err() })
	return err
}

// churnTail is how long at most the observer keeps looking after the last replacement, until
// its view (refreshed every second, each refresh behind the last look) counts no departed
// holder: the 30 s within which a node drops a silent holder.
const churnTail = 30 * time.Second

// vanish takes a peer off the network as a machine that goes away does: its host closes, and
// nothing can reach it any more (an in-memory link would still accept dials to a closed host).
func (s *swarm) vanish(h *p2p.Host) {
	s.mu.Lock()
	s.dead[h.ID()] = true
	s.mu.Unlock()
	// Every link goes before any connection closes, the host's own closing included: a peer
	// still talking to it (a session of the observer's generation) could otherwise dial it
	// again in between, and the new connection, to a host that is gone, would keep it
	// "reachable" for good (the view counted one departed holder for the whole tail).
	peers := s.mn.Peers()
	for _, other := range peers {
		if other != h.ID() {
			s.mn.UnlinkPeers(h.ID(), other)
		}
	}
	h.Close()
	for _, other := range peers {
		if other != h.ID() {
			s.mn.DisconnectPeers(h.ID(), other)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantile is the q-quantile of xs (nearest rank), 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(len(s)-1, max(0, i))]
}
