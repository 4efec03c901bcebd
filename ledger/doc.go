// Package ledger keeps the NEURO ledger in badger: accounts, signed transactions, proofs of
// work and their rewards, the binding of stake to peer keys and its slashing by attested
// fraud proofs (slash.go), and the checks that keep a damaged store from being served.
// Amounts are neuro.Amount, integers of micro-NEURO.
package ledger
