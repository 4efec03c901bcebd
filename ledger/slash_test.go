package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

func attest(peer ed25519.PrivateKey, accused ed25519.PublicKey, proof [ProofIDLen]byte) Attestation {
	return Attestation{Peer: peer.Public().(ed25519.PublicKey), Sig: ed25519.Sign(peer, SlashMessage(accused, proof))}
}

// A slash burns half the stake backing a convicted peer when two peers backed by stake of
// their own attest it, once per proof; short of that it applies (its nonce spent, the same on
// every ledger) and burns nothing. Forged or malformed evidence is refused.
func TestSlashBurnsTheConvictedPeersStake(t *testing.T) {
	mallory, alice, bob, carol := wallet(t, "mallory"), wallet(t, "alice"), wallet(t, "bob"), wallet(t, "carol")
	p := fundedParams(100, mallory, alice, bob, carol)
	l := openLedger(t, t.TempDir(), p)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nonce := map[Address]uint64{}
	apply := func(w *Wallet, tx Tx) error {
		nonce[w.Address()]++
		r := l.Apply(signed(w, nonce[w.Address()], t0.Add(time.Duration(len(nonce)+int(nonce[w.Address()]))*time.Second), tx), false)
		if r.Err != nil {
			nonce[w.Address()]--
		}
		return r.Err
	}
	pm, pa, pb, pc := peerKey("m"), peerKey("a"), peerKey("b"), peerKey("c")
	accused := pm.Public().(ed25519.PublicKey)
	for _, x := range []struct {
		w     *Wallet
		peer  ed25519.PrivateKey
		stake neuro.Amount
	}{{mallory, pm, 80}, {alice, pa, 10}, {bob, pb, 10}, {carol, pc, 0}} {
		if x.stake > 0 {
			if err := apply(x.w, Tx{Type: TxStake, Amount: x.stake * neuro.Micro, Days: 30}); err != nil {
				t.Fatal(err)
			}
		}
		if err := apply(x.w, bindTx(x.w, x.peer)); err != nil {
			t.Fatal(err)
		}
	}
	proof := sha256.Sum256([]byte("a fraud proof"))
	slash := func(atts ...Attestation) Tx {
		return Tx{Type: TxSlash, Peer: accused, Slash: &SlashEvidence{Proof: proof, Attestations: atts}}
	}
	staked := func() neuro.Amount { a, _ := l.Account(mallory.Address()); return a.Staked }
	_, burned0, _ := l.Supply()

	// Refused outright: forged, the accused's own, the same peer twice, none.
	forged := attest(pa, accused, proof)
	forged.Sig[3] ^= 1
	for name, tx := range map[string]Tx{
		"forged":   slash(forged, attest(pb, accused, proof)),
		"accused":  slash(attest(pm, accused, proof), attest(pa, accused, proof)),
		"twice":    slash(attest(pa, accused, proof), attest(pa, accused, proof)),
		"none":     slash(),
		"other id": slash(Attestation{Peer: attest(pa, accused, proof).Peer, Sig: attest(pa, accused, sha256.Sum256([]byte("x"))).Sig}, attest(pb, accused, proof)),
	} {
		if err := apply(carol, tx); !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Applied, no effect: one staked attester and one without stake.
	if err := apply(carol, slash(attest(pa, accused, proof), attest(pc, accused, proof))); err != nil {
		t.Fatal(err)
	}
	if staked() != 80*neuro.Micro {
		t.Fatalf("a slash short of its quorum burned: %s left", staked())
	}
	if _, ok, _ := l.Slashed(proof); ok {
		t.Fatal("a slash without effect is recorded as slashed")
	}
	// Two attesters backed by stake: half of the accused's stake is burned.
	if err := apply(carol, slash(attest(pa, accused, proof), attest(pb, accused, proof))); err != nil {
		t.Fatal(err)
	}
	if staked() != 40*neuro.Micro {
		t.Fatalf("after the slash: %s staked, want 40", staked())
	}
	if got, ok, _ := l.Slashed(proof); !ok || got != 40*neuro.Micro {
		t.Fatalf("slashed %s %v", got, ok)
	}
	if _, burned, _ := l.Supply(); burned-burned0 != 40*neuro.Micro {
		t.Fatalf("burned %s", burned-burned0)
	}
	// The same proof again: applied, nothing more burned.
	if err := apply(alice, slash(attest(pa, accused, proof), attest(pb, accused, proof), attest(pc, accused, proof))); err != nil {
		t.Fatal(err)
	}
	if staked() != 40*neuro.Micro {
		t.Fatalf("a proof slashed twice: %s", staked())
	}
	// The wire form round-trips.
	tx := signed(carol, 9, t0, slash(attest(pa, accused, proof), attest(pb, accused, proof)))
	back, err := DecodeTx(tx.Encode())
	if err != nil || back.ID() != tx.ID() || back.Check(p) != nil {
		t.Fatalf("decoded slash: %v", err)
	}
}
