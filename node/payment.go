package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// Paying for inference: the node that takes a request pays each remote stage of its route its
// share of price_per_token x tokens (by the layers the stage ran) from the node's wallet, and
// hands each a receipt, a forward proof countersigned by this node, that the stage claims as
// its reward. Receipts go out even when the price is 0: the work was done and consumed.

// payeeTTL bounds how long a peer's wallet address is reused without asking again.
const payeeTTL = 10 * time.Minute

type payees struct {
	mu sync.Mutex
	by map[peer.ID]payee
}

type payee struct {
	addr ledger.Address
	at   time.Time
}

// payee asks a peer where it is paid (cached).
func (n *Node) payee(ctx context.Context, p peer.ID) (ledger.Address, error) {
	n.payees.mu.Lock()
	if v, ok := n.payees.by[p]; ok && time.Since(v.at) < payeeTTL {
		n.payees.mu.Unlock()
		return v.addr, nil
	}
	n.payees.mu.Unlock()
	var ans p2p.WalletAnswer
	var err error
	for attempt := range 3 { // a fresh connection can drop a first stream; ask again
		if ans, err = n.host.WalletOf(ctx, p); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if err != nil {
		return ledger.Address{}, err
	}
	if ans.Network != n.ledger.Params().ID() {
		return ledger.Address{}, fmt.Errorf("peer %s runs ledger network %s, this node %s", p, ans.Network, n.ledger.Params().ID())
	}
	addr, err := ledger.ParseAddress(ans.Address)
	if err != nil {
		return ledger.Address{}, err
	}
	n.payees.mu.Lock()
	if n.payees.by == nil {
		n.payees.by = map[peer.ID]payee{}
	}
	n.payees.by[p] = payee{addr, time.Now()}
	n.payees.mu.Unlock()
	return addr, nil
}

// stageShare is what one stage of a route earns for tokens: its layers' part of the price.
func (n *Node) stageShare(h pipeline.Hop, tokens int) neuro.Amount {
	p := n.ledger.Params()
	return p.PricePerToken * neuro.Amount(tokens) * neuro.Amount(h.Span.Len()) / neuro.Amount(n.model.Layers)
}

// canAfford refuses, before any work, a request whose most expensive outcome (every token up
// to maxTokens generated) the wallet cannot pay.
func (n *Node) canAfford(hops []pipeline.Hop, maxTokens int) error {
	var need neuro.Amount
	for _, h := range hops {
		if !h.Self {
			if s := n.stageShare(h, maxTokens); s > 0 {
				need += s + n.ledger.Params().Fee(s)
			}
		}
	}
	if need == 0 {
		return nil
	}
	acct, err := n.ledger.Account(n.wallet.Address())
	if err != nil {
		return ledgerError(err)
	}
	if avail := acct.View(time.Now()).Available; avail < need {
		return ledgerError(&ledger.InsufficientError{Required: need, Available: avail})
	}
	return nil
}

// settle pays the remote stages of a finished request and sends their receipts.
func (n *Node) settle(ctx context.Context, hops []pipeline.Hop, tokens int) apitypes.Cost {
	cost := apitypes.Cost{Currency: "NEURO"}
	for _, h := range hops {
		if h.Self {
			continue
		}
		addr, err := n.payee(ctx, h.Peer)
		if err != nil {
			logger().Warn("cannot pay a stage: no wallet address", "peer", h.Peer, "err", err)
			continue
		}
		if share := n.stageShare(h, tokens); share > 0 {
			tx, err := n.submit(ledger.Tx{Type: ledger.TxPayment, To: addr, Amount: share, Fee: n.ledger.Params().Fee(share),
				Memo: fmt.Sprintf("inference layers %s", h.Span)})
			if err != nil {
				logger().Warn("inference payment failed", "peer", h.Peer, "amount", share, "err", err)
			} else {
				cost.Amount += tx.Amount + tx.Fee
				cost.Transactions = append(cost.Transactions, tx.ID())
			}
		}
		n.sendReceipt(h.Peer, ledger.ProofForward, h.Span.First, tokens)
	}
	return cost
}

// sendReceipt countersigns a proof of work a peer did for this node and hands it over in the
// background (the peer claims the reward; a peer that is gone loses it).
func (n *Node) sendReceipt(p peer.ID, kind ledger.ProofKind, layer, units int) {
	params := n.ledger.Params()
	if units <= 0 || params.Rewards[kind] == 0 || p == n.host.ID() {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		worker, err := n.payee(ctx, p)
		if err != nil {
			logger().Debug("receipt not sent: no wallet address", "peer", p, "err", err)
			return
		}
		pr := &ledger.Proof{Kind: kind, Layer: uint16(layer), Units: uint32(min(units, int(params.MaxProofUnits))), Worker: worker, Time: time.Now().UnixMilli()}
		rand.Read(pr.Work[:])
		pr.Countersign(n.wallet)
		if _, err := n.host.SendReceipt(ctx, p, pr.Encode()); err != nil {
			logger().Debug("receipt not taken", "peer", p, "kind", kind, "err", err)
		}
	}()
}
