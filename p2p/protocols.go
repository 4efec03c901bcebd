package p2p

import "github.com/libp2p/go-libp2p/core/protocol"

// DHTPrefix keeps the network's DHT apart from the public IPFS DHT and lets it carry its own
// record validators.
const DHTPrefix = "/neuroshard"

// The node's own stream protocols, mirrors of the seed's gRPC methods. Ping is libp2p's own.
// The versions of those that carry computed values (forward, backward, exchange-gradient)
// change with the engine's bits as well as with the wire: nodes whose engines give other bits
// for the same inputs would fail each other's audits and rounds, so they do not talk (the
// float32 e^x kernel changed the bits: forward 2 -> 3, backward and exchange 1 -> 2).
const (
	ProtocolForward          protocol.ID = "/neuroshard/forward/3.0.0"
	ProtocolBackward         protocol.ID = "/neuroshard/backward/2.0.0"
	ProtocolExchangeGradient protocol.ID = "/neuroshard/exchange-gradient/2.0.0"
	ProtocolCheckpointGet    protocol.ID = "/neuroshard/checkpoint/get/1.0.0"
	ProtocolCheckpointPut    protocol.ID = "/neuroshard/checkpoint/put/1.0.0"
	ProtocolFraudGet         protocol.ID = "/neuroshard/fraud/get/1.0.0"
	// ProtocolLedger carries ledger catch-up, wallet addresses and work receipts (ledger.go).
	ProtocolLedger protocol.ID = "/neuroshard/ledger/1.0.0"
)

// Protocols lists the node's own stream protocols; the resource manager raises their limits.
var Protocols = []protocol.ID{ProtocolForward, ProtocolBackward, ProtocolExchangeGradient, ProtocolCheckpointGet, ProtocolCheckpointPut, ProtocolFraudGet, ProtocolLedger}
