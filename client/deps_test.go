package client

import (
	"os/exec"
	"strings"
	"testing"
)

// A program that only calls a node's REST API must not link the node: the client's
// dependencies hold none of the storage, network, model or server libraries.
func TestClientLinksNoneOfTheNode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, banned := range []string{"dgraph-io/badger", "libp2p", "gomlx", "labstack/echo",
			"neuroshard/ledger\n", "neuroshard/node", "neuroshard/p2p", "neuroshard/layers", "neuroshard/httpapi\n"} {
			if strings.Contains(d+"\n", banned) {
				t.Errorf("client links %s", d)
			}
		}
	}
	if len(deps) > 250 {
		t.Errorf("client links %d packages, want the standard library and the API types only", len(deps))
	}
}
