package ledgersync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

// Round rewards. Every member of a DiLoCo round that ended it with the agreed weights vouches
// for each other member the round used: it countersigns a round proof of that member's part
// and hands it over. The proof's work names the model, the span, the round and the weights'
// hash, so every member signs the same work; a member gathers the countersignatures of its
// part and claims once it holds the network's quorum of them (Params.RoundQuorum). It takes
// countersignatures only for rounds it finished itself (Expect), so nobody can fill its table
// with made-up rounds.

const (
	expectedRounds = 16 // rounds of its own a node gathers countersignatures for
	earlyProofs    = 64 // countersignatures that came before the node finished their round
)

// RoundWork is the work a round proof names: the same 16 bytes on every member of the round.
func RoundWork(model string, first, last int, round int64, hash string) [16]byte {
	h := sha256.New()
	h.Write([]byte("neuroshard round v1\x00" + model + "\x00"))
	h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(first)), uint32(last)), uint64(round)))
	h.Write([]byte(hash))
	var w [16]byte
	copy(w[:], h.Sum(nil))
	return w
}

type gathering struct {
	mu       sync.Mutex
	expected []gathered      // the node's own recent rounds, oldest first
	early    []*ledger.Proof // countersignatures for rounds it has not finished yet
}

type gathered struct {
	layer   uint16
	work    [16]byte
	proof   *ledger.Proof // nil until the first countersignature comes
	claimed bool
}

// ExpectRound tells the gathering that this node finished a round of the span starting at
// layer with this work: countersignatures of its part in it are welcome.
func (s *Sync) ExpectRound(layer int, work [16]byte) {
	g := &s.rounds
	g.mu.Lock()
	if slices.ContainsFunc(g.expected, func(e gathered) bool { return e.layer == uint16(layer) && e.work == work }) {
		g.mu.Unlock()
		return
	}
	g.expected = append(g.expected, gathered{layer: uint16(layer), work: work})
	if len(g.expected) > expectedRounds {
		g.expected = slices.Delete(g.expected, 0, len(g.expected)-expectedRounds)
	}
	var ready []*ledger.Proof
	g.early = slices.DeleteFunc(g.early, func(p *ledger.Proof) bool {
		if p.Layer != uint16(layer) || p.Work != work {
			return false
		}
		if r, _ := s.joinLocked(p); r != nil {
			ready = append(ready, r)
		}
		return true
	})
	g.mu.Unlock()
	for _, p := range ready {
		if _, err := s.claim(p); err != nil {
			logger().Info("round reward refused", "proof", p.ID(), "err", err)
		}
	}
}

// errClaimed answers a countersignature of a round whose reward was claimed already.
var errClaimed = errors.New("the round's reward was claimed already")

// gatherRound takes one countersignature of this node's part in a round (checked by the
// caller). It returns the proof to claim once the quorum is reached, and nil meanwhile.
func (s *Sync) gatherRound(p *ledger.Proof) (*ledger.Proof, error) {
	g := &s.rounds
	g.mu.Lock()
	defer g.mu.Unlock()
	if !slices.ContainsFunc(g.expected, func(e gathered) bool { return e.layer == p.Layer && e.work == p.Work }) {
		g.early = append(g.early, p)
		if len(g.early) > earlyProofs {
			g.early = slices.Delete(g.early, 0, len(g.early)-earlyProofs)
		}
		return nil, nil
	}
	return s.joinLocked(p)
}

// joinLocked adds p to its round's gathering; the caller holds the lock.
func (s *Sync) joinLocked(p *ledger.Proof) (*ledger.Proof, error) {
	g := &s.rounds
	i := slices.IndexFunc(g.expected, func(e gathered) bool { return e.layer == p.Layer && e.work == p.Work })
	if i < 0 {
		return nil, nil
	}
	if g.expected[i].claimed {
		return nil, errClaimed
	}
	e := &g.expected[i]
	if e.proof == nil {
		cp := *p
		e.proof = &cp
	} else {
		e.proof.Join(p)
	}
	if !e.proof.Quorum(s.ledger.Params()) {
		return nil, nil
	}
	e.claimed = true
	cp := *e.proof
	return &cp, nil
}

// claim submits the reward transaction of a proof that holds its quorum.
func (s *Sync) claim(p *ledger.Proof) (*ledger.Tx, error) {
	tx, err := s.Submit(ledger.Tx{Type: ledger.TxReward, Amount: p.Reward(s.ledger.Params()), Proof: p})
	if err != nil {
		s.refusedClaims.Add(1)
		return nil, err
	}
	logger().Debug("reward claimed", "proof", p.ID(), "kind", p.Kind, "units", p.Units, "countersignatures", 1+len(p.Cosigners), "tx", tx.ID())
	return tx, nil
}

// SendRoundReceipts countersigns, for each other member a round used, its part in the round
// and hands it over in the background.
func (s *Sync) SendRoundReceipts(members []peer.ID, layer int, work [16]byte) {
	for _, p := range members {
		s.sendProof(p, ledger.ProofRound, layer, 1, &work)
	}
}

// receiptAnswer is the answer to a receipt that was taken: a claim's transaction, or none yet.
func receiptAnswer(tx *ledger.Tx) p2p.ReceiptAnswer {
	if tx == nil {
		return p2p.ReceiptAnswer{Accepted: true}
	}
	return p2p.ReceiptAnswer{Accepted: true, TxID: tx.ID()}
}

// sendProof countersigns a proof of work a peer did and hands it over in the background (the
// peer claims the reward; a peer that is gone loses it). work nil: a fresh random one.
func (s *Sync) sendProof(p peer.ID, kind ledger.ProofKind, layer, units int, work *[16]byte) {
	params := s.ledger.Params()
	if units <= 0 || params.Rewards[kind] == 0 || p == s.host.ID() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		worker, err := s.payee(ctx, p)
		if err != nil {
			logger().Debug("receipt not sent: no wallet address", "peer", p, "err", err)
			return
		}
		pr := &ledger.Proof{Kind: kind, Layer: uint16(layer), Units: uint32(min(units, int(params.MaxProofUnits))), Worker: worker, Time: time.Now().UnixMilli()}
		if work != nil {
			pr.Work = *work
		} else {
			rand.Read(pr.Work[:])
		}
		pr.Countersign(s.wallet)
		if _, err := s.host.SendReceipt(ctx, p, pr.Encode()); err != nil {
			logger().Debug("receipt not taken", "peer", p, "kind", kind, "err", err)
		}
	}()
}
