package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// ProofKind is the kind of work a proof records.
type ProofKind string

// The kinds of work that earn rewards.
const (
	ProofForward  ProofKind = "forward"  // activations computed for a peer's request or training step
	ProofBackward ProofKind = "backward" // gradients computed for a peer's training step
	ProofRound    ProofKind = "round"    // a DiLoCo round taken part in
)

var proofKinds = []ProofKind{ProofForward, ProofBackward, ProofRound}

func (k ProofKind) valid() bool { return k.code() != 0 }

func (k ProofKind) code() byte {
	for i, v := range proofKinds {
		if v == k {
			return byte(i + 1)
		}
	}
	return 0
}

func proofKindOf(c byte) ProofKind {
	if c == 0 || int(c) > len(proofKinds) {
		return ""
	}
	return proofKinds[c-1]
}

// Proof records work a worker did for a consumer. The consumer (the peer that used the work)
// signs it; the worker then claims its reward with a TxReward that carries the proof. A claim
// the consumer did not sign earns nothing, and a proof can be claimed once.
type Proof struct {
	Kind     ProofKind
	Layer    uint16   // first layer of the span that did the work
	Units    uint32   // tokens (forward, backward) or 1 (round, enforced)
	Work     [16]byte // identifies the unit of work (a session, a step, a round)
	Worker   Address
	Time     int64             // consumer's clock, unix milliseconds
	Consumer ed25519.PublicKey // 32 bytes
	Sig      []byte            // consumer's ed25519 over signing bytes
	// Cosigners are further countersignatures of the same work, each by another key at its
	// own time: a round proof carries one from each member of the round that checked it
	// (Params.RoundQuorum of them in all, the consumer's included).
	Cosigners []Cosig
}

// Cosig is one more countersignature of a proof: the signer signed the proof's body (kind,
// layer, units, work, worker) with its own key and time, as a consumer does.
type Cosig struct {
	Key  ed25519.PublicKey
	Time int64
	Sig  []byte
}

// MaxCosigners bounds the further countersignatures one proof carries.
const MaxCosigners = 7

const proofDomain = "neuroshard proof v1\x00"

// signingBytes is what a signer with key signs at time at.
func (p *Proof) signingBytes(key ed25519.PublicKey, at int64) []byte {
	var e encoder
	e.bytes([]byte(proofDomain))
	p.encodeWork(&e)
	e.u64(uint64(at))
	e.bytes(key)
	return e.b
}

// ID identifies the work the proof is for (whoever countersigned it, and when); the ledger
// mints a proof's reward at most once.
func (p *Proof) ID() string {
	var e encoder
	e.bytes([]byte(proofDomain))
	p.encodeWork(&e)
	sum := sha256.Sum256(e.b)
	return "proof_" + hex.EncodeToString(sum[:12])
}

// Countersign signs the proof as its consumer.
func (p *Proof) Countersign(consumer *Wallet) {
	p.Consumer = consumer.PublicKey()
	p.Sig = consumer.Sign(p.signingBytes(p.Consumer, p.Time))
}

// Signers lists every countersignature: the consumer's, then the cosigners'.
func (p *Proof) Signers() []Cosig {
	return append([]Cosig{{Key: p.Consumer, Time: p.Time, Sig: p.Sig}}, p.Cosigners...)
}

// SameWork tells whether q is a proof of the same work for the same worker as p.
func (p *Proof) SameWork(q *Proof) bool {
	return p.Kind == q.Kind && p.Layer == q.Layer && p.Units == q.Units && p.Work == q.Work && p.Worker == q.Worker
}

// Join adds q's countersignatures (q must prove the same work) to p, skipping keys p has:
// the countersignatures of one round's members gathered into one claim. It reports how many
// it added; beyond MaxCosigners it adds none.
func (p *Proof) Join(q *Proof) int {
	if !p.SameWork(q) {
		return 0
	}
	added := 0
	for _, s := range q.Signers() {
		if len(p.Cosigners) >= MaxCosigners || slices.ContainsFunc(p.Signers(), func(c Cosig) bool { return bytes.Equal(c.Key, s.Key) }) {
			continue
		}
		p.Cosigners = append(p.Cosigners, s)
		added++
	}
	return added
}

// At is when the proof's last countersignature was made: when the work was fully vouched for.
func (p *Proof) At() int64 {
	at := p.Time
	for _, c := range p.Cosigners {
		at = max(at, c.Time)
	}
	return at
}

// ClaimWindow is how long after its countersignature a proof may be claimed: a claim carries
// its sender's time, which a fresh transaction must keep near every node's clock, so old
// proofs cannot be gathered up and claimed later.
const ClaimWindow = time.Hour

// Reward is what the proof mints under the network's rates.
func (p *Proof) Reward(params Params) neuro.Amount {
	return params.Rewards[p.Kind] * neuro.Amount(p.Units)
}

// Check validates the proof's fields and every countersignature, and that a round proof
// holds the network's quorum of them.
func (p *Proof) Check(params Params) error {
	if err := p.CheckPart(params); err != nil {
		return err
	}
	if !p.Quorum(params) {
		// The members of a round vouch for each other's part in it: one other key (a partner
		// who signs whatever it is asked) is not enough on this network.
		return fmt.Errorf("%w: a round proof needs the countersignatures of %d members of the round besides its worker, it has %d", ErrProof, params.roundQuorum(), 1+len(p.Cosigners))
	}
	return nil
}

// Quorum tells whether the proof holds as many countersignatures as the network asks of it
// (one, or Params.RoundQuorum for a round).
func (p *Proof) Quorum(params Params) bool {
	return p.Kind != ProofRound || 1+len(p.Cosigners) >= params.roundQuorum()
}

// CheckPart is Check without the quorum: a round proof's countersignatures are checked one by
// one as they arrive, before its worker holds enough to claim.
func (p *Proof) CheckPart(params Params) error {
	switch {
	case !p.Kind.valid():
		return fmt.Errorf("%w: unknown kind %q", ErrProof, p.Kind)
	case p.Units == 0 || p.Units > params.MaxProofUnits:
		return fmt.Errorf("%w: %d units (1..%d)", ErrProof, p.Units, params.MaxProofUnits)
	case p.Kind == ProofRound && p.Units != 1:
		return fmt.Errorf("%w: a round proof is for one round, not %d", ErrProof, p.Units)
	case len(p.Cosigners) > MaxCosigners:
		return fmt.Errorf("%w: %d further countersignatures (max %d)", ErrProof, len(p.Cosigners), MaxCosigners)
	case p.Kind != ProofRound && len(p.Cosigners) > 0:
		return fmt.Errorf("%w: only a round proof carries further countersignatures", ErrProof)
	case p.Reward(params) <= 0:
		return fmt.Errorf("%w: %s work earns no reward on this network", ErrProof, p.Kind)
	}
	signers := p.Signers()
	for i, s := range signers {
		switch {
		case s.Time <= 0:
			return fmt.Errorf("%w: a countersignature without a time", ErrProof)
		case len(s.Key) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize:
			return fmt.Errorf("%w: not countersigned", ErrProof)
		case AddressOf(s.Key) == p.Worker:
			return fmt.Errorf("%w: a self-signed claim earns nothing", ErrProof)
		case slices.ContainsFunc(signers[:i], func(c Cosig) bool { return bytes.Equal(c.Key, s.Key) }):
			return fmt.Errorf("%w: %s countersigned twice", ErrProof, AddressOf(s.Key))
		}
	}
	for _, s := range signers {
		if !ed25519.Verify(s.Key, p.signingBytes(s.Key, s.Time), s.Sig) {
			return fmt.Errorf("%w: the countersignature of %s does not verify", ErrProof, AddressOf(s.Key))
		}
	}
	return nil
}
