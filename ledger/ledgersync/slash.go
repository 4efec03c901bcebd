package ledgersync

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/neuroshard/neuroshard/internal/peerrate"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
)

// Slashing travels here (the rule is the ledger's, ledger/slash.go). A node that convicts a
// peer with a fraud proof (its own audit, or a gossiped proof it checked) signs an
// attestation with its peer key and gossips it on the ledger's slash topic. The node that
// found the proof (the accuser) collects the attestations; once its ledger counts
// SlashQuorum attesters backed by stake of their own, it submits the slash, which every
// ledger applies alike. A node attests only what it convicted itself: an attestation is its
// word, backed by its stake.

// attestMsg is an attestation on the slash topic.
type attestMsg struct {
	Accused []byte `json:"accused"` // the convicted peer's raw ed25519 key
	Proof   []byte `json:"proof"`   // the fraud proof's ID
	Peer    []byte `json:"peer"`    // the attester's raw ed25519 key
	Sig     []byte `json:"sig"`
}

// maxCases bounds the proofs whose attestations a node keeps.
const maxCases = 256

// caseTTL is how long a proof's attestations are kept.
const caseTTL = time.Hour

// An accuser looks at its case again every slashRetryEvery, slashRetries times, for the
// attesters' stakes its ledger had not yet learned.
const (
	slashRetryEvery = 5 * time.Second
	slashRetries    = 24
)

type slashCase struct {
	accused   []byte
	atts      []ledger.Attestation
	mine      bool // this node found the proof: it submits the slash
	submitted bool
	at        time.Time
}

type slashing struct {
	mu      sync.Mutex
	topic   *p2p.Topic
	cases   map[[ledger.ProofIDLen]byte]*slashCase
	senders *peerrate.Limiters[peer.ID]
}

func slashTopic(p ledger.Params) string { return ledgerTopic(p) + "/slash" }

func newSlashing() slashing {
	return slashing{cases: map[[ledger.ProofIDLen]byte]*slashCase{}, senders: peerrate.New[peer.ID](rate.Every(time.Second), 10)}
}

// joinSlash joins the slash topic.
func (s *Sync) joinSlash() error {
	t, err := s.host.JoinTopic(slashTopic(s.ledger.Params()), p2p.SmallGossip, func(_ peer.ID, data []byte) bool {
		_, err := decodeAttest(data)
		return err == nil
	}, s.onAttest)
	if err != nil {
		return err
	}
	s.slash.mu.Lock()
	s.slash.topic = t
	s.slash.mu.Unlock()
	return nil
}

func decodeAttest(data []byte) (attestMsg, error) {
	var m attestMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return m, err
	}
	if len(m.Accused) != ed25519.PublicKeySize || len(m.Proof) != ledger.ProofIDLen || len(m.Peer) != ed25519.PublicKeySize || len(m.Sig) != ed25519.SignatureSize {
		return m, errors.New("ledgersync: malformed attestation")
	}
	if bytes.Equal(m.Peer, m.Accused) || !ed25519.Verify(m.Peer, ledger.SlashMessage(m.Accused, [ledger.ProofIDLen]byte(m.Proof)), m.Sig) {
		return m, errors.New("ledgersync: attestation does not verify")
	}
	return m, nil
}

func (s *Sync) onAttest(from peer.ID, data []byte) {
	m, err := decodeAttest(data)
	if err != nil || !s.slash.senders.Get(from).Allow() {
		return
	}
	s.addAttestation([ledger.ProofIDLen]byte(m.Proof), m.Accused, ledger.Attestation{Peer: m.Peer, Sig: m.Sig}, false)
}

// Convicted is called when this node convicts accused by the fraud proof of the given ID:
// mine when this node found and gossiped the proof. The node attests, and the accuser
// submits the slash once enough attesters backed by stake agree.
func (s *Sync) Convicted(accused peer.ID, proof [ledger.ProofIDLen]byte, mine bool) error {
	key, err := p2p.RawKey(accused)
	if err != nil {
		return err
	}
	me, err := p2p.RawKey(s.host.ID())
	if err != nil {
		return err
	}
	sig, err := s.host.Sign(ledger.SlashMessage(key, proof))
	if err != nil {
		return err
	}
	s.addAttestation(proof, key, ledger.Attestation{Peer: me, Sig: sig}, mine)
	if mine {
		// The ledger may learn the attesters' stakes (their binds) after their attestations
		// came: the case is looked at again for a while.
		s.wg.Go(func() {
			for range slashRetries {
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(slashRetryEvery):
				}
				if s.trySubmit(proof) {
					return
				}
			}
		})
	}
	s.slash.mu.Lock()
	t := s.slash.topic
	s.slash.mu.Unlock()
	if t == nil {
		return errors.New("ledgersync: not on the slash topic")
	}
	data, _ := json.Marshal(attestMsg{Accused: key, Proof: proof[:], Peer: me, Sig: sig})
	return t.Publish(s.ctx, data)
}

// addAttestation records an attestation, and submits the slash when this node is the
// accuser and its ledger counts enough attesters backed by stake.
func (s *Sync) addAttestation(proof [ledger.ProofIDLen]byte, accused []byte, a ledger.Attestation, mine bool) {
	s.slash.mu.Lock()
	now := time.Now()
	for id, c := range s.slash.cases {
		if now.Sub(c.at) > caseTTL {
			delete(s.slash.cases, id)
		}
	}
	c := s.slash.cases[proof]
	if c == nil {
		if len(s.slash.cases) >= maxCases && !s.slash.evictOther() {
			s.slash.mu.Unlock()
			return
		}
		c = &slashCase{accused: accused, at: now}
		s.slash.cases[proof] = c
	}
	if !bytes.Equal(c.accused, accused) || slices.ContainsFunc(c.atts, func(b ledger.Attestation) bool { return bytes.Equal(b.Peer, a.Peer) }) {
		s.slash.mu.Unlock()
		return
	}
	c.atts = append(c.atts, a)
	c.mine = c.mine || mine
	s.slash.mu.Unlock()
	s.trySubmit(proof)
}

// evictOther drops the oldest case this node does not accuse in (attestations of strangers
// must not crowd out its own); the caller holds mu.
func (sl *slashing) evictOther() bool {
	var oldest [ledger.ProofIDLen]byte
	found := false
	for id, c := range sl.cases {
		if !c.mine && (!found || c.at.Before(sl.cases[oldest].at)) {
			oldest, found = id, true
		}
	}
	if found {
		delete(sl.cases, oldest)
	}
	return found
}

// trySubmit submits a case's slash when this node is its accuser and its ledger counts enough
// attesters backed by stake; it reports whether the case is settled (submitted, or not this
// node's to submit).
func (s *Sync) trySubmit(proof [ledger.ProofIDLen]byte) bool {
	s.slash.mu.Lock()
	c := s.slash.cases[proof]
	if c == nil || !c.mine || c.submitted {
		s.slash.mu.Unlock()
		return true
	}
	backed := s.backed(c.accused, c.atts)
	if len(backed) < ledger.SlashQuorum {
		s.slash.mu.Unlock()
		return false
	}
	c.submitted = true
	accused, submit := c.accused, backed[:min(len(backed), ledger.MaxAttestations)]
	s.slash.mu.Unlock()
	tx, err := s.Submit(ledger.Tx{Type: ledger.TxSlash, Peer: accused, Slash: &ledger.SlashEvidence{Proof: proof, Attestations: submit}})
	if err != nil {
		logger().Warn("slash not submitted", "err", err)
		return true
	}
	logger().Info("slash submitted", "tx", tx.ID(), "attesters", len(submit))
	return true
}

// backed lists the attestations whose peers this node's ledger finds backed by stake, one
// per account, the accused's account left out.
func (s *Sync) backed(accused []byte, atts []ledger.Attestation) []ledger.Attestation {
	b, ok, err := s.ledger.Backing(accused)
	if err != nil || !ok {
		return nil
	}
	seen := map[ledger.Address]bool{b.Address: true}
	var out []ledger.Attestation
	for _, a := range atts {
		w, ok, err := s.ledger.Backing(a.Peer)
		if err != nil || !ok || seen[w.Address] || w.Account.Staked == 0 {
			continue
		}
		seen[w.Address] = true
		out = append(out, a)
	}
	return out
}
