package ledgersync

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/ledger"
)

// An attestation from the wire is taken only whole and signed by its peer over exactly its
// accused and proof; nothing a peer sends panics the decoder.
func FuzzDecodeAttest(f *testing.F) {
	seed := sha256.Sum256([]byte("attester"))
	key := ed25519.NewKeyFromSeed(seed[:])
	accSeed := sha256.Sum256([]byte("accused"))
	accused := ed25519.NewKeyFromSeed(accSeed[:]).Public().(ed25519.PublicKey)
	proof := sha256.Sum256([]byte("proof"))
	good, _ := json.Marshal(attestMsg{Accused: accused, Proof: proof[:], Peer: key.Public().(ed25519.PublicKey), Sig: ed25519.Sign(key, ledger.SlashMessage(accused, proof))})
	f.Add(good)
	f.Add([]byte(`{"accused":"","proof":"","peer":"","sig":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeAttest(data)
		if err != nil {
			return
		}
		if !ed25519.Verify(m.Peer, ledger.SlashMessage(m.Accused, [ledger.ProofIDLen]byte(m.Proof)), m.Sig) {
			t.Fatal("an attestation that does not verify was taken")
		}
	})
}

func TestDecodeAttestRefusesTheAccusedAndOtherProofs(t *testing.T) {
	seed := sha256.Sum256([]byte("attester"))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := key.Public().(ed25519.PublicKey)
	proof, other := sha256.Sum256([]byte("proof")), sha256.Sum256([]byte("other"))
	accSeed := sha256.Sum256([]byte("accused"))
	accused := ed25519.NewKeyFromSeed(accSeed[:]).Public().(ed25519.PublicKey)
	enc := func(m attestMsg) []byte { b, _ := json.Marshal(m); return b }
	sig := ed25519.Sign(key, ledger.SlashMessage(accused, proof))
	if _, err := decodeAttest(enc(attestMsg{Accused: accused, Proof: proof[:], Peer: pub, Sig: sig})); err != nil {
		t.Fatalf("a good attestation: %v", err)
	}
	if _, err := decodeAttest(enc(attestMsg{Accused: accused, Proof: other[:], Peer: pub, Sig: sig})); err == nil {
		t.Fatal("a signature of another proof was taken")
	}
	self := ed25519.Sign(key, ledger.SlashMessage(pub, proof))
	if _, err := decodeAttest(enc(attestMsg{Accused: pub, Proof: proof[:], Peer: pub, Sig: self})); err == nil {
		t.Fatal("an attestation against oneself was taken")
	}
}

// A full book of cases drops the oldest case of strangers' attestations, never one this node
// accuses in.
func TestStrangersCasesMakeRoomForOwn(t *testing.T) {
	sl := newSlashing()
	now := time.Now()
	for i := range maxCases {
		sl.cases[[32]byte{byte(i), byte(i >> 8)}] = &slashCase{mine: i%2 == 0, at: now.Add(time.Duration(i) * time.Second)}
	}
	if !sl.evictOther() {
		t.Fatal("nothing evicted from a full book")
	}
	if _, ok := sl.cases[[32]byte{1}]; ok || len(sl.cases) != maxCases-1 {
		t.Fatalf("evicted the wrong case (%d left)", len(sl.cases))
	}
	for id, c := range sl.cases {
		if !c.mine {
			delete(sl.cases, id)
		}
	}
	if sl.evictOther() {
		t.Fatal("evicted a case of this node's own")
	}
}
