package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "pipeline") }

// Host is what the pipeline needs of the p2p host.
type Host interface {
	ID() peer.ID
	Latency(peer.ID) time.Duration
	OpenForward(ctx context.Context, p peer.ID, req p2p.ForwardOpen) (*p2p.ForwardClient, error)
	OpenTrain(ctx context.Context, p peer.ID, req p2p.ForwardOpen) (*p2p.TrainClient, error)
}

// Config builds a Pipeline.
type Config struct {
	Model    layers.Config
	Host     Host
	Coverage *coverage.Cache
	// Local is the stage this node serves inference from (nil before it has one): the pinned
	// version of its weights.
	Local func() *layers.Stage
	// Train is the stage training steps run on (its weights move with every inner step);
	// nil: Local.
	Train func() *layers.Stage
	// OnFailover, when set, is called each time a route replaces a failed stage.
	OnFailover func()
	// AuditRate is the chance each remote stage of a finished generation is audited; 0:
	// DefaultAuditRate, negative: none.
	AuditRate float64
	// AuditFull checks every step of every remote stage against a witness before its answer
	// is used (witness.go); the sampled audits are then moot.
	AuditFull bool
	// KVBudget is the bytes of KV cache the node's sessions may reserve, its own generations
	// and the sessions it serves to peers together; 0: DefaultKVBudget.
	KVBudget int64
	// ComputeShare is the part of the node's cores one peer's sessions may use on average,
	// and ComputeBurst the compute time they may use at once (compute.go); 0: the defaults.
	ComputeShare float64
	ComputeBurst time.Duration
	// StepFloor is the least time a remote stage gets for a step once its speed is known
	// (stepTimeout); 0: DefaultStepFloor.
	StepFloor time.Duration
	// OnConvicted, when set, is called (in the background) each time this node convicts a
	// peer by a fraud proof, with the proof's ID: one it found and gossiped (mine), or one
	// gossiped by another that its own check convicted. The ledger's slash starts there.
	OnConvicted func(accused peer.ID, proof [32]byte, mine bool) error
}

// ErrNoRoute is matched by a *NoRouteError: no reachable peers cover every layer.
var ErrNoRoute = errors.New("pipeline: no route")

// NoRouteError says which layers no reachable peer holds.
type NoRouteError struct {
	Model   string
	Missing []int
}

func (e *NoRouteError) Error() string {
	return fmt.Sprintf("no reachable peer holds layers %v of %s", e.Missing, e.Model)
}

// Is makes errors.Is(err, ErrNoRoute) hold.
func (e *NoRouteError) Is(target error) bool { return target == ErrNoRoute }

// Pipeline plans and runs routes for this node and serves its span to other peers.
type Pipeline struct {
	model      layers.Config
	host       Host
	cov        *coverage.Cache
	local      func() *layers.Stage
	train      func() *layers.Stage
	onFailover func()
	onConvict  func(accused peer.ID, proof [32]byte, mine bool) error

	budget  kvBudget
	audits  auditState
	fraud   fraudState
	compute computeBudgets
	running atomic.Int64
	waits   atomic.Int64 // steps sent again after a stage's BUSY was waited out

	subs           subStages
	served         atomic.Int64  // forward sessions served to peers
	servedBy       sessionCounts // ... by peer
	servedUnknown  atomic.Int64  // ... to peers without a standing here (knownPeer)
	servedSessions sync.Map      // ... their *layers.Session (receipts signed together)
	using          sessionCounts // forward sessions this node has open, by serving peer
	speed          stepSpeeds    // measured time per position of remote stages
}

// New builds a pipeline.
func New(cfg Config) *Pipeline {
	budget := cfg.KVBudget
	if budget <= 0 {
		budget = DefaultKVBudget
	}
	onFailover := cfg.OnFailover
	if onFailover == nil {
		onFailover = func() {}
	}
	train := cfg.Train
	if train == nil {
		train = cfg.Local
	}
	floor := cfg.StepFloor
	if floor <= 0 {
		floor = DefaultStepFloor
	}
	share, burst := cfg.ComputeShare, cfg.ComputeBurst
	if share <= 0 {
		share = DefaultComputeShare
	}
	if burst <= 0 {
		burst = DefaultComputeBurst
	}
	return &Pipeline{compute: computeBudgets{share: share, burst: burst}, model: cfg.Model, host: cfg.Host, cov: cfg.Coverage, local: cfg.Local, train: train, onFailover: onFailover, onConvict: cfg.OnConvicted,
		budget: kvBudget{limit: budget}, audits: auditState{rate: auditRate(cfg.AuditRate), full: cfg.AuditFull}, speed: stepSpeeds{floor: floor}}
}

func (p *Pipeline) localSpan() layers.Span {
	if st := p.local(); st != nil {
		return st.Span()
	}
	return layers.Span{First: -1, Last: -2}
}

// Served is how many forward sessions this node serves to peers now.
func (p *Pipeline) Served() int64 { return p.served.Load() }

// Running is how many of the node's own generations hold a reservation now.
func (p *Pipeline) Running() int { return int(p.running.Load()) }

// BusyWaits is how many times a route waited out a stage's BUSY (no other holder) and sent
// its step again.
func (p *Pipeline) BusyWaits() int64 { return p.waits.Load() }

// KVReserved is the bytes of KV cache reserved now, by the node's generations and the
// sessions it serves.
func (p *Pipeline) KVReserved() int64 { return p.budget.inUse() }

// Acquire reserves the KV cache of one of the node's own generations over the held span
// (positions long), refusing at once with a *BusyError when the budget is full; release
// gives it back.
func (p *Pipeline) Acquire(positions int) (release func(), err error) {
	n := sessionBytes(p.model, p.localSpan(), 1, min(positions, p.model.Context))
	if err := p.budget.reserve("", n, true); err != nil {
		return nil, err
	}
	p.running.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.running.Add(-1)
			p.budget.release("", n)
		})
	}, nil
}

// Holdings lists, for each peer the coverage view knows (this node included), the
// contiguous spans it holds.
func (p *Pipeline) Holdings(ctx context.Context) map[peer.ID][]layers.Span { return p.holdings(ctx) }

// Open plans a route over the layers' holders and opens a session on every stage of it.
func (p *Pipeline) Open(ctx context.Context) (*Route, error) { return p.openRoute(ctx) }

// StageFor returns a stage running exactly span, which lies within the held span.
func (p *Pipeline) StageFor(span layers.Span) (*layers.Stage, error) { return p.stageFor(span) }

// Using is how many forward sessions this node has open on each serving peer now.
func (p *Pipeline) Using() map[peer.ID]int {
	p.using.mu.Lock()
	defer p.using.mu.Unlock()
	return maps.Clone(p.using.by)
}
