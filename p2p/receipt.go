package p2p

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Signed answers. After every forward step a stage signs a Receipt: the session, how many
// steps it has answered, the model, span and weights version it ran, and two chained digests,
// one over every STEP payload it was sent and one over every tensor it answered. A signed
// receipt commits the stage to its whole session so far: given the inputs, anyone holding the
// same span at the same version recomputes the outputs (the engine is deterministic) and
// checks the digest, so a wrong answer is provable to peers that never saw the session (a
// fraud proof, pipeline/fraud.go), and a stage cannot later deny an answer it gave.

// receiptTag separates the receipts' signatures from every other use of a peer's key.
const receiptTag = "neuroshard/forward-receipt/1\x00"

// maxSignature bounds a signature on the wire (ed25519 signs in 64 bytes; RSA keys more).
const maxSignature = 1024

// Digest is a sha256 value.
type Digest [32]byte

// Chain extends a chained digest with one frame: sha256(prev || payload).
func Chain(prev Digest, payload []byte) Digest {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(payload)
	var d Digest
	h.Sum(d[:0])
	return d
}

// Receipt is what a stage signs after each forward step.
type Receipt struct {
	Session string // the requester's nonce for the session (ForwardOpen.Session)
	Step    int    // steps answered so far, from 1
	Model   string
	First   int
	Last    int
	Weights string // the version the stage runs (sha256 hex)
	In, Out Digest // chained over every STEP payload received and every tensor answered
}

// Message is the byte string a stage signs for r.
func (r Receipt) Message() []byte {
	b := []byte(receiptTag)
	for _, s := range []string{r.Session, r.Model, r.Weights} {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Step))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.First))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Last))
	b = append(b, r.In[:]...)
	return append(b, r.Out[:]...)
}

// SignedReceipt is a receipt with its stage's signature, and the positions the step it ends
// carried (so a verifier can cut a session's inputs back into its steps).
type SignedReceipt struct {
	Receipt
	Positions int
	Sig       []byte
}

// ErrBadSignature marks a signature that does not verify against the signer's peer ID.
var ErrBadSignature = errors.New("p2p: bad signature")

// Sign signs msg with the host's identity key.
func (n *Host) Sign(msg []byte) ([]byte, error) {
	k := n.h.Peerstore().PrivKey(n.h.ID())
	if k == nil {
		return nil, errors.New("p2p: no identity key to sign with")
	}
	return k.Sign(msg)
}

// VerifyPeer checks that sig is p's signature of msg, with the public key p's ID carries.
func VerifyPeer(p peer.ID, msg, sig []byte) error {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in peer ID %s", ErrBadSignature, p)
	}
	if ok, err := pub.Verify(msg, sig); err != nil || !ok {
		return fmt.Errorf("%w: from %s", ErrBadSignature, p)
	}
	return nil
}

// newSessionID is a fresh random session nonce.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validSessionID accepts an empty nonce or 32 hex digits.
func validSessionID(s string) bool {
	if s == "" {
		return true
	}
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 16
}

// appendSigned frames a signed OUTPUT payload: the signature's length (uint16), the
// signature, then the tensor.
func appendSigned(sig, tensor []byte) []byte {
	out := make([]byte, 0, 2+len(sig)+len(tensor))
	out = binary.LittleEndian.AppendUint16(out, uint16(len(sig)))
	out = append(out, sig...)
	return append(out, tensor...)
}

// splitSigned splits a signed OUTPUT payload into its signature and tensor bytes.
func splitSigned(b []byte) (sig, tensor []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: short signed output", ErrFrame)
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n == 0 || n > maxSignature || len(b) < 2+n {
		return nil, nil, fmt.Errorf("%w: signature of %d bytes in an output of %d", ErrFrame, n, len(b))
	}
	return b[2 : 2+n], b[2+n:], nil
}
