// Package sim runs a swarm of the node's own p2p parts in one process, over libp2p's
// in-memory network (mocknet) with a link latency, and measures what a real network of that
// size would see: DHT lookups (time and peers asked), gossip delivery (share and time), and the
// coverage view of an 8-layer model while 10% of the peers leave and as many join each
// minute. Each peer is a p2p.Host (the node's DHT with its prefix and record validators, its
// provider and peer records, its gossip) and the observer's view is a coverage.Cache: the
// parts the node ships, on a simulated wire. What it leaves out: models, pipelines and DiLoCo
// rounds (their network behaviour is the exchange of a few messages per round among a span's
// replicas, which the gossip and lookup figures bound), packet loss (mocknet has none).
package sim
