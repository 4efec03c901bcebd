// Package replicanet is a DiLoCo replica's network over libp2p: the exchange transport
// (/neuroshard/exchange-gradient/2.0.0 carrying diloco submissions and outcomes), the server
// side that hands arriving contributions to the replica, the membership view (the span's
// holders, their gossiped rounds, their connectedness) and the signer (the libp2p key; a
// peer's public key is in its ID). diloco owns the interfaces; this is their libp2p form.
// Besides: catching up from replicas ahead (Catchup, also the weights a node moving to a span
// takes), the round loop (Loop) and the training reports' gossip (Reports).
package replicanet
