package node

import (
	"context"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// A stage convicted by an audit loses half its stake on every ledger: the requester's proof
// convicts it on the other holders, each attests with its peer key, and the requester submits
// the slash once two attesters backed by stake agree. The honest stakes stay whole.
func TestConvictedStageIsSlashed(t *testing.T) {
	t.Parallel()
	cfgs := ledgerConfigs(t, 4, 100)
	spans := []string{"4-7", "0-3", "4-7", "4-7"} // third, requester, honest, liar
	var nodes []*Node
	for i, c := range cfgs {
		c.Model, c.Layers, c.AuditRate = DefaultConfig().Model, spans[i], 1
		if i > 0 {
			c.Bootstrap = nodes[0].Multiaddrs()
		}
		nodes = append(nodes, startNode(t, c, unlimited))
	}
	third, req, honest, liar := nodes[0], nodes[1], nodes[2], nodes[3]
	ctx := context.Background()
	for _, n := range nodes {
		if res, err := apiClient(n).Stake(ctx, apitypes.StakeRequest{Amount: 10 * neuro.Micro, DurationDays: 30}); err != nil || res.PeerID != n.ID() {
			t.Fatalf("stake: %+v %v", res, err)
		}
	}
	eventually(t, 30*time.Second, "every stake bound on every ledger, every holder in the coverage", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a.api.StakeOf(b.ID()) != 10 {
					return false
				}
			}
		}
		return len(req.api.Coverage(ctx).Layers[7].Providers) == 3
	})
	liar.host.ServeForward(steered(liar))

	convictByAudit(t, req, liar, third, layers.Encode("ROMEO:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 10})
	staked := func(n, of *Node) neuro.Amount {
		acct, err := n.Ledger().Account(of.wallet.Address())
		if err != nil {
			t.Fatal(err)
		}
		return acct.Staked
	}
	eventually(t, 60*time.Second, "half the liar's stake slashed on every ledger", func() bool {
		for _, n := range nodes {
			if staked(n, liar) != 5*neuro.Micro {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		for _, h := range []*Node{third, req, honest} {
			if got := staked(n, h); got != 10*neuro.Micro {
				t.Fatalf("an honest stake changed: %s", got)
			}
		}
	}
	_, burned, _ := liar.Ledger().Supply()
	if burned < 5*neuro.Micro {
		t.Fatalf("burned %s, the slash is not in the supply", burned)
	}
}
