package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "p2p") }

// ErrInvalidConfig is returned by New for options that cannot work together.
var ErrInvalidConfig = errors.New("p2p: invalid config")

// DHTMode chooses whether the node answers DHT queries (server) or only asks them (client).
type DHTMode string

// DHT modes. Auto means server on the local profile (AutoNAT never reports loopback or private
// addresses as public, so libp2p's own auto mode would stay a client forever) and libp2p's
// reachability-driven auto mode on the internet profile.
const (
	DHTModeAuto   DHTMode = "auto"
	DHTModeServer DHTMode = "server"
	DHTModeClient DHTMode = "client"
)

// Profile selects the DHT's address filters.
type Profile string

// Profiles. Local keeps loopback and private addresses (tests, LANs); internet keeps only
// public addresses in the routing table and in queries, as the public IPFS DHT does.
const (
	ProfileAuto     Profile = "auto"
	ProfileLocal    Profile = "local"
	ProfileInternet Profile = "internet"
)

// Config is the p2p host's configuration. Build it with New's options.
type Config struct {
	ListenAddrs       []ma.Multiaddr
	Bootstrap         []peer.AddrInfo
	DHTMode           DHTMode
	Profile           Profile
	ProtocolPrefix    string
	UserAgent         string
	ReprovideInterval time.Duration // how often held content keys are announced again
	ProvideValidity   time.Duration // how long other nodes keep a provider record
	BootstrapInterval time.Duration // how often an empty routing table triggers re-dialling
	PingInterval      time.Duration // how often connected peers are pinged for latency
	DialTimeout       time.Duration
	RelayService      bool            // serve as a circuit-relay v2 relay (nat.go)
	Relays            []peer.AddrInfo // relays to use when not reachable, before the bootstrap peers
	Reachability      string          // auto (AutoNAT), public or private
	Gater             connmgr.ConnectionGater
}

// Option changes a Config.
type Option func(*Config) error

func defaults() Config {
	return Config{
		ListenAddrs: []ma.Multiaddr{
			ma.StringCast("/ip4/127.0.0.1/tcp/0"),
			ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"),
		},
		DHTMode:           DHTModeAuto,
		Profile:           ProfileAuto,
		ProtocolPrefix:    DHTPrefix,
		UserAgent:         "neuroshard",
		ReprovideInterval: 10 * time.Minute,
		ProvideValidity:   30 * time.Minute,
		BootstrapInterval: 5 * time.Second,
		PingInterval:      15 * time.Second,
		DialTimeout:       10 * time.Second,
		Reachability:      ReachabilityAuto,
	}
}

// WithListenAddrs sets the addresses to listen on.
func WithListenAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *Config) error { c.ListenAddrs = addrs; return nil }
}

// WithBootstrap sets the peers to join through.
func WithBootstrap(peers ...peer.AddrInfo) Option {
	return func(c *Config) error { c.Bootstrap = peers; return nil }
}

// WithDHTMode sets the DHT mode.
func WithDHTMode(m DHTMode) Option { return func(c *Config) error { c.DHTMode = m; return nil } }

// WithProfile sets the address-filter profile.
func WithProfile(p Profile) Option { return func(c *Config) error { c.Profile = p; return nil } }

// WithUserAgent sets the agent version identify announces.
func WithUserAgent(ua string) Option { return func(c *Config) error { c.UserAgent = ua; return nil } }

// WithIntervals sets the re-provide, bootstrap-check and ping intervals; zero keeps a default.
func WithIntervals(reprovide, bootstrap, ping time.Duration) Option {
	return func(c *Config) error {
		if reprovide > 0 {
			c.ReprovideInterval = reprovide
			if c.ProvideValidity < 3*reprovide {
				c.ProvideValidity = 3 * reprovide
			}
		}
		if bootstrap > 0 {
			c.BootstrapInterval = bootstrap
		}
		if ping > 0 {
			c.PingInterval = ping
		}
		return nil
	}
}

// Validate reports a configuration that cannot work, and resolves the auto profile.
func (c *Config) Validate() error {
	if len(c.ListenAddrs) == 0 {
		return fmt.Errorf("%w: no listen address", ErrInvalidConfig)
	}
	switch c.DHTMode {
	case DHTModeAuto, DHTModeServer, DHTModeClient:
	default:
		return fmt.Errorf("%w: dht mode %q (want auto, server or client)", ErrInvalidConfig, c.DHTMode)
	}
	switch c.Profile {
	case ProfileAuto:
		c.Profile = autoProfile(c.ListenAddrs, c.Bootstrap)
	case ProfileLocal, ProfileInternet:
	default:
		return fmt.Errorf("%w: profile %q (want auto, local or internet)", ErrInvalidConfig, c.Profile)
	}
	switch c.Reachability {
	case ReachabilityAuto, ReachabilityPublic, ReachabilityPrivate:
	default:
		return fmt.Errorf("%w: reachability %q (want auto, public or private)", ErrInvalidConfig, c.Reachability)
	}
	if c.ReprovideInterval <= 0 || c.ProvideValidity < c.ReprovideInterval || c.BootstrapInterval <= 0 || c.PingInterval <= 0 {
		return fmt.Errorf("%w: intervals must be positive and validity >= reprovide interval", ErrInvalidConfig)
	}
	return nil
}

// autoProfile picks local when the node listens on, or joins through, loopback or private
// addresses: the internet filters would drop every such peer from the routing table. A node
// that listens on every interface and joins no one (`neuroshard` with no flags) is local too
// when the machine has no public address: on the internet profile it would run its DHT as a
// client (nobody can reach it), so no peer on its LAN or loopback could join through it.
func autoProfile(listen []ma.Multiaddr, boot []peer.AddrInfo) Profile {
	for _, a := range listen {
		if isLocal(a) {
			return ProfileLocal
		}
	}
	if len(boot) == 0 && listensEverywhere(listen) && !publicInterface() {
		return ProfileLocal
	}
	for _, b := range boot {
		for _, a := range b.Addrs {
			if isLocal(a) {
				return ProfileLocal
			}
		}
	}
	return ProfileInternet
}

func isLocal(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

// listensEverywhere tells whether the node listens on the unspecified address (0.0.0.0, ::).
func listensEverywhere(listen []ma.Multiaddr) bool {
	for _, a := range listen {
		if ip, err := manet.ToIP(a); err == nil && ip.IsUnspecified() {
			return true
		}
	}
	return false
}

// publicInterface tells whether any of the machine's interfaces has a public address.
func publicInterface() bool {
	addrs, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return true // unknown: keep the internet profile
	}
	for _, a := range addrs {
		if manet.IsPublicAddr(a) {
			return true
		}
	}
	return false
}

// ListenAddrsFor returns the TCP and QUIC listen addresses for an IP and port.
func ListenAddrsFor(ip string, port int) ([]ma.Multiaddr, error) {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return nil, fmt.Errorf("%w: %q is not an IP address", ErrInvalidConfig, ip)
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidConfig, port)
	}
	fam := "ip4"
	if parsed.To4() == nil {
		fam = "ip6"
	}
	tcp, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/tcp/%d", fam, ip, port))
	if err != nil {
		return nil, err
	}
	quic, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/udp/%d/quic-v1", fam, ip, port))
	if err != nil {
		return nil, err
	}
	return []ma.Multiaddr{tcp, quic}, nil
}

// ParseBootstrap parses full multiaddrs (with /p2p/<id>) into peers, merging addresses of the
// same peer.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q: %v", ErrInvalidConfig, s, err)
		}
		mas = append(mas, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap addresses need /p2p/<peer id>: %v", ErrInvalidConfig, err)
	}
	return infos, nil
}
