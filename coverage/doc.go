// Package coverage is a node's view of who holds which layers of the model, read from the
// DHT's provider records: one lookup per layer, in parallel, reused for a while. A refresh
// never holds a lock across the lookups: concurrent readers share one refresh
// (singleflight) and everyone else reads the last view meanwhile. A holder counts only where its
// own signed record says, once it has one. The span choice of a joining node and the balance
// rule a node moves by (assign.go) read the view.
package coverage
