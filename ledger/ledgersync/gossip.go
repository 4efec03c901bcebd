package ledgersync

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

func (s *Sync) start() error {
	params := s.ledger.Params()
	t, err := s.host.JoinTopic(ledgerTopic(params), p2p.SmallGossip, func(_ peer.ID, data []byte) bool {
		tx, err := ledger.DecodeTx(data)
		return err == nil && tx.Check(params) == nil // a forged or malformed transaction never spreads
	}, s.onGossipTx)
	if err != nil {
		return err
	}
	s.topic = t
	if err := s.joinSlash(); err != nil {
		return err
	}
	s.host.ServeLedger(s)
	s.wg.Add(1)
	go s.syncLoop()
	return nil
}

func (s *Sync) onGossipTx(from peer.ID, data []byte) {
	tx, err := ledger.DecodeTx(data)
	if err != nil {
		return
	}
	r := s.ledger.Apply(tx, true)
	switch {
	case r.Err == nil, errors.Is(r.Err, ledger.ErrDuplicate):
	case errors.Is(r.Err, ledger.ErrQueued):
		s.kickSync() // we missed something: fetch it
	default:
		logger().Debug("gossiped transaction refused", "tx", tx.ID(), "from", from, "err", r.Err)
	}
}

// publishTx gossips a transaction this node applied.
func (s *Sync) publishTx(tx *ledger.Tx) {
	if s.topic == nil {
		return
	}
	if err := s.topic.Publish(s.ctx, tx.Encode()); err != nil {
		logger().Debug("gossip transaction", "tx", tx.ID(), "err", err)
	}
}

func (s *Sync) kickSync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// ledgerSyncLoop replays the log of each peer when it first connects, of every peer each
// LedgerSyncInterval, and at once when gossip shows a gap.
func (s *Sync) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(min(newPeerCheck, s.interval))
	defer t.Stop()
	synced := map[peer.ID]bool{}
	var lastFull time.Time
	full := true
	for {
		if full || time.Since(lastFull) >= s.interval {
			full, lastFull = true, time.Now()
		}
		for _, p := range s.host.Peers() {
			if !full && synced[p.ID] {
				continue
			}
			if _, err := s.SyncFrom(s.ctx, p.ID); err != nil && !synced[p.ID] {
				logger().Debug("ledger catch-up", "peer", p.ID, "err", err)
			}
			synced[p.ID] = true
		}
		full = false
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			full = true
		}
	}
}

// newPeerCheck is how often the sync loop looks for newly connected peers to catch up from.
const newPeerCheck = 2 * time.Second

// syncLedgerFrom replays a peer's transaction log from where this node left it; it returns
// how many transactions it applied.
func (s *Sync) SyncFrom(ctx context.Context, p peer.ID) (int, error) {
	s.syncMu.Lock() // one replay at a time: cursors and the log stay in step
	defer s.syncMu.Unlock()
	params := s.ledger.Params()
	name := p.String()
	cur, err := s.ledger.Cursor(name)
	if err != nil {
		return 0, err
	}
	applied := 0
	start := time.Now()
	for {
		page, err := s.host.LedgerSync(ctx, p, p2p.LedgerSyncRequest{Network: params.ID(), After: cur, Max: p2p.MaxLedgerPage})
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
		for _, r := range s.ledger.ApplyAll(txs) {
			switch {
			case r.Err == nil:
				applied++
			case errors.Is(r.Err, ledger.ErrDuplicate):
			default:
				logger().Debug("replayed transaction refused", "tx", r.Tx.ID(), "peer", p, "err", r.Err)
			}
		}
		cur += uint64(len(page.Txs))
		if err := s.ledger.SetCursor(name, cur); err != nil {
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

// Page answers the ledger protocol's log request: a page of this node's transaction log.
func (s *Sync) Page(_ peer.ID, req p2p.LedgerSyncRequest) (p2p.LedgerPage, error) {
	if id := s.ledger.Params().ID(); req.Network != id {
		return p2p.LedgerPage{}, &p2p.RemoteError{Code: "WRONG_NETWORK", Message: fmt.Sprintf("this node runs ledger network %s, not %s", id, req.Network)}
	}
	txs, err := s.ledger.Since(req.After, req.Max, p2p.MaxLedgerPageBytes)
	if err != nil {
		return p2p.LedgerPage{}, err
	}
	_, _, head := s.ledger.Supply()
	return p2p.LedgerPage{Head: max(head, req.After+uint64(len(txs))), Txs: txs}, nil
}

// Wallet answers where this node is paid.
func (s *Sync) Wallet(peer.ID) (p2p.WalletAnswer, error) {
	return p2p.WalletAnswer{Network: s.ledger.Params().ID(), Address: s.wallet.Address().String()}, nil
}

// Receipt takes a proof of work this node did, countersigned by the peer that used it, and
// claims its reward.
func (s *Sync) Receipt(from peer.ID, b []byte) (p2p.ReceiptAnswer, error) {
	proof, err := ledger.DecodeProof(b)
	if err == nil {
		err = proof.CheckPart(s.ledger.Params())
	}
	if err == nil && proof.Worker != s.wallet.Address() {
		err = fmt.Errorf("%w: the proof names worker %s, this node is %s", ledger.ErrProof, proof.Worker, s.wallet.Address())
	}
	if err != nil {
		return p2p.ReceiptAnswer{}, &p2p.RemoteError{Code: "BAD_PROOF", Message: err.Error()}
	}
	if !proof.Quorum(s.ledger.Params()) {
		// One member's word for a round: kept until the round's quorum has vouched for it.
		if proof, err = s.gatherRound(proof); err != nil {
			return p2p.ReceiptAnswer{}, &p2p.RemoteError{Code: "CLAIM_REFUSED", Message: err.Error()}
		} else if proof == nil {
			return receiptAnswer(nil), nil
		}
	}
	tx, err := s.claim(proof)
	if err != nil {
		return p2p.ReceiptAnswer{}, &p2p.RemoteError{Code: "CLAIM_REFUSED", Message: err.Error()}
	}
	return receiptAnswer(tx), nil
}
