// Package node is the NeuroShard node: it builds the parts from a Config (the p2p host, the
// coverage view, the pipeline, the ledger and its sync, the DiLoCo replica, the API backend),
// starts them in order and closes them in reverse, chooses the layers it holds and wires the
// parts together. It serves no HTTP (the caller attaches httpapi over API()) and holds no wire
// format or protocol logic of its own: those live in p2p, pipeline, diloco and ledgersync.
// What is still here besides the wiring: the training driver and inner steps, the pinned
// served weights, and moving to another span when the balance rule says so (move.go).
package node
