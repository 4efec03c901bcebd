package natsim

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Relayed tells whether an address goes through a relay (has /p2p-circuit).
func Relayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// Behind is the gater of the node behind the NAT.
type Behind struct{ Relay peer.ID }

func (g Behind) InterceptPeerDial(p peer.ID) bool                 { return p == g.Relay }
func (g Behind) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return p == g.Relay }
func (g Behind) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g Behind) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	return p == g.Relay || dir == network.DirInbound && Relayed(cm.RemoteMultiaddr())
}
func (g Behind) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// Outside is the gater of every other node: it cannot dial the node behind the NAT directly.
type Outside struct{ Natted peer.ID }

func (g Outside) InterceptPeerDial(peer.ID) bool { return true }
func (g Outside) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return p != g.Natted || Relayed(a)
}
func (g Outside) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g Outside) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g Outside) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
