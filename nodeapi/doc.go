// Package nodeapi answers the REST API from a node's parts: it implements httpapi.Backend by
// turning the parts' domain values (coverage views, routes, ledger accounts, tasks, settings)
// into the API's bodies (apitypes) and their refusals into API errors. It owns what exists
// for the API alone: the task queue of seeds 000/002, the live-event bus, the inference
// metrics, the generation entry point with its request checks and streaming. It holds no
// protocol logic and serves no HTTP itself: httpapi does, over it.
package nodeapi
