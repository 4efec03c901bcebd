package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

// How the ledger travels: every transaction is gossiped on the network's ledger topic as
// soon as it is applied; a node that was away (or joins) replays its peers' logs through the
// ledger protocol, from a cursor per peer kept in its own ledger.

// ledgerTopic is the gossip topic of a network's transactions; the network ID is a hash of its
// rules, so networks with different rules never mix.
func ledgerTopic(p ledger.Params) string { return "/neuroshard/ledger/1.0.0/" + p.ID() }

func (n *Node) startLedger() error {
	params := n.ledger.Params()
	t, err := n.host.JoinTopic(ledgerTopic(params), func(_ peer.ID, data []byte) bool {
		tx, err := ledger.DecodeTx(data)
		return err == nil && tx.Check(params) == nil // a forged or malformed transaction never spreads
	}, n.onGossipTx)
	if err != nil {
		return err
	}
	n.ledgerTopic = t
	n.host.ServeLedger(ledgerService{n})
	n.wg.Add(1)
	go n.ledgerSyncLoop()
	return nil
}

func (n *Node) onGossipTx(from peer.ID, data []byte) {
	tx, err := ledger.DecodeTx(data)
	if err != nil {
		return
	}
	r := n.ledger.Apply(tx, true)
	switch {
	case r.Err == nil, errors.Is(r.Err, ledger.ErrDuplicate):
	case errors.Is(r.Err, ledger.ErrQueued):
		n.kickLedgerSync() // we missed something: fetch it
	default:
		logger().Debug("gossiped transaction refused", "tx", tx.ID(), "from", from, "err", r.Err)
	}
}

// publishTx gossips a transaction this node applied.
func (n *Node) publishTx(tx *ledger.Tx) {
	if n.ledgerTopic == nil {
		return
	}
	if err := n.ledgerTopic.Publish(n.ctx, tx.Encode()); err != nil {
		logger().Debug("gossip transaction", "tx", tx.ID(), "err", err)
	}
}

func (n *Node) kickLedgerSync() {
	select {
	case n.ledgerKick <- struct{}{}:
	default:
	}
}

// ledgerSyncLoop replays the log of each peer when it first connects, of every peer each
// LedgerSyncInterval, and at once when gossip shows a gap.
func (n *Node) ledgerSyncLoop() {
	defer n.wg.Done()
	t := time.NewTicker(min(newPeerCheck, n.cfg.LedgerSyncInterval))
	defer t.Stop()
	synced := map[peer.ID]bool{}
	var lastFull time.Time
	full := true
	for {
		if full || time.Since(lastFull) >= n.cfg.LedgerSyncInterval {
			full, lastFull = true, time.Now()
		}
		for _, p := range n.host.Peers() {
			if !full && synced[p.ID] {
				continue
			}
			if _, err := n.syncLedgerFrom(n.ctx, p.ID); err != nil && !synced[p.ID] {
				logger().Debug("ledger catch-up", "peer", p.ID, "err", err)
			}
			synced[p.ID] = true
		}
		full = false
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.ledgerKick:
			full = true
		}
	}
}

// newPeerCheck is how often the sync loop looks for newly connected peers to catch up from.
const newPeerCheck = 2 * time.Second

// syncLedgerFrom replays a peer's transaction log from where this node left it; it returns
// how many transactions it applied.
func (n *Node) syncLedgerFrom(ctx context.Context, p peer.ID) (int, error) {
	n.ledgerSyncMu.Lock() // one replay at a time: cursors and the log stay in step
	defer n.ledgerSyncMu.Unlock()
	params := n.ledger.Params()
	name := p.String()
	cur, err := n.ledger.Cursor(name)
	if err != nil {
		return 0, err
	}
	applied := 0
	start := time.Now()
	for {
		page, err := n.host.LedgerSync(ctx, p, p2p.LedgerSyncRequest{Network: params.ID(), After: cur, Max: p2p.MaxLedgerPage})
		if err != nil {
			return applied, err
		}
		if page.Head < cur { // the peer's log is shorter than we remember: it started over
			cur = 0
			continue
		}
		if len(page.Txs) == 0 {
			break
		}
		txs := make([]*ledger.Tx, 0, len(page.Txs))
		for _, raw := range page.Txs {
			tx, err := ledger.DecodeTx(raw)
			if err == nil {
				err = tx.Check(params)
			}
			if err != nil {
				return applied, fmt.Errorf("peer %s sent a bad transaction: %w", p, err)
			}
			txs = append(txs, tx)
		}
		for _, r := range n.ledger.ApplyAll(txs) {
			switch {
			case r.Err == nil:
				applied++
			case errors.Is(r.Err, ledger.ErrDuplicate):
			default:
				logger().Debug("replayed transaction refused", "tx", r.Tx.ID(), "peer", p, "err", r.Err)
			}
		}
		cur += uint64(len(page.Txs))
		if err := n.ledger.SetCursor(name, cur); err != nil {
			return applied, err
		}
		if applied > 0 {
			logger().Info("ledger catch-up", "peer", p, "applied", applied, "cursor", cur, "of", page.Head)
		}
	}
	if applied > 0 {
		logger().Info("ledger caught up", "peer", p, "applied", applied, "took", time.Since(start).Round(time.Millisecond))
	}
	return applied, nil
}

// ledgerService answers the ledger protocol.
type ledgerService struct{ n *Node }

func (s ledgerService) Page(_ peer.ID, req p2p.LedgerSyncRequest) (p2p.LedgerPage, error) {
	if id := s.n.ledger.Params().ID(); req.Network != id {
		return p2p.LedgerPage{}, &p2p.RemoteError{Code: "WRONG_NETWORK", Message: fmt.Sprintf("this node runs ledger network %s, not %s", id, req.Network)}
	}
	txs, err := s.n.ledger.Since(req.After, req.Max, p2p.MaxLedgerPageBytes)
	if err != nil {
		return p2p.LedgerPage{}, err
	}
	_, _, head := s.n.ledger.Supply()
	return p2p.LedgerPage{Head: max(head, req.After+uint64(len(txs))), Txs: txs}, nil
}

func (s ledgerService) Wallet(peer.ID) (p2p.WalletAnswer, error) {
	return p2p.WalletAnswer{Network: s.n.ledger.Params().ID(), Address: s.n.wallet.Address().String()}, nil
}

// Receipt takes a proof of work this node did, countersigned by the peer that used it, and
// claims its reward.
func (s ledgerService) Receipt(from peer.ID, b []byte) (p2p.ReceiptAnswer, error) {
	n := s.n
	proof, err := ledger.DecodeProof(b)
	if err == nil {
		err = proof.Check(n.ledger.Params())
	}
	if err == nil && proof.Worker != n.wallet.Address() {
		err = fmt.Errorf("%w: the proof names worker %s, this node is %s", ledger.ErrProof, proof.Worker, n.wallet.Address())
	}
	if err != nil {
		return p2p.ReceiptAnswer{}, &p2p.RemoteError{Code: "BAD_PROOF", Message: err.Error()}
	}
	tx, err := n.submit(ledger.Tx{Type: ledger.TxReward, Amount: proof.Reward(n.ledger.Params()), Proof: proof})
	if err != nil {
		n.refusedClaims.Add(1)
		return p2p.ReceiptAnswer{}, &p2p.RemoteError{Code: "CLAIM_REFUSED", Message: err.Error()}
	}
	logger().Debug("reward claimed", "proof", proof.ID(), "kind", proof.Kind, "units", proof.Units, "from", from, "tx", tx.ID())
	return p2p.ReceiptAnswer{Accepted: true, TxID: tx.ID()}, nil
}
