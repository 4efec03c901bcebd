package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
}

const proofDomain = "neuroshard proof v1\x00"

func (p *Proof) signingBytes() []byte {
	var e encoder
	e.bytes([]byte(proofDomain))
	p.encodeBody(&e)
	return e.b
}

// ID identifies the proof; the ledger mints a proof's reward at most once.
func (p *Proof) ID() string {
	sum := sha256.Sum256(p.signingBytes())
	return "proof_" + hex.EncodeToString(sum[:12])
}

// Countersign signs the proof as its consumer.
func (p *Proof) Countersign(consumer *Wallet) {
	p.Consumer = consumer.PublicKey()
	p.Sig = consumer.Sign(p.signingBytes())
}

// ClaimWindow is how long after its countersignature a proof may be claimed: a claim carries
// its sender's time, which a fresh transaction must keep near every node's clock, so old
// proofs cannot be gathered up and claimed later.
const ClaimWindow = time.Hour

// Reward is what the proof mints under the network's rates.
func (p *Proof) Reward(params Params) neuro.Amount {
	return params.Rewards[p.Kind] * neuro.Amount(p.Units)
}

// Check validates the proof's fields and the consumer's signature.
func (p *Proof) Check(params Params) error {
	switch {
	case !p.Kind.valid():
		return fmt.Errorf("%w: unknown kind %q", ErrProof, p.Kind)
	case p.Units == 0 || p.Units > params.MaxProofUnits:
		return fmt.Errorf("%w: %d units (1..%d)", ErrProof, p.Units, params.MaxProofUnits)
	case p.Kind == ProofRound && p.Units != 1:
		return fmt.Errorf("%w: a round proof is for one round, not %d", ErrProof, p.Units)
	case p.Time <= 0:
		return fmt.Errorf("%w: no time", ErrProof)
	case len(p.Consumer) != ed25519.PublicKeySize || len(p.Sig) != ed25519.SignatureSize:
		return fmt.Errorf("%w: not countersigned", ErrProof)
	case AddressOf(p.Consumer) == p.Worker:
		return fmt.Errorf("%w: a self-signed claim earns nothing", ErrProof)
	case p.Reward(params) <= 0:
		return fmt.Errorf("%w: %s work earns no reward on this network", ErrProof, p.Kind)
	case !ed25519.Verify(p.Consumer, p.signingBytes(), p.Sig):
		return fmt.Errorf("%w: the consumer's signature does not verify", ErrProof)
	}
	return nil
}
