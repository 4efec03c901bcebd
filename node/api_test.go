package node

import (
	"testing"

	"github.com/neuroshard/neuroshard/httpapi"
)

// unlimited lifts the API's rate limits (for tests that call it in loops).
var unlimited = httpapi.WithRateLimits(map[httpapi.Class]int{})

// attachAPI gives a node the REST API, as the neuroshard command does.
func attachAPI(t testing.TB, n *Node, opts ...httpapi.Option) {
	t.Helper()
	api, err := httpapi.New(n.API(), n.Token(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(api)
}
