// Package apitypes holds the JSON bodies of the node's REST API, named and shaped as in seed
// 001 (and 002 for tasks and insights), the API's error format of seed 003 and its codes.
// Fields a node cannot know yet are omitted rather than invented.
//
// It depends on the standard library and the NEURO amount alone: the Go client imports it and
// links none of the node (no badger, libp2p, gomlx or echo).
package apitypes
