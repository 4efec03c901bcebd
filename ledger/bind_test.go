package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// peerKey is a deterministic ed25519 key standing for a node's p2p identity.
func peerKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("peer " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func bindTx(w *Wallet, peer ed25519.PrivateKey) Tx {
	return Tx{Type: TxBind, Peer: peer.Public().(ed25519.PublicKey), PeerSig: ed25519.Sign(peer, BindMessage(w.Address()))}
}

// An account backs a peer with its stake only with the peer key's consent; a later bind moves
// it; of several accounts a peer consented to, the lowest address backs it, whatever order the
// binds came in.
func TestBindBacksAPeerWithConsent(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(100, alice, bob)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pa, pb := peerKey("a"), peerKey("b")
	pubA := pa.Public().(ed25519.PublicKey)

	for _, order := range [][]*Wallet{{alice, bob}, {bob, alice}} {
		l := openLedger(t, t.TempDir(), p)
		apply := func(w *Wallet, n uint64, tx Tx) error {
			return l.Apply(signed(w, n, t0.Add(time.Duration(n)*time.Second), tx), false).Err
		}
		if err := apply(alice, 1, Tx{Type: TxStake, Amount: 60 * neuro.Micro, Days: 30}); err != nil {
			t.Fatal(err)
		}
		if err := apply(bob, 1, Tx{Type: TxStake, Amount: 90 * neuro.Micro, Days: 30}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := l.Backing(pubA); ok || err != nil {
			t.Fatalf("a peer nobody bound is backed (%v)", err)
		}
		for _, w := range order {
			if err := apply(w, 2, bindTx(w, pa)); err != nil {
				t.Fatal(err)
			}
		}
		low := alice
		if bytes.Compare(func() []byte { a := bob.Address(); return a[:] }(), func() []byte { a := alice.Address(); return a[:] }()) < 0 {
			low = bob
		}
		b, ok, err := l.Backing(pubA)
		if !ok || err != nil || b.Address != low.Address() {
			t.Fatalf("order %s first: backing %v %v %v, want the lowest address %s", order[0].Address(), b.Address, ok, err, low.Address())
		}
		// The lowest moves to another peer: the other account backs a alone.
		if err := apply(low, 3, bindTx(low, pb)); err != nil {
			t.Fatal(err)
		}
		other := alice
		if low == alice {
			other = bob
		}
		if b, _, _ := l.Backing(pubA); b.Address != other.Address() {
			t.Fatalf("after a rebind, a is backed by %s, want %s", b.Address, other.Address())
		}
		if b, _, _ := l.Backing(pb.Public().(ed25519.PublicKey)); b.Address != low.Address() || b.Account.Staked == 0 {
			t.Fatalf("b backed by %+v", b)
		}
		if got, _ := l.Bound(low.Address()); !bytes.Equal(got, pb.Public().(ed25519.PublicKey)) {
			t.Fatalf("bound %x", got)
		}
	}

	// Refused: a peer signature for another account, a forged one, an amount, a bind carried
	// on another type; none changes anything.
	l := openLedger(t, t.TempDir(), p)
	forAlice := bindTx(alice, pa)
	stolen := Tx{Type: TxBind, Peer: forAlice.Peer, PeerSig: forAlice.PeerSig} // bob replays alice's consent
	if err := l.Apply(signed(bob, 1, t0, stolen), false).Err; !errors.Is(err, ErrSignature) {
		t.Fatalf("another account's consent: %v", err)
	}
	bad := bindTx(alice, pa)
	bad.PeerSig[0] ^= 1
	if err := l.Apply(signed(alice, 1, t0, bad), false).Err; !errors.Is(err, ErrSignature) {
		t.Fatalf("forged consent: %v", err)
	}
	paid := bindTx(alice, pa)
	paid.Amount = neuro.Micro
	if err := l.Apply(signed(alice, 1, t0, paid), false).Err; !errors.Is(err, ErrMalformed) {
		t.Fatalf("bind with an amount: %v", err)
	}
	send := Tx{Type: TxSend, To: bob.Address(), Amount: neuro.Micro, Fee: p.Fee(neuro.Micro), Peer: forAlice.Peer, PeerSig: forAlice.PeerSig}
	if err := l.Apply(signed(alice, 1, t0, send), false).Err; !errors.Is(err, ErrMalformed) {
		t.Fatalf("peer key on a send: %v", err)
	}
	if _, ok, _ := l.Backing(pubA); ok {
		t.Fatal("a refused bind backs the peer")
	}
	// The wire form keeps the binding, and round-trips.
	tx := signed(alice, 1, t0, bindTx(alice, pa))
	back, err := DecodeTx(tx.Encode())
	if err != nil || back.ID() != tx.ID() || back.Check(p) != nil {
		t.Fatalf("decoded bind: %v", err)
	}
}
