package node

import (
	"context"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/pipeline"
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

	// A false proof (an honest stage's own signed session) slashes nothing: the holders that
	// check it find the answers right and exclude its sender instead of attesting, and the
	// accuser's own attestation is one, short of the quorum.
	r, err := routeThrough(req, honest.host.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := layers.Generate(r, req.model.Context, layers.Encode("JULIET:"), layers.Sampling{Temperature: 0, TopP: 1, MaxTokens: 6}, nil); err != nil {
		t.Fatal(err)
	}
	cases := req.pipe.AuditCases(r)
	r.Close()
	if len(cases) != 1 || cases[0].Peer != honest.host.ID() {
		t.Fatalf("audit cases of the honest route: %+v", cases)
	}
	c := cases[0]
	fp := &pipeline.FraudProof{Accused: c.Peer, Receipt: c.Receipts[len(c.Receipts)-1], In: c.In, Out: c.Out}
	for _, rc := range c.Receipts {
		fp.Steps = append(fp.Steps, rc.Positions)
	}
	if err := req.pipe.PublishProof(ctx, fp); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the false accuser excluded by the other holder", func() bool {
		_, ok := third.pipe.Excluded()[req.host.ID()]
		return ok
	})
	id, err := fp.ID()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // an attestation, had any been sent, arrives within this
	for _, n := range nodes {
		if got := staked(n, honest); got != 10*neuro.Micro {
			t.Fatalf("a false proof slashed the honest stage: %s staked", got)
		}
		if _, ok, _ := n.Ledger().Slashed(id); ok {
			t.Fatal("a false proof is recorded as slashed")
		}
	}
}
