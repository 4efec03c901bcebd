package ledger

import (
	"encoding/hex"
	"testing"

	"github.com/neuroshard/neuroshard/internal/golden"
)

// TestGoldenEncodings pins what every peer must compute alike: wallet keys from tokens, the
// canonical encoding, ID and signature of each transaction type and of a proof, and the ID of
// the default network rules (it names the gossip topic).
func TestGoldenEncodings(t *testing.T) {
	g := golden.Open(t, "ledger.txt")
	alice, err := WalletFromToken("golden-token-alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := WalletFromToken("golden-token-bob")
	carol, _ := WalletFromToken("golden-token-carol")
	g.Check("address alice", alice.Address().String())
	g.Check("public key alice", hex.EncodeToString(alice.PublicKey()))
	g.Check("default params id", DefaultParams().ID())

	proof := &Proof{Kind: ProofRound, Layer: 3, Units: 1, Work: [16]byte{1, 2, 3}, Worker: alice.Address(), Time: 1_790_000_000_000}
	proof.Countersign(bob)
	g.Check("proof", hex.EncodeToString(proof.Encode()))
	g.Check("proof id", proof.ID())
	// A round proof on the default network carries a second member's countersignature.
	more := &Proof{Kind: proof.Kind, Layer: proof.Layer, Units: proof.Units, Work: proof.Work, Worker: proof.Worker, Time: 1_790_000_000_050}
	more.Countersign(carol)
	if proof.Join(more) != 1 {
		t.Fatal("a second member's countersignature was not joined")
	}
	g.Check("proof with cosigners", hex.EncodeToString(proof.Encode()))

	const at = 1_790_000_000_123
	txs := map[string]*Tx{
		"send":    {Type: TxSend, Nonce: 1, Time: at, To: bob.Address(), Amount: 1_500_000, Fee: 1_500, Memo: "golden ☼"},
		"stake":   {Type: TxStake, Nonce: 2, Time: at, Amount: 2_000_000, Days: 30},
		"unstake": {Type: TxUnstake, Nonce: 3, Time: at, Amount: 1_000_000},
		"reward":  {Type: TxReward, Nonce: 4, Time: at, Amount: proof.Reward(DefaultParams()), Proof: proof},
		"payment": {Type: TxPayment, Nonce: 5, Time: at, To: bob.Address(), Amount: 42, Fee: 1},
	}
	for name, tx := range txs {
		tx.Sign(alice)
		if err := tx.Check(DefaultParams()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		enc := tx.Encode()
		g.Check("tx "+name, hex.EncodeToString(enc))
		g.Check("tx "+name+" id", tx.ID())
		back, err := DecodeTx(enc)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if back.ID() != tx.ID() {
			t.Fatalf("%s: id %s after a round trip, %s before", name, back.ID(), tx.ID())
		}
	}
}
