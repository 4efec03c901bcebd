// Package client talks to a running node's REST API. The CLI's client subcommands and the
// end-to-end tests use it; it is the Go counterpart of the seeds' Python NeuroNode.
package client
