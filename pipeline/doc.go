// Package pipeline runs the model across peers: it plans a route of stages over the layers'
// holders (coverage), opens a forward session on each (local or over libp2p), streams the
// activations through them, checks every remote answer before use, and replaces a stage that
// fails with another holder of its span, replaying the history to rebuild its cache. It also
// serves this node's span to other peers' routes, within per-peer and total session bounds.
package pipeline
