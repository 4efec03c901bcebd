// Package settings holds what PATCH /api/v1/config may change of a running node (training and
// resource settings), stored in the data dir so a change survives a restart: validated as a
// whole, written atomically, read under a lock.
package settings
