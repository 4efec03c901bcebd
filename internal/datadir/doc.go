// Package datadir prepares a node's data directory: created private, checked writable, and
// holding the node's API token.
package datadir
