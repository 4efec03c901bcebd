package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// TestRandomSequencesKeepTheSupplyInvariant runs random sends, stakes, unstakes, rewards and
// invalid transactions (replays, forgeries, overdrafts) through a ledger and checks after each
// step that the accounts hold exactly minted minus burned and that no balance is negative.
func TestRandomSequencesKeepTheSupplyInvariant(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		ws := []*Wallet{wallet(t, "p0"), wallet(t, "p1"), wallet(t, "p2"), wallet(t, "p3")}
		witness := wallet(t, "round-witness")
		p := fundedParams(1000, ws[0], ws[1])
		p.CooldownDays = 1
		// A network that mints for pipeline work too (the default mints for rounds alone).
		p.Rewards = map[ProofKind]neuro.Amount{ProofForward: 1_000, ProofBackward: 2_000, ProofRound: 50_000}
		l := openLedger(t, t.TempDir(), p)
		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		nonces := map[Address]uint64{}
		var history []*Tx
		applied := 0
		for step := 0; step < 400; step++ {
			clock = clock.Add(time.Duration(rng.IntN(12)) * time.Hour)
			w := ws[rng.IntN(len(ws))]
			amt := neuro.Amount(rng.Int64N(300*neuro.Micro)) + 1
			var tx Tx
			switch rng.IntN(7) {
			case 0, 1:
				to := ws[rng.IntN(len(ws))]
				if to == w {
					continue
				}
				tx = Tx{Type: TxSend, To: to.Address(), Amount: amt, Fee: p.Fee(amt)}
			case 2:
				tx = Tx{Type: TxStake, Amount: amt, Days: uint16(1 + rng.IntN(3))}
			case 3:
				tx = Tx{Type: TxUnstake, Amount: amt}
			case 4:
				consumer := ws[(rng.IntN(len(ws)-1)+1+indexOf(ws, w))%len(ws)]
				kind, units := proofKinds[rng.IntN(len(proofKinds))], uint32(1+rng.IntN(1000))
				if kind == ProofRound {
					units = 1
				}
				pr := &Proof{Kind: kind, Layer: 2, Units: units, Worker: w.Address(), Time: clock.UnixMilli(), // countersigned when claimed
					Work: [16]byte{byte(step), byte(seed), byte(step >> 8)}}
				pr.Countersign(consumer)
				if kind == ProofRound {
					pr.Join(signedBy(pr, witness, clock))
				}
				tx = Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}
			case 5: // replay an old transaction
				if len(history) > 0 {
					if r := l.Apply(history[rng.IntN(len(history))], false); !errors.Is(r.Err, ErrDuplicate) {
						t.Fatalf("seed %d step %d: replay: %v", seed, step, r.Err)
					}
				}
				continue
			case 6: // a forgery: someone else's key signing for w's account
				forger := ws[(indexOf(ws, w)+1)%len(ws)]
				f := signed(forger, nonces[w.Address()]+1, clock, Tx{Type: TxStake, Amount: amt, Days: 1})
				f.PubKey = w.PublicKey()
				if r := l.Apply(f, false); !errors.Is(r.Err, ErrSignature) {
					t.Fatalf("seed %d step %d: forgery: %v", seed, step, r.Err)
				}
				continue
			}
			stx := signed(w, nonces[w.Address()]+1, clock, tx)
			r := l.Apply(stx, false)
			if r.Err == nil {
				nonces[w.Address()]++
				history = append(history, stx)
				applied++
			} else if spaced := tx.Type == TxReward && tx.Proof.Kind == ProofRound && errors.Is(r.Err, ErrProof) && strings.Contains(r.Err.Error(), "one per"); !spaced &&
				!errors.Is(r.Err, ErrInsufficient) && !errors.Is(r.Err, ErrStakeLocked) {
				t.Fatalf("seed %d step %d: %s refused: %v", seed, step, tx.Type, r.Err)
			}
			if _, err := l.Audit(); err != nil {
				t.Fatalf("seed %d step %d after %s: %v", seed, step, tx.Type, err)
			}
		}
		if applied < 100 {
			t.Fatalf("seed %d: only %d of 400 random transactions applied; the test explores too little", seed, applied)
		}
	}
}

func indexOf(ws []*Wallet, w *Wallet) int {
	for i, v := range ws {
		if v == w {
			return i
		}
	}
	return -1
}

func FuzzDecodeTx(f *testing.F) {
	alice, bob := wallet(f, "alice"), wallet(f, "bob")
	p := DefaultParams()
	now := time.Unix(1_800_000_000, 0)
	f.Add(signed(alice, 1, now, send(p, bob, 5)).Encode())
	f.Add(signed(alice, 2, now, Tx{Type: TxStake, Amount: 7, Days: 30, Memo: "lock"}).Encode())
	pr := proofFor(alice, bob, ProofRound, 1, 1)
	f.Add(signed(alice, 3, now, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}).Encode())
	f.Add(signed(alice, 4, now, bindTx(alice, peerKey("a"))).Encode())
	proof := sha256.Sum256([]byte("p"))
	accused := peerKey("m").Public().(ed25519.PublicKey)
	f.Add(signed(alice, 5, now, Tx{Type: TxSlash, Peer: accused, Slash: &SlashEvidence{Proof: proof,
		Attestations: []Attestation{attest(peerKey("a"), accused, proof), attest(peerKey("b"), accused, proof)}}}).Encode())
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 32})
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTx(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(tx.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes as %x", b, tx.Encode())
		}
		_ = tx.Check(p) // must not panic on any decoded transaction
		_ = tx.ID()
	})
}

func FuzzDecodeProof(f *testing.F) {
	f.Add(proofFor(wallet(f, "w"), wallet(f, "c"), ProofRound, 1, 7).Encode())
	f.Add(proofFor(wallet(f, "w"), wallet(f, "c"), ProofForward, 3, 8).Encode())
	f.Add([]byte{2, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := DecodeProof(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(pr.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes as %x", b, pr.Encode())
		}
		_ = pr.Check(DefaultParams())
	})
}
