// Package ledger keeps the NEURO ledger in badger: accounts, signed transactions, proofs of
// work and their rewards, and the checks that keep a damaged store from being served. Amounts
// are neuro.Amount, integers of micro-NEURO.
package ledger
