package node

import (
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/settings"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "node") }

// ErrInvalidConfig is returned for a configuration the node cannot run with.
var ErrInvalidConfig = errors.New("node: invalid config")

// Version is the node's software version, reported by /status and identify.
var Version = "0.1.0"

// P2PPortOffset separates the p2p port from the REST API port (seed 003: gRPC = HTTP + 1000).
const P2PPortOffset = 1000

// Config is everything a node needs to start. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	DataDir   string   // identity, token, settings; default ~/.neuroshard
	Token     string   // API and wallet token; empty: read from the data dir or generate
	Port      int      // REST API port; p2p listens on Port+1000; 0 picks free ports for both
	APIHost   string   // REST API listen IP
	Host      string   // p2p listen IP
	Bootstrap []string // full multiaddrs (with /p2p/<id>) to join through
	Layers    string   // "A-B" fixes the span; empty lets the node choose
	// Rebalance is how often (jittered) the node asks the balance rule whether to move to
	// under-served layers, and moves when two looks in a row say so; 0 never. DefaultConfig
	// sets DefaultRebalance; the command leaves it 0 when --layers fixes the span.
	Rebalance time.Duration
	MaxMemory int64  // memory budget in bytes for the span; 0: stored setting or default
	DHTMode   string // auto, server or client
	Profile   string // auto, local or internet
	// Relay makes the node a circuit relay for peers that cannot be dialled (when it is
	// reachable itself); Relays are relays to use when this node cannot be (full multiaddrs,
	// tried before the bootstrap peers); Reachability is auto (AutoNAT), public or private.
	Relay        bool
	Relays       []string
	Reachability string
	// Gater, when set, filters the host's connections (tests stand for a NAT with one).
	Gater     connmgr.ConnectionGater
	Model     string // model preset name
	ModelSeed uint64 // seed of the initial weights; every peer of a network uses the same
	DataFile  string // training corpus; empty: the one shipped in the binary
	Train     *bool  // turn training on or off at start (nil: the stored setting, on by default)
	// DiLoCoSteps and Compression override the stored training settings for this run (0 and
	// "": keep them).
	DiLoCoSteps int
	Compression string
	// OuterLR and OuterMomentum override the stored outer step for this run (nil: keep it).
	OuterLR, OuterMomentum *float64

	// TrainYield is how long training waits, before each micro-step, while the node serves
	// inference: 0 is DefaultTrainYield, negative never waits.
	TrainYield time.Duration

	// AuditRate is the chance each remote stage of a generation is audited (its answers
	// recomputed by this node or another holder); 0: the default (0.25), negative: none.
	AuditRate float64
	// AuditFull checks every step of every remote stage against a second holder (or this node)
	// before a token is returned: no answer comes from a stage nobody checked. It costs a
	// second computation of every remote stage, and needs a second holder of each span.
	AuditFull bool

	// Bench measures the machine's throughput: BenchFirst (the command's default) once per
	// preset and backend, BenchAgain at this start, BenchOff never.
	Bench string

	// Network holds the ledger's rules (genesis, fees, reward rates); nil: the default network.
	Network *ledger.Params

	ReprovideInterval  time.Duration
	BootstrapInterval  time.Duration
	PingInterval       time.Duration
	CoverageInterval   time.Duration // how long a coverage view is reused
	RoundTimeout       time.Duration // at most how long a DiLoCo aggregator waits for late replicas
	LedgerSyncInterval time.Duration // how often the node replays its peers' ledger logs
	StepFloor          time.Duration // least time a remote stage of known speed gets a step (0: pipeline's default)
	ComputeShare       float64       // of the cores one peer's sessions may use on average (0: pipeline's default)
	ComputeBurst       time.Duration // compute a peer may use at once before its average applies (0: pipeline's default)
}

// DefaultRebalance is how often a node looks at the balance rule.
const DefaultRebalance = 5 * time.Minute

// DefaultTrainYield: while inference runs, training takes at most one micro-step every 2 s.
const DefaultTrainYield = 2 * time.Second

// DefaultMaxMemory is the memory budget when neither a flag nor a stored setting gives one.
const DefaultMaxMemory = settings.DefaultMaxMemory

// DefaultConfig returns the configuration of `neuroshard` run with no flags.
func DefaultConfig() Config {
	return Config{
		DataDir:            DefaultDataDir(),
		Port:               8000,
		APIHost:            "127.0.0.1",
		Host:               "0.0.0.0",
		DHTMode:            string(p2p.DHTModeAuto),
		Profile:            string(p2p.ProfileAuto),
		Model:              layers.DefaultModel,
		ReprovideInterval:  10 * time.Minute,
		BootstrapInterval:  5 * time.Second,
		PingInterval:       15 * time.Second,
		CoverageInterval:   10 * time.Second,
		RoundTimeout:       60 * time.Second,
		LedgerSyncInterval: 30 * time.Second,
		Rebalance:          DefaultRebalance,
	}
}

// DefaultDataDir is ~/.neuroshard, or ./.neuroshard when there is no home directory.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ".neuroshard"
	}
	return filepath.Join(home, ".neuroshard")
}

// Validate reports the first setting the node cannot run with.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: empty data dir", ErrInvalidConfig)
	}
	if c.Port < 0 || c.Port > 65535-P2PPortOffset {
		return fmt.Errorf("%w: port %d (want 0-%d, so that port+%d is a port too)", ErrInvalidConfig, c.Port, 65535-P2PPortOffset, P2PPortOffset)
	}
	if net.ParseIP(c.APIHost) == nil {
		return fmt.Errorf("%w: --api-host %q is not an IP address", ErrInvalidConfig, c.APIHost)
	}
	if net.ParseIP(c.Host) == nil {
		return fmt.Errorf("%w: --host %q is not an IP address", ErrInvalidConfig, c.Host)
	}
	if _, err := p2p.ParseBootstrap(c.Bootstrap); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	m, err := layers.Preset(c.Model)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if c.Layers != "" {
		sp, err := layers.ParseSpan(c.Layers)
		if err == nil {
			err = sp.CheckIn(m.Layers)
		}
		if err != nil {
			return fmt.Errorf("%w: --layers: %v", ErrInvalidConfig, err)
		}
	}
	if c.MaxMemory < 0 {
		return fmt.Errorf("%w: negative --max-memory", ErrInvalidConfig)
	}
	switch p2p.DHTMode(c.DHTMode) {
	case p2p.DHTModeAuto, p2p.DHTModeServer, p2p.DHTModeClient:
	default:
		return fmt.Errorf("%w: --dht-mode %q (want auto, server or client)", ErrInvalidConfig, c.DHTMode)
	}
	switch c.Reachability {
	case "", p2p.ReachabilityAuto, p2p.ReachabilityPublic, p2p.ReachabilityPrivate:
	default:
		return fmt.Errorf("%w: --reachability %q (want auto, public or private)", ErrInvalidConfig, c.Reachability)
	}
	if _, err := p2p.ParseBootstrap(c.Relays); err != nil {
		return fmt.Errorf("%w: --relay-via: %v", ErrInvalidConfig, err)
	}
	switch p2p.Profile(c.Profile) {
	case p2p.ProfileAuto, p2p.ProfileLocal, p2p.ProfileInternet:
	default:
		return fmt.Errorf("%w: --net-profile %q (want auto, local or internet)", ErrInvalidConfig, c.Profile)
	}
	if c.Rebalance < 0 {
		return fmt.Errorf("%w: rebalance interval %s (0 turns moves off)", ErrInvalidConfig, c.Rebalance)
	}
	if c.ReprovideInterval <= 0 || c.BootstrapInterval <= 0 || c.PingInterval <= 0 || c.CoverageInterval <= 0 || c.RoundTimeout <= 0 || c.LedgerSyncInterval <= 0 {
		return fmt.Errorf("%w: intervals must be positive", ErrInvalidConfig)
	}
	if c.DiLoCoSteps < 0 || c.DiLoCoSteps > 1_000_000 {
		return fmt.Errorf("%w: --diloco-steps %d (want 1-1000000)", ErrInvalidConfig, c.DiLoCoSteps)
	}
	if c.OuterLR != nil && !(*c.OuterLR > 0 && *c.OuterLR <= 10) {
		return fmt.Errorf("%w: --diloco-outer-lr %g (want a number in (0, 10])", ErrInvalidConfig, *c.OuterLR)
	}
	if c.OuterMomentum != nil && !(*c.OuterMomentum >= 0 && *c.OuterMomentum < 1) {
		return fmt.Errorf("%w: --diloco-outer-momentum %g (want a number in [0, 1))", ErrInvalidConfig, *c.OuterMomentum)
	}
	if c.Compression != "" && !settings.ValidCompression(c.Compression) {
		return fmt.Errorf("%w: --diloco-compression %q (want none, fp16 or int8)", ErrInvalidConfig, c.Compression)
	}
	if c.Network != nil {
		if err := c.Network.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}
