// Package badgercheck finds damage in a badger database's files before badger opens them:
// badger deletes table files its MANIFEST does not name, skips a table whose checksum fails
// (its contents gone without a word) and panics on some damage inside a goroutine of its own.
// The ledger and the task queue check their stores with it.
package badgercheck
