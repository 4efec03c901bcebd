package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/internal/datadir"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/ledgersync"
	"github.com/neuroshard/neuroshard/nodeapi"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
	"github.com/neuroshard/neuroshard/settings"
)

// ErrClosed is returned when starting a closed node.
var ErrClosed = errors.New("node: closed")

// joinCoverageTimeout bounds the coverage lookup a joining node makes to choose its layers.
const joinCoverageTimeout = 5 * time.Second

// Node is one NeuroShard peer. New prepares it (data dir, identity, token, listening p2p
// host); Start joins the network, takes its layers and serves the API; Close undoes it all.
type Node struct {
	cfg            Config
	model          layers.Config
	key            crypto.PrivKey
	token          string
	tokenGenerated bool
	settings       *settings.Store
	host           *p2p.Host
	front          Frontend // the REST API, attached by the caller
	cov            *coverage.Cache
	pipe           *pipeline.Pipeline
	api            *nodeapi.API // the REST API's backend
	train          trainState
	rep            atomic.Pointer[diloco.Replica] // the span's DiLoCo round (after Start; a move replaces it)
	roundWake      chan struct{}                  // an inner step or a report: the round loop looks again
	catch          *replicanet.Catchup
	yielding       atomic.Bool // the training driver waits for serving to end
	reports        diloco.ReportBook
	gossip         *replicanet.Reports // the training reports' topic
	ledger         *ledger.Ledger
	wallet         *ledger.Wallet
	lsync          *ledgersync.Sync

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	span    layers.Span
	stage   *layers.Stage
	state   atomic.Value // "created", "starting", "running", "stopping", "stopped"
	started time.Time
	closed  bool

	bench    benchState
	writes   datadir.Writes // the node's checkpoint writes, failed or not
	served   served
	loops    *spanLoops  // the held span's round and training loops (under mu)
	measured atomic.Bool // the first measure is done: a layer-0 stage may drive training

	probeDir string // temporary data dir of a probe, removed by Close
	// tamper, when set (tests only), rewrites the node's pseudo-gradient before it is sent:
	// a dishonest replica.
	tamper      func(*layers.Params)
	loadedRound int64 // DiLoCo rounds the loaded checkpoint had completed
}

// Frontend is what the node serves once its parts run and stops before them: its REST API
// (httpapi.Server), built by the caller over the node (which answers the API's questions), so
// the node links no HTTP server.
type Frontend interface {
	Start(addr string) error // listen on addr ("host:port") and serve in the background
	Addr() net.Addr          // the listening address, nil before Start
	Close() error
}

// WalletAddress is the node's wallet address.
func (n *Node) WalletAddress() ledger.Address { return n.wallet.Address() }

// Ledger is the node's ledger (for tests and tools).
func (n *Node) Ledger() *ledger.Ledger { return n.ledger }

// API is the REST API's backend over this node (httpapi serves it).
func (n *Node) API() *nodeapi.API { return n.api }

// State is where the node is in its life: created, starting, running, stopping or stopped.
func (n *Node) State() string { return n.state.Load().(string) }

// Started is when the node started running (zero before).
func (n *Node) Started() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started
}

// APIPort is the port the REST API listens on (the configured one before it listens).
func (n *Node) APIPort() int {
	if n.front != nil {
		if a, ok := n.front.Addr().(*net.TCPAddr); ok {
			return a.Port
		}
	}
	return n.cfg.Port
}

// CheckDataDir reports whether the data dir can be written.
// A write the node could not make (the last checkpoint) counts too, until one succeeds.
func (n *Node) CheckDataDir() error {
	if err := n.writes.Err(); err != nil {
		return err
	}
	return datadir.CheckWritable(n.cfg.DataDir)
}

// Attach gives the node its frontend; call it before Start. The frontend listens on the
// Config's API host and port once the node runs, and is closed first.
func (n *Node) Attach(f Frontend) { n.front = f }

// New prepares a node: it creates the data dir, loads or creates the identity and the token,
// and opens the p2p host (which listens at once). Nothing is announced until Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	model, _ := layers.Preset(cfg.Model) // checked by Validate
	if err := datadir.Prepare(cfg.DataDir); err != nil {
		return nil, err
	}
	key, err := p2p.LoadOrCreateIdentity(filepath.Join(cfg.DataDir, identityFile))
	if err != nil {
		return nil, err
	}
	token, generated, err := datadir.LoadToken(cfg.DataDir, cfg.Token)
	if err != nil {
		return nil, err
	}
	st, err := settings.Load(filepath.Join(cfg.DataDir, settingsFile))
	if err != nil {
		return nil, err
	}
	st.Override(func(s *settings.Settings) { // flags for this run
		if cfg.Train != nil {
			s.Training.Enabled = *cfg.Train
		}
		if cfg.DiLoCoSteps > 0 {
			s.Training.DiLoCoSteps = cfg.DiLoCoSteps
		}
		if cfg.Compression != "" {
			s.Training.Compression = cfg.Compression
		}
		if cfg.OuterLR != nil {
			s.Training.OuterLR = *cfg.OuterLR
		}
		if cfg.OuterMomentum != nil {
			s.Training.OuterMomentum = *cfg.OuterMomentum
		}
	})
	wallet, err := ledger.WalletFromToken(token)
	if err != nil {
		return nil, err
	}
	params := ledger.DefaultParams()
	if cfg.Network != nil {
		params = *cfg.Network
	}
	lg, err := ledger.Open(filepath.Join(cfg.DataDir, ledgerDir), params, ledger.Options{Logger: slog.Default().With("pkg", "ledger")})
	if errors.Is(err, ledger.ErrNetwork) {
		dir := filepath.Join(cfg.DataDir, ledgerDir)
		return nil, fmt.Errorf("%w\n(the ledger in %s was made under other network rules, by another --network-config or an older release whose default rules differ: run with the rules it was made with, or move %s aside to start this network's ledger; the wallet is kept apart and is not affected)", err, dir, dir)
	}
	if err != nil {
		return nil, err
	}
	// A ledger whose accounts do not add up to minted - burned was damaged outside the
	// ledger's own writes; say so loudly rather than serve it silently.
	if held, err := lg.Audit(); err != nil {
		logger().Error("ledger audit failed", "held", held, "err", err)
	}
	n := &Node{cfg: cfg, model: model, key: key, token: token, tokenGenerated: generated, settings: st, roundWake: make(chan struct{}, 1), ledger: lg, wallet: wallet}
	n.state.Store("created")
	n.ctx, n.cancel = context.WithCancel(context.Background())

	p2pPort := 0
	if cfg.Port != 0 {
		p2pPort = cfg.Port + P2PPortOffset
	}
	listen, err := p2p.ListenAddrsFor(cfg.Host, p2pPort)
	if err != nil {
		lg.Close()
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	boot, _ := p2p.ParseBootstrap(cfg.Bootstrap) // checked by Validate
	relays, _ := p2p.ParseBootstrap(cfg.Relays)
	netOpts := []p2p.Option{p2p.WithRelays(relays...)}
	if cfg.Relay {
		netOpts = append(netOpts, p2p.WithRelayService())
	}
	if cfg.Reachability != "" {
		netOpts = append(netOpts, p2p.WithReachability(cfg.Reachability))
	}
	if cfg.Gater != nil {
		netOpts = append(netOpts, p2p.WithGater(cfg.Gater))
	}
	n.host, err = p2p.New(key, append(netOpts,
		p2p.WithListenAddrs(listen...),
		p2p.WithBootstrap(boot...),
		p2p.WithDHTMode(p2p.DHTMode(cfg.DHTMode)),
		p2p.WithProfile(p2p.Profile(cfg.Profile)),
		p2p.WithUserAgent("neuroshard/"+Version),
		p2p.WithIntervals(cfg.ReprovideInterval, cfg.BootstrapInterval, cfg.PingInterval),
	)...)
	if err != nil {
		lg.Close()
		return nil, err
	}
	n.lsync, err = ledgersync.New(ledgersync.Config{Host: n.host, Ledger: lg, Wallet: wallet, ModelLayers: model.Layers, Interval: cfg.LedgerSyncInterval})
	if err != nil {
		return nil, errors.Join(err, n.host.Close(), lg.Close())
	}
	n.cov = coverage.New(n.host, model.Name, model.Layers, cfg.CoverageInterval)
	n.pipe = pipeline.New(pipeline.Config{Model: model, Host: n.host, Coverage: n.cov, Local: n.Serving, Train: n.Stage, OnFailover: func() { n.api.Failover() },
		KVBudget: n.kvBudget(), AuditRate: cfg.AuditRate, AuditFull: cfg.AuditFull, StepFloor: cfg.StepFloor, ComputeShare: cfg.ComputeShare, ComputeBurst: cfg.ComputeBurst, OnConvicted: n.lsync.Convicted})
	n.api, err = nodeapi.New(nodeapi.Config{Node: n, Version: Version, DataDir: cfg.DataDir, Bootstrap: cfg.Bootstrap, Model: model,
		Host: n.host, Coverage: n.cov, Pipeline: n.pipe, Ledger: lg, Wallet: wallet, Sync: n.lsync, Settings: st})
	if err != nil {
		return nil, errors.Join(err, n.host.Close(), lg.Close())
	}
	return n, nil
}

// Start joins the network through the bootstrap peers, chooses and announces the node's
// layers and starts the REST API. On failure it rolls back what it started.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.mu.Unlock()
	n.state.Store("starting")
	defer func() {
		if err != nil {
			n.state.Store("created")
			err = errors.Join(err, n.host.Close())
		}
	}()
	if err := n.host.Start(ctx); err != nil {
		return err
	}
	span, err := n.chooseSpan(ctx)
	if err != nil {
		return err
	}
	stage, err := n.loadStage(span)
	if err != nil {
		return err
	}
	if err := n.publishServing(span, stage.Params()); err != nil {
		return err
	}
	n.mu.Lock()
	n.span, n.stage = span, stage
	n.mu.Unlock()
	n.initSync(stage, n.loadedRound)
	n.catch = n.makeCatchup()
	if err := n.startGossip(); err != nil {
		return err
	}
	if err := n.lsync.Start(); err != nil {
		return err
	}
	if err := n.pipe.JoinFraudGossip(n.ctx, n.host); err != nil {
		return err
	}
	n.host.ServeForward(n.pipe.ServeForward)
	n.host.ServeTrain(n.serveTrain)
	n.host.ServeExchange(replicanet.Handler(func() (*diloco.Replica, replicanet.Span) { return n.replica(), n.heldSpan() }, func(p peer.ID) { n.catch.From(p) }))
	n.host.ServeCheckpoints(n.catch.Serve)
	n.host.ServeCheckpointPut(n.catch.Admit, n.catch.Take)
	n.host.SetAnnounced(coverage.LayerKeys(n.model.Name, span))
	n.loadBench()
	n.publishRecord()
	if n.front != nil {
		if err := n.front.Start(net.JoinHostPort(n.cfg.APIHost, strconv.Itoa(n.cfg.Port))); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.started = time.Now()
	n.mu.Unlock()
	n.startSpan()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.measure() // before training takes the cores
		n.publishRecord()
		n.measured.Store(true)
		n.mu.Lock()
		l := n.loops
		n.mu.Unlock()
		n.startDriver(l)
	}()
	if n.cfg.Rebalance > 0 {
		n.wg.Add(1)
		go n.balanceLoop()
	}
	n.api.Start()
	n.state.Store("running")
	logger().Info("node running", "peer", n.host.ID(), "layers", span.String(), "model", n.model.Name, "api", n.APIURL())
	if t := n.settings.Get().Training; t.Enabled && t.DiLoCoSteps <= shortRound && t.OuterMomentum > 0 {
		logger().Info("short DiLoCo rounds with outer momentum: plain averaging (outer_lr 1, outer_momentum 0 on every replica) trains better at this H",
			"diloco_steps", t.DiLoCoSteps, "outer_lr", t.OuterLR, "outer_momentum", t.OuterMomentum)
	}
	return nil
}

// chooseSpan fixes the span from --layers, or asks the DHT who holds what, at what measured
// speed, and takes the least-served span that fits the memory budget.
func (n *Node) chooseSpan(ctx context.Context) (layers.Span, error) {
	if n.cfg.Layers != "" {
		return layers.ParseSpan(n.cfg.Layers) // checked by Validate
	}
	budget := n.MemoryBudget()
	load := make([]float64, n.model.Layers)
	if len(n.host.RoutingTable()) > 0 {
		cctx, cancel := context.WithTimeout(ctx, joinCoverageTimeout)
		load = n.cov.Lookup(cctx).Load(n.host.ID())
		cancel()
	}
	span, err := coverage.ChooseSpan(n.model, load, budget)
	if errors.Is(err, coverage.ErrNoSpanFits) {
		err = fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return span, err
}

// kvBudget is the memory the KV caches of the node's sessions may reserve: a quarter of the
// memory budget (the rest holds the weights, their served copy and the optimizer state).
func (n *Node) kvBudget() int64 { return max(64<<20, n.MemoryBudget()/4) }

// MemoryBudget is the memory the node may spend on its span: --max-memory, else the setting.
func (n *Node) MemoryBudget() int64 {
	if n.cfg.MaxMemory != 0 {
		return n.cfg.MaxMemory
	}
	return n.settings.Get().MaxMemoryBytes()
}

// Close stops the API, the p2p host and every background loop.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.state.Store("stopping")
	n.cancel()
	var err error
	if n.front != nil {
		err = n.front.Close()
	}
	err = errors.Join(err, n.api.Close(), n.lsync.Close(), n.host.Close())
	n.wg.Wait()
	n.pipe.Wait() // fraud-proof checks
	if n.catch != nil {
		n.catch.Wait() // checkpoint pushes under way
	}
	err = errors.Join(err, n.ledger.Close())
	n.state.Store("stopped")
	if n.probeDir != "" {
		err = errors.Join(err, os.RemoveAll(n.probeDir))
	}
	return err
}

// ID is the node's peer ID.
func (n *Node) ID() string { return n.host.ID().String() }

// Token is the API and wallet token.
func (n *Node) Token() string { return n.token }

// TokenGenerated reports whether New generated the token (the caller shows it once).
func (n *Node) TokenGenerated() bool { return n.tokenGenerated }

// Span is the layer span the node holds (valid after Start).
func (n *Node) Span() layers.Span {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.span
}

// Model is the model configuration the node serves.
func (n *Node) Model() layers.Config { return n.model }

// Host is the node's p2p host.
func (n *Node) Host() *p2p.Host { return n.host }

// Multiaddrs lists the node's full p2p addresses.
func (n *Node) Multiaddrs() []string { return n.host.Addrs() }

// APIURL is the base URL of the REST API ("" before Start).
func (n *Node) APIURL() string {
	if n.front == nil {
		return ""
	}
	a := n.front.Addr()
	if a == nil {
		return ""
	}
	return "http://" + a.String()
}
