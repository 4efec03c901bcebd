// Package ledgersync moves a node's NEURO ledger over the network: every transaction the node
// applies is gossiped on the network's ledger topic, a node that was away (or joins) replays
// its peers' logs from a cursor per peer, and the node pays the stages of the requests it takes
// and hands them countersigned receipts that they claim as rewards. Convictions by fraud proof
// travel here too, as attestations on the slash topic, until the accuser's ledger counts
// enough staked attesters to submit the slash (slash.go). The ledger itself (the
// rules, the store) is package ledger; this package is how it travels.
package ledgersync
