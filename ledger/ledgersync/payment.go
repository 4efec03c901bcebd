package ledgersync

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/p2p"
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
func (s *Sync) payee(ctx context.Context, p peer.ID) (ledger.Address, error) {
	s.payees.mu.Lock()
	if v, ok := s.payees.by[p]; ok && time.Since(v.at) < payeeTTL {
		s.payees.mu.Unlock()
		return v.addr, nil
	}
	s.payees.mu.Unlock()
	var ans p2p.WalletAnswer
	var err error
	for attempt := range 3 { // a fresh connection can drop a first stream; ask again
		if ans, err = s.host.WalletOf(ctx, p); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if err != nil {
		return ledger.Address{}, err
	}
	if ans.Network != s.ledger.Params().ID() {
		return ledger.Address{}, fmt.Errorf("peer %s runs ledger network %s, this node %s", p, ans.Network, s.ledger.Params().ID())
	}
	addr, err := ledger.ParseAddress(ans.Address)
	if err != nil {
		return ledger.Address{}, err
	}
	s.payees.mu.Lock()
	if s.payees.by == nil {
		s.payees.by = map[peer.ID]payee{}
	}
	s.payees.by[p] = payee{addr, time.Now()}
	s.payees.mu.Unlock()
	return addr, nil
}

// Stage is one remote stage of a request's route, as payment sees it: who ran how many of
// the model's layers, from which.
type Stage struct {
	Peer   peer.ID
	First  int // the stage's first layer (its receipt names it)
	Layers int // how many layers it ran
}

// Paid is what a finished request cost the node's wallet.
type Paid struct {
	Amount       neuro.Amount // the stages' shares and their fees
	Transactions []string
}

// share is what one stage earns for tokens: its layers' part of the price.
func (s *Sync) share(st Stage, tokens int) neuro.Amount {
	p := s.ledger.Params()
	return p.PricePerToken * neuro.Amount(tokens) * neuro.Amount(st.Layers) / neuro.Amount(s.modelLayers)
}

// CanAfford refuses, before any work, a request whose most expensive outcome (every token up
// to maxTokens generated on these stages) the wallet cannot pay: a *ledger.InsufficientError.
func (s *Sync) CanAfford(stages []Stage, maxTokens int) error {
	var need neuro.Amount
	for _, st := range stages {
		if sh := s.share(st, maxTokens); sh > 0 {
			need += sh + s.ledger.Params().Fee(sh)
		}
	}
	if need == 0 {
		return nil
	}
	acct, err := s.ledger.Account(s.wallet.Address())
	if err != nil {
		return err
	}
	if avail := acct.View(time.Now()).Available; avail < need {
		return &ledger.InsufficientError{Required: need, Available: avail}
	}
	return nil
}

// Settle pays the remote stages of a finished request their shares and sends their receipts.
// A stage that cannot be paid (no wallet address, a refused payment) is logged and skipped.
func (s *Sync) Settle(ctx context.Context, stages []Stage, tokens int) Paid {
	var paid Paid
	for _, st := range stages {
		addr, err := s.payee(ctx, st.Peer)
		if err != nil {
			logger().Warn("cannot pay a stage: no wallet address", "peer", st.Peer, "err", err)
			continue
		}
		if share := s.share(st, tokens); share > 0 {
			tx, err := s.Submit(ledger.Tx{Type: ledger.TxPayment, To: addr, Amount: share, Fee: s.ledger.Params().Fee(share),
				Memo: fmt.Sprintf("inference layers %d-%d", st.First, st.First+st.Layers-1)})
			if err != nil {
				logger().Warn("inference payment failed", "peer", st.Peer, "amount", share, "err", err)
			} else {
				paid.Amount += tx.Amount + tx.Fee
				paid.Transactions = append(paid.Transactions, tx.ID())
			}
		}
		s.SendReceipt(st.Peer, ledger.ProofForward, st.First, tokens)
	}
	return paid
}

// SendReceipt countersigns a proof of work a peer did for this node and hands it over in the
// background (the peer claims the reward; a peer that is gone loses it).
func (s *Sync) SendReceipt(p peer.ID, kind ledger.ProofKind, layer, units int) {
	s.sendProof(p, kind, layer, units, nil)
}
