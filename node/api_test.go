package node

import (
	"testing"

	"github.com/neuroshard/neuroshard/httpapi"
)

// The node answers every question of the REST API.
var _ httpapi.Backend = (*Node)(nil)

// unlimited lifts the API's rate limits (for tests that call it in loops).
var unlimited = httpapi.WithRateLimits(map[httpapi.Class]int{})

// attachAPI gives a node the REST API, as the neuroshard command does.
func attachAPI(t testing.TB, n *Node, opts ...httpapi.Option) {
	t.Helper()
	api, err := httpapi.New(n, n.Token(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(api)
}
