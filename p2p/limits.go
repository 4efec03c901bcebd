package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Stream limits for the node's own protocols. libp2p's defaults (75 inbound streams per peer
// per protocol) are sized for gossip-like traffic; a pipeline stage keeps one stream per
// inference session and training micro-batch, so it needs far more.
var (
	protocolLimit     = rcmgr.BaseLimit{Streams: 8192, StreamsInbound: 4096, StreamsOutbound: 4096, Memory: 1 << 30}
	protocolPeerLimit = rcmgr.BaseLimit{Streams: 2048, StreamsInbound: 1024, StreamsOutbound: 1024, Memory: 512 << 20}
)

func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	for _, p := range Protocols {
		limits.AddProtocolLimit(p, protocolLimit, rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(p, protocolPeerLimit, rcmgr.BaseLimitIncrease{})
	}
	libp2p.SetDefaultServiceLimits(&limits)
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}

// publicAddrs keeps only public addresses; the internet profile's DHT announces no others.
func publicAddrs(in []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(in))
	for _, a := range in {
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}
