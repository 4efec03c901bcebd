// Package p2p owns the node's libp2p host: identity, the Kademlia DHT under the /neuroshard
// prefix, provider records for content keys, peer latency, and (as they land) the stream
// protocols. It knows nothing about transformers: callers hand it opaque content keys.
package p2p
