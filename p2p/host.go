package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrClosed is returned by calls on a closed host.
var ErrClosed = errors.New("p2p: host closed")

// bootstrapWait bounds how long Start waits for the routing table after joining.
const bootstrapWait = 5 * time.Second

// Host is the node's libp2p host with its DHT. New builds and listens; Start runs the
// background loops (bootstrap upkeep, re-providing, latency pings); Close stops everything.
type Host struct {
	cfg Config
	h   host.Host
	dht *dht.IpfsDHT

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	announced   []string         // content keys this node provides
	record      PeerRecord       // this node's own record (Seq 0: none yet)
	reannounce  chan struct{}    // wakes the provide loop after SetAnnounced
	unreachable map[peer.ID]bool // bootstrap peers whose last dial failed

	psOnce sync.Once
	ps     *pubsub.PubSub
	psErr  error

	bw           *metrics.BandwidthCounter
	forwardSteps atomic.Int64 // forward steps served
	signer       groupSigner  // signs the receipts of a batched step together
	reach        reachability
	hmu          sync.Mutex // guards h for the relay source, which runs while New builds it
	started      bool
	closed       bool
}

// New creates the libp2p host (listening at once) and its DHT.
func New(key crypto.PrivKey, opts ...Option) (*Host, error) {
	cfg := defaults()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: no identity key", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rm, err := newResourceManager()
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(ConnLow, ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	bw := metrics.NewBandwidthCounter()
	n := &Host{cfg: cfg, reannounce: make(chan struct{}, 1), unreachable: map[peer.ID]bool{}, bw: bw}
	h, err := libp2p.New(append(n.natOptions(),
		libp2p.BandwidthReporter(bw),
		libp2p.Identity(key),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.UserAgent(cfg.UserAgent),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		// TLS and noise, yamux, TCP and QUIC: libp2p's standard set, so other implementations
		// can join. Kept explicit so a change of libp2p's defaults cannot drop one silently.
		libp2p.DefaultSecurity,
		libp2p.DefaultMuxers,
		libp2p.DefaultTransports,
	)...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: listen on %v: %w", cfg.ListenAddrs, err)
	}
	d, err := dht.New(h, dhtOptions(cfg)...)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("p2p: dht: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.hmu.Lock()
	n.h, n.dht = h, d
	n.hmu.Unlock()
	n.watchReachability()
	return n, nil
}

// Over makes a Host of a libp2p host built elsewhere (the swarm simulation's in-memory
// hosts): the node's own DHT, provider and peer records, loops and gossip, without the
// transports, resource limits and NAT traversal New sets up. Close closes h too.
// ConnLow and ConnHigh are the connection manager's watermarks: past ConnHigh open
// connections, the least useful are closed down to ConnLow (those younger than a minute kept).
const (
	ConnLow  = 160
	ConnHigh = 192
)

func Over(h host.Host, opts ...Option) (*Host, error) {
	cfg := defaults()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, err := dht.New(h, dhtOptions(cfg)...)
	if err != nil {
		return nil, fmt.Errorf("p2p: dht: %w", err)
	}
	if !slices.Contains(h.Mux().Protocols(), ping.ID) {
		ping.NewPingService(h) // a node answers pings (Reachable asks for one); hosts made elsewhere may not
	}
	n := &Host{cfg: cfg, reannounce: make(chan struct{}, 1), unreachable: map[peer.ID]bool{}, bw: metrics.NewBandwidthCounter(), h: h, dht: d}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

func dhtOptions(cfg Config) []dht.Option {
	opts := []dht.Option{
		dht.ProtocolPrefix(protocol.ID(cfg.ProtocolPrefix)),
		dht.ProviderManagerOpts(records.ProvideValidity(cfg.ProvideValidity)),
		dht.BootstrapPeers(cfg.Bootstrap...),
		peerRecordOption(),
	}
	switch {
	case cfg.DHTMode == DHTModeServer, cfg.DHTMode == DHTModeAuto && cfg.Profile == ProfileLocal:
		opts = append(opts, dht.Mode(dht.ModeServer))
	case cfg.DHTMode == DHTModeClient:
		opts = append(opts, dht.Mode(dht.ModeClient))
	default:
		opts = append(opts, dht.Mode(dht.ModeAuto))
	}
	if cfg.Profile == ProfileInternet {
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.AddressFilter(publicAddrs),
		)
	}
	return opts
}

// Start connects to the bootstrap peers and starts the background loops. It returns once the
// first bootstrap attempt is over; an unreachable bootstrap peer is logged, not fatal, and is
// dialled again while the routing table is empty.
func (n *Host) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if n.started {
		n.mu.Unlock()
		return nil
	}
	n.started = true
	n.mu.Unlock()

	joined := n.connectBootstrap(ctx)
	if err := n.dht.Bootstrap(n.ctx); err != nil {
		return fmt.Errorf("p2p: dht bootstrap: %w", err)
	}
	if joined > 0 {
		// Identify adds the bootstrap peers to the routing table asynchronously; a lookup made
		// before that finds nobody to ask.
		n.waitRoutingTable(ctx, bootstrapWait)
	}
	n.wg.Add(3)
	go n.bootstrapLoop()
	go n.provideLoop()
	go n.pingLoop()
	logger().Info("p2p host started", "peer", n.h.ID(), "addrs", n.h.Addrs(), "profile", n.cfg.Profile, "dht_mode", modeName(n.dht.Mode()))
	return nil
}

// Close stops the loops, the DHT and the host.
func (n *Host) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return errors.Join(n.dht.Close(), n.h.Close())
}

// ID is the node's peer ID.
func (n *Host) ID() peer.ID { return n.h.ID() }

// Libp2p exposes the underlying host for stream protocols.
func (n *Host) Libp2p() host.Host { return n.h }

// Config returns the resolved configuration (the auto profile decided).
func (n *Host) Config() Config { return n.cfg }

// Addrs lists the node's full multiaddrs, each ending in /p2p/<id>, sorted.
func (n *Host) Addrs() []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(full))
	for _, a := range full {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// RoutingTable lists the peers in the DHT routing table.
func (n *Host) RoutingTable() []peer.ID { return n.dht.RoutingTable().ListPeers() }

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID             peer.ID
	Addr           ma.Multiaddr  // remote address of the oldest open connection
	Latency        time.Duration // EWMA of measured round trips; zero when not measured yet
	ConnectedSince time.Time
	AgentVersion   string
	Outbound       bool
}

// Peers lists the connected peers, sorted by ID.
func (n *Host) Peers() []PeerInfo {
	ids := n.h.Network().Peers()
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		conns := n.h.Network().ConnsToPeer(id)
		if len(conns) == 0 {
			continue
		}
		oldest := conns[0]
		for _, c := range conns[1:] {
			if c.Stat().Opened.Before(oldest.Stat().Opened) {
				oldest = c
			}
		}
		pi := PeerInfo{
			ID:             id,
			Addr:           oldest.RemoteMultiaddr(),
			Latency:        n.h.Peerstore().LatencyEWMA(id),
			ConnectedSince: oldest.Stat().Opened,
			Outbound:       oldest.Stat().Direction == network.DirOutbound,
		}
		if av, err := n.h.Peerstore().Get(id, "AgentVersion"); err == nil {
			pi.AgentVersion, _ = av.(string)
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Latency is the measured round trip to a peer (zero when unknown).
func (n *Host) Latency(id peer.ID) time.Duration { return n.h.Peerstore().LatencyEWMA(id) }

// Connect dials a peer.
func (n *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	return n.h.Connect(ctx, ai)
}

// FindPeer looks a peer's addresses up: the peerstore of a connected peer first, then the DHT.
func (n *Host) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if n.h.Network().Connectedness(id) == network.Connected {
		return n.h.Peerstore().PeerInfo(id), nil
	}
	return n.dht.FindPeer(ctx, id)
}

func modeName(m dht.ModeOpt) string {
	switch m {
	case dht.ModeServer:
		return "server"
	case dht.ModeClient:
		return "client"
	case dht.ModeAutoServer:
		return "auto (server)"
	}
	return "auto"
}

// Traffic is what the host has sent and received, and its counters.
type Traffic struct {
	BytesSent, BytesReceived int64
	Connections              int
	ForwardSteps             int64
}

// Traffic reports the host's totals.
func (n *Host) Traffic() Traffic {
	st := n.bw.GetBandwidthTotals()
	return Traffic{BytesSent: st.TotalOut, BytesReceived: st.TotalIn, Connections: len(n.h.Network().Conns()), ForwardSteps: n.forwardSteps.Load()}
}
