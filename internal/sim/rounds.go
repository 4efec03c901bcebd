package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// RoundsConfig sizes the DiLoCo rounds measurement.
type RoundsConfig struct {
	Replicas  []int         // replica counts measured
	Rounds    int           // rounds timed per count
	Latency   time.Duration // one-way link latency
	Bandwidth float64       // bytes per second of every link (0: unlimited)
	Log       func(format string, args ...any)
}

// RoundResult is one replica count's rounds.
type RoundResult struct {
	Replicas int     `json:"replicas"`
	P50MS    float64 `json:"round_p50_ms"`
	MaxMS    float64 `json:"round_max_ms"`
	// Shared is the share of rounds after which every replica held the same weights, having
	// averaged all of them.
	Shared float64 `json:"shared_share"`
	// SentBytes is what a replica sent per round, on average (contributions and results).
	SentBytes float64 `json:"sent_bytes_per_replica_round"`
}

// RoundsModel and RoundsSpan are the model and span the simulated replicas hold: two layers of
// the small preset (about 0.4 M parameters; fp16 on the wire, the node's default).
const RoundsModel = "neuroshard-small"

var RoundsSpan = layers.Span{First: 0, Last: 1}

// Rounds measures DiLoCo rounds among the replicas of one span over the simulated wire, for
// each replica count: the node's diloco.Replica and its exchange protocol (replicanet) over
// p2p hosts on mocknet, each replica taking different simulated inner steps (a deterministic
// perturbation of its weights) and then running the round with the others at once. A round's
// time is from its start to the last replica's end.
func Rounds(ctx context.Context, cfg RoundsConfig) ([]RoundResult, error) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the replicas' logs would drown the figures
	var out []RoundResult
	for _, n := range cfg.Replicas {
		r, err := roundsOf(ctx, cfg, n)
		if err != nil {
			return out, fmt.Errorf("%d replicas: %w", n, err)
		}
		if cfg.Log != nil {
			cfg.Log("  %d replicas: round p50 %.0f ms, max %.0f ms, shared %.2f, %.0f KB sent per replica", n, r.P50MS, r.MaxMS, r.Shared, r.SentBytes/1024)
		}
		out = append(out, r)
	}
	return out, nil
}

// simWeights are a replica's weights: no stage, the parameters alone.
type simWeights struct {
	mu sync.Mutex
	p  *layers.Params
}

func (w *simWeights) Params() *layers.Params {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p.Clone()
}

func (w *simWeights) SetParams(p *layers.Params) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p = p.Clone()
	return nil
}

// step stands for a round's inner steps: a small perturbation, different for each replica.
func (w *simWeights) step(rng *rand.Rand) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.p.Values {
		for i := range v {
			v[i] += float32(rng.NormFloat64() * 1e-3)
		}
	}
}

// staticMembers is a span's membership that every replica knows at once: the gossip's view
// once it has settled.
type staticMembers struct {
	ids      []string
	replicas map[string]*diloco.Replica
}

func (m staticMembers) Replicas(context.Context) []string { return m.ids }
func (m staticMembers) Round(p string) (int64, bool) {
	if r := m.replicas[p]; r != nil {
		return r.State().Round, true
	}
	return 0, false
}
func (m staticMembers) Connected(string) bool { return true }

func roundsOf(ctx context.Context, cfg RoundsConfig, n int) (RoundResult, error) {
	mn := mocknet.New()
	defer mn.Close()
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency, Bandwidth: cfg.Bandwidth})
	model, err := layers.Preset(RoundsModel)
	if err != nil {
		return RoundResult{}, err
	}
	init := model.InitParams(RoundsSpan, 1)
	span := replicanet.Span{Model: RoundsModel, Span: RoundsSpan}
	members := staticMembers{replicas: map[string]*diloco.Replica{}}
	type rep struct {
		host *p2p.Host
		r    *diloco.Replica
		w    *simWeights
		rng  *rand.Rand
	}
	reps := make([]*rep, n)
	keys := make([]crypto.PrivKey, n)
	for i := range n {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return RoundResult{}, err
		}
		keys[i] = k
		h, err := mn.AddPeer(k, ma.StringCast(fmt.Sprintf("/ip4/10.1.%d.%d/tcp/4001", i>>8&255, i&255)))
		if err != nil {
			return RoundResult{}, err
		}
		hs, err := p2p.Over(h, p2p.WithProfile(p2p.ProfileLocal), p2p.WithDHTMode(p2p.DHTModeServer))
		if err != nil {
			return RoundResult{}, err
		}
		defer hs.Close()
		reps[i] = &rep{host: hs, w: &simWeights{p: init.Clone()}, rng: rand.New(rand.NewPCG(uint64(i), 7))}
		members.ids = append(members.ids, hs.ID().String())
	}
	slices.Sort(members.ids)
	if err := mn.LinkAll(); err != nil {
		return RoundResult{}, err
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		return RoundResult{}, err
	}
	for i, rp := range reps {
		rp.r = diloco.NewReplica(diloco.ReplicaConfig{
			Self: rp.host.ID().String(), Specs: model.ParamSpecs(RoundsSpan), Weights: rp.w,
			Transport:  replicanet.Transport{Host: rp.host, Span: func() replicanet.Span { return span }},
			Membership: members, Signer: replicanet.Signer{Key: keys[i]},
			Settings: func() diloco.Settings {
				return diloco.Settings{Compression: diloco.CompressFP16, OuterLR: diloco.DefaultOuterLR, OuterMomentum: diloco.DefaultOuterMomentum}
			},
			Loss: func() float32 { return 2 }, RoundTimeout: 30 * time.Second,
		})
		members.replicas[rp.host.ID().String()] = rp.r
		r := rp.r
		rp.host.ServeExchange(replicanet.Handler(func() (*diloco.Replica, replicanet.Span) { return r, span }, func(peer.ID) {}))
	}
	var took []float64
	shared := 0
	for round := range cfg.Rounds {
		for _, rp := range reps {
			rp.w.step(rp.rng)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, rp := range reps {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				for range 5 { // a replica sent to another aggregator runs the round again
					if err := rp.r.RunRound(rctx, int64(round+1)*10); err == nil || rctx.Err() != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		took = append(took, ms(time.Since(start)))
		h := reps[0].r.State()
		same := len(h.LastUsed) == n
		for _, rp := range reps[1:] {
			st := rp.r.State()
			same = same && st.Hash == h.Hash && st.Round == h.Round
		}
		if same {
			shared++
		}
	}
	var sent int64
	for _, rp := range reps {
		sent += rp.r.State().SentBytes
	}
	return RoundResult{Replicas: n, P50MS: quantile(took, 0.5), MaxMS: slices.Max(took), Shared: float64(shared) / float64(cfg.Rounds),
		SentBytes: float64(sent) / float64(n*cfg.Rounds)}, nil
}
