// Package httpapi serves the node's REST API with echo: routes, authentication, rate limits and
// the error format of seed 003. It holds no state beyond request plumbing: every answer comes
// from a Backend, which the node implements.
package httpapi
