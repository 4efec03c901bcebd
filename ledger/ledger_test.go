package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

func wallet(t testing.TB, name string) *Wallet {
	t.Helper()
	w, err := WalletFromToken("test-token-" + name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fundedParams funds the named wallets with n NEURO each.
func fundedParams(n neuro.Amount, ws ...*Wallet) Params {
	p := DefaultParams()
	for _, w := range ws {
		p.Genesis[w.Address()] = n * neuro.Micro
	}
	return p
}

func openLedger(t testing.TB, dir string, p Params) *Ledger {
	t.Helper()
	l, err := Open(dir, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// signed builds a transaction from w with an explicit nonce and time.
func signed(w *Wallet, nonce uint64, at time.Time, tx Tx) *Tx {
	tx.Nonce, tx.Time = nonce, at.UnixMilli()
	tx.Sign(w)
	return &tx
}

func send(p Params, to *Wallet, whole neuro.Amount) Tx {
	return Tx{Type: TxSend, To: to.Address(), Amount: whole * neuro.Micro, Fee: p.Fee(whole * neuro.Micro)}
}

func mustAudit(t testing.TB, l *Ledger) neuro.Amount {
	t.Helper()
	sum, err := l.Audit()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func balance(t testing.TB, l *Ledger, w *Wallet) neuro.Amount {
	t.Helper()
	a, err := l.Account(w.Address())
	if err != nil {
		t.Fatal(err)
	}
	return a.Available
}

func TestWalletFromToken(t *testing.T) {
	a, b, c := wallet(t, "a"), wallet(t, "a"), wallet(t, "b")
	if a.Address() != b.Address() || a.Address() == c.Address() {
		t.Fatal("the address must depend on the token only")
	}
	s := a.Address().String()
	if len(s) != 42 || s[:2] != "0x" {
		t.Fatalf("address %q", s)
	}
	back, err := ParseAddress(s)
	if err != nil || back != a.Address() {
		t.Fatal(back, err)
	}
	for _, bad := range []string{"", "0x12", s[2:], "0x" + s[4:] + "zz"} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseAddress(%q) = %v", bad, err)
		}
	}
	if _, err := WalletFromToken(""); err == nil {
		t.Fatal("an empty token must not make a wallet")
	}
}

func TestSendMovesValueAndBurnsFee(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(1000, alice)
	l := openLedger(t, t.TempDir(), p)
	r := l.Submit(alice, send(p, bob, 100))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Tx.Nonce != 1 || r.Seq != 1 {
		t.Fatalf("nonce %d seq %d", r.Tx.Nonce, r.Seq)
	}
	fee := p.Fee(100 * neuro.Micro)
	if fee != 100_000 { // 0.1% of 100 NEURO = 0.1 NEURO, as the API reference shows
		t.Fatalf("fee %s", fee)
	}
	if got, want := balance(t, l, alice), 900*neuro.Micro-fee; got != want {
		t.Fatalf("alice %s, want %s", got, want)
	}
	if got := balance(t, l, bob); got != 100*neuro.Micro {
		t.Fatalf("bob %s", got)
	}
	minted, burned, seq := l.Supply()
	if minted != 1000*neuro.Micro || burned != fee || seq != 1 {
		t.Fatalf("supply %s %s %d", minted, burned, seq)
	}
	if mustAudit(t, l) != minted-burned {
		t.Fatal("audit sum")
	}
	for _, w := range []*Wallet{alice, bob} {
		h, total, err := l.History(w.Address(), 10, 0)
		if err != nil || total != 1 || len(h) != 1 || h[0].Tx.ID() != r.Tx.ID() {
			t.Fatalf("history of %s: %v %d %v", w.Address(), h, total, err)
		}
	}
	e, ok, err := l.Lookup(r.Tx.ID())
	if err != nil || !ok || e.Seq != 1 {
		t.Fatal(e, ok, err)
	}
}

func TestRefusalsChangeNothing(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(10, alice)
	l := openLedger(t, t.TempDir(), p)
	now := time.Now()
	first := signed(alice, 1, now, send(p, bob, 1))
	if r := l.Apply(first, true); r.Err != nil {
		t.Fatal(r.Err)
	}
	forged := *signed(alice, 2, now, send(p, bob, 1))
	forged.Memo = "changed after signing"
	tooMuch := send(p, bob, 10)
	lowFee := send(p, bob, 1)
	lowFee.Fee = 0
	cases := []struct {
		name string
		tx   *Tx
		want error
	}{
		{"replay", first, ErrDuplicate},
		{"equivocation", signed(alice, 1, now, send(p, bob, 2)), ErrEquivocation},
		{"forged signature", &forged, ErrSignature},
		{"insufficient", signed(alice, 2, now, tooMuch), ErrInsufficient},
		{"fee too low", signed(alice, 2, now, lowFee), ErrFee},
		{"future time", signed(alice, 2, now.Add(time.Hour), send(p, bob, 1)), ErrClock},
		{"older than the previous", signed(alice, 2, now.Add(-time.Minute), send(p, bob, 1)), ErrClock},
		{"to oneself", signed(alice, 2, now, send(p, alice, 1)), ErrMalformed},
		{"stake without duration", signed(alice, 2, now, Tx{Type: TxStake, Amount: neuro.Micro}), ErrMalformed},
		{"unstake more than staked", signed(alice, 2, now, Tx{Type: TxUnstake, Amount: neuro.Micro}), ErrInsufficient},
		{"reward without proof", signed(alice, 2, now, Tx{Type: TxReward, Amount: neuro.Micro}), ErrProof},
	}
	before, _ := l.Account(alice.Address())
	_, _, seq := l.Supply()
	for _, c := range cases {
		r := l.Apply(c.tx, true)
		if !errors.Is(r.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, r.Err, c.want)
		}
	}
	after, _ := l.Account(alice.Address())
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("a refused transaction changed the account: %+v -> %+v", before, after)
	}
	if _, _, s := l.Supply(); s != seq {
		t.Fatalf("a refused transaction entered the log: seq %d -> %d", seq, s)
	}
	eq, err := l.Equivocations(10)
	if err != nil || len(eq) != 1 || eq[0].From != alice.Address() || eq[0].Nonce != 1 {
		t.Fatalf("equivocation evidence: %+v %v", eq, err)
	}
	var ie *InsufficientError
	r := l.Apply(signed(alice, 2, now, tooMuch), true)
	if !errors.As(r.Err, &ie) || ie.Required != 10*neuro.Micro+p.Fee(10*neuro.Micro) || ie.Available != 9*neuro.Micro-p.Fee(neuro.Micro) {
		t.Fatalf("insufficient details: %v", r.Err)
	}
	mustAudit(t, l)
}

func TestStakeLockAndCooldown(t *testing.T) {
	alice := wallet(t, "alice")
	p := fundedParams(100, alice)
	l := openLedger(t, t.TempDir(), p)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	apply := func(n uint64, at time.Time, tx Tx) error { return l.Apply(signed(alice, n, at, tx), false).Err }
	if err := apply(1, t0, Tx{Type: TxStake, Amount: 60 * neuro.Micro, Days: 30}); err != nil {
		t.Fatal(err)
	}
	a, _ := l.Account(alice.Address())
	if a.Available != 40*neuro.Micro || a.Staked != 60*neuro.Micro || a.StakeDays != 30 || a.Unlock != t0.Add(30*day).UnixMilli() {
		t.Fatalf("after stake: %+v", a)
	}
	if err := apply(2, t0.Add(29*day), Tx{Type: TxUnstake, Amount: 10 * neuro.Micro}); !errors.Is(err, ErrStakeLocked) {
		t.Fatalf("unstake before unlock: %v", err)
	}
	if err := apply(2, t0.Add(30*day), Tx{Type: TxUnstake, Amount: 10 * neuro.Micro}); err != nil {
		t.Fatal(err)
	}
	a, _ = l.Account(alice.Address())
	if a.Staked != 50*neuro.Micro || len(a.Pending) != 1 || a.Total() != 100*neuro.Micro {
		t.Fatalf("after unstake: %+v", a)
	}
	if v := a.View(t0.Add(36 * day)); v.Available != 40*neuro.Micro {
		t.Fatalf("pending became available before the cooldown: %+v", v)
	}
	if v := a.View(t0.Add(37 * day)); v.Available != 50*neuro.Micro || len(v.Pending) != 0 {
		t.Fatalf("pending not available after the cooldown: %+v", v)
	}
	// Spending the matured NEURO needs a transaction dated after the cooldown.
	bob := wallet(t, "bob")
	if err := apply(3, t0.Add(36*day), send(p, bob, 45)); !errors.Is(err, ErrInsufficient) {
		t.Fatalf("spent pending NEURO early: %v", err)
	}
	if err := apply(3, t0.Add(37*day), send(p, bob, 45)); err != nil {
		t.Fatal(err)
	}
	if Multiplier(30) != 1.5 || Multiplier(10_000) != 3 {
		t.Fatal("multiplier")
	}
	mustAudit(t, l)
}

// proofFor is a proof of work countersigned by consumer; a round proof also by a second
// member of the round (witness), as the default network's quorum asks.
func proofFor(worker, consumer *Wallet, kind ProofKind, units uint32, work byte) *Proof {
	pr := &Proof{Kind: kind, Layer: 2, Units: units, Worker: worker.Address(), Time: time.Now().UnixMilli()}
	pr.Work[0] = work
	pr.Countersign(consumer)
	if kind == ProofRound && consumer != worker {
		w, _ := WalletFromToken("test-token-round-witness")
		pr.Join(signedBy(pr, w, time.UnixMilli(pr.Time)))
	}
	return pr
}

// signedBy is pr's work countersigned by w alone, at at.
func signedBy(pr *Proof, w *Wallet, at time.Time) *Proof {
	q := &Proof{Kind: pr.Kind, Layer: pr.Layer, Units: pr.Units, Work: pr.Work, Worker: pr.Worker, Time: at.UnixMilli()}
	q.Countersign(w)
	return q
}

func TestRewardsNeedACountersignedProofOnce(t *testing.T) {
	worker, consumer := wallet(t, "worker"), wallet(t, "consumer")
	p := DefaultParams()
	l := openLedger(t, t.TempDir(), p)
	pr := proofFor(worker, consumer, ProofRound, 1, 1)
	r := l.Submit(worker, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := balance(t, l, worker); got != p.Rewards[ProofRound] {
		t.Fatalf("reward %s", got)
	}
	again := l.Submit(worker, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr})
	if !errors.Is(again.Err, ErrProof) {
		t.Fatalf("second claim of one proof: %v", again.Err)
	}
	self := proofFor(worker, worker, ProofRound, 1, 2)
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: self.Reward(p), Proof: self}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("self-signed proof: %v", r.Err)
	}
	greedy := proofFor(worker, consumer, ProofRound, 1, 3)
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: greedy.Reward(p) + 1, Proof: greedy}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("claim above the rate: %v", r.Err)
	}
	many := proofFor(worker, consumer, ProofRound, 1000, 4)
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: many.Reward(p), Proof: many}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("a round proof for 1000 rounds: %v", r.Err)
	}
	tampered := proofFor(worker, consumer, ProofRound, 1, 4)
	tampered.Layer = 7
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: tampered.Reward(p), Proof: tampered}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("proof changed after countersigning: %v", r.Err)
	}
	stolen := proofFor(worker, consumer, ProofRound, 1, 5)
	if r := l.Submit(consumer, Tx{Type: TxReward, Amount: stolen.Reward(p), Proof: stolen}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("a proof claimed by someone else than its worker: %v", r.Err)
	}
	minted, _, _ := l.Supply()
	if minted != p.Rewards[ProofRound] {
		t.Fatalf("minted %s", minted)
	}
	mustAudit(t, l)
}

// Two wallets that countersign each other's pipeline work mint nothing: forward and backward
// proofs are receipts on the default network, and what moves between the two is what one
// paid the other, less the burned fee.
func TestColludingWalletsMintNothing(t *testing.T) {
	a, b := wallet(t, "colluder-a"), wallet(t, "colluder-b")
	p := fundedParams(10, a)
	p.Rewards = DefaultParams().Rewards
	l := openLedger(t, t.TempDir(), p)
	for i := range 50 {
		for _, kind := range []ProofKind{ProofForward, ProofBackward} {
			ab, ba := proofFor(a, b, kind, 1000, byte(i)), proofFor(b, a, kind, 1000, byte(i))
			if r := l.Submit(a, Tx{Type: TxReward, Amount: 1, Proof: ab}); !errors.Is(r.Err, ErrProof) {
				t.Fatalf("%s proof countersigned by a colluder: %v", kind, r.Err)
			}
			if r := l.Submit(b, Tx{Type: TxReward, Amount: 1, Proof: ba}); !errors.Is(r.Err, ErrProof) {
				t.Fatalf("%s proof countersigned by a colluder: %v", kind, r.Err)
			}
		}
	}
	pay := neuro.Amount(3 * neuro.Micro)
	if r := l.Submit(a, Tx{Type: TxPayment, To: b.Address(), Amount: pay, Fee: p.Fee(pay)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if minted, burned, _ := l.Supply(); minted != neuro.Amount(10*neuro.Micro) || burned != p.Fee(pay) {
		t.Fatalf("supply minted %s (the genesis is 10), burned %s", minted, burned)
	}
	if got := balance(t, l, a) + balance(t, l, b); got != neuro.Amount(10*neuro.Micro)-p.Fee(pay) {
		t.Fatalf("the pair holds %s, had %s", got, neuro.Amount(10*neuro.Micro))
	}
	mustAudit(t, l)
}

// Two wallets that countersign each other's DiLoCo rounds mint nothing: a round proof needs
// the countersignatures of two members of the round besides its worker (the default
// network's quorum), each a distinct key that is not the worker's, each over the same work.
// Three keys earn one reward per worker and round, within the spacing; the supply stays the
// genesis plus what was rightly minted.
func TestColludingPairMintsNoRoundReward(t *testing.T) {
	a, b, c := wallet(t, "pair-a"), wallet(t, "pair-b"), wallet(t, "third-c")
	p := DefaultParams()
	l := openLedger(t, t.TempDir(), p)
	now := time.Now()
	round := func(worker *Wallet, work byte, at time.Time, signers ...*Wallet) *Proof {
		pr := &Proof{Kind: ProofRound, Layer: 4, Units: 1, Work: [16]byte{work}, Worker: worker.Address(), Time: at.UnixMilli()}
		pr.Countersign(signers[0])
		for _, s := range signers[1:] {
			pr.Join(signedBy(pr, s, at))
		}
		return pr
	}
	claim := func(w *Wallet, pr *Proof) error {
		return l.Submit(w, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}).Err
	}
	for i := range 40 {
		at := now.Add(time.Duration(i) * time.Duration(p.RoundRewardMillis) * time.Millisecond / 40)
		if err := claim(a, round(a, byte(i), at, b)); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "countersignatures of 2 members") {
			t.Fatalf("a round vouched for by one partner: %v", err)
		}
		if err := claim(b, round(b, byte(i), at, a)); !errors.Is(err, ErrProof) {
			t.Fatalf("a round vouched for by one partner: %v", err)
		}
	}
	selfVouched := round(a, 100, now, b)
	selfVouched.Cosigners = append(selfVouched.Cosigners, signedBy(selfVouched, a, now).Signers()...)
	twice := round(a, 101, now, b)
	twice.Cosigners = append(twice.Cosigners, twice.Signers()[0])
	forged := round(a, 102, now, b, c)
	forged.Cosigners[0].Time++ // c's signature no longer covers its time
	other := round(a, 103, now, b, c)
	moved := round(a, 104, now, b)
	moved.Join(signedBy(other, c, now)) // c vouched for other work
	for name, pr := range map[string]*Proof{"the worker's own": selfVouched, "one key twice": twice, "a forged": forged, "another round's": moved} {
		if err := claim(a, pr); !errors.Is(err, ErrProof) {
			t.Fatalf("%s countersignature counted: %v", name, err)
		}
	}
	fwd := proofFor(a, b, ProofForward, 10, 1)
	fwd.Join(signedBy(fwd, c, now))
	if len(fwd.Cosigners) != 1 || fwd.Check(p) == nil {
		t.Fatalf("a forward proof with further countersignatures: %v", fwd.Check(p))
	}
	if minted, _, _ := l.Supply(); minted != 0 {
		t.Fatalf("the pair minted %s", minted)
	}
	// A third key makes the quorum: one reward per round, spaced.
	good := round(a, 1, now, b, c)
	if err := claim(a, good); err != nil {
		t.Fatalf("a round vouched for by two members: %v", err)
	}
	if err := claim(a, round(a, 1, now, c, b)); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "already rewarded") {
		t.Fatalf("the same round claimed again with its signers reordered: %v", err)
	}
	if err := claim(a, round(a, 2, now.Add(time.Second), b, c)); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "one per") {
		t.Fatalf("a second round a second later: %v", err)
	}
	back, err := DecodeProof(good.Encode())
	if err != nil || back.ID() != good.ID() || len(back.Cosigners) != 1 || back.Check(p) != nil {
		t.Fatalf("proof round trip: %v %+v", err, back)
	}
	if minted, _, _ := l.Supply(); minted != p.Rewards[ProofRound] {
		t.Fatalf("minted %s, want one round reward", minted)
	}
	mustAudit(t, l)
}

func TestEarlyTransactionsWaitForTheirPredecessors(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(10, alice)
	l := openLedger(t, t.TempDir(), p)
	now := time.Now()
	t1 := signed(alice, 1, now, send(p, bob, 1))
	t2 := signed(alice, 2, now, send(p, bob, 1))
	t3 := signed(alice, 3, now, send(p, bob, 1))
	for _, tx := range []*Tx{t3, t2} {
		if r := l.Apply(tx, true); !errors.Is(r.Err, ErrQueued) {
			t.Fatalf("nonce %d: %v", tx.Nonce, r.Err)
		}
	}
	if r := l.Apply(t1, true); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := balance(t, l, bob); got != 3*neuro.Micro {
		t.Fatalf("bob %s after the gap filled", got)
	}
	mustAudit(t, l)
}

func TestLedgerSurvivesReopen(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(1000, alice)
	dir := t.TempDir()
	l, err := Open(dir, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if r := l.Submit(alice, send(p, bob, 10)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := l.Submit(alice, send(p, bob, 1)); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("submit after close: %v", r.Err)
	}
	l = openLedger(t, dir, p)
	if got := balance(t, l, bob); got != 50*neuro.Micro {
		t.Fatalf("bob %s after reopen", got)
	}
	if r := l.Submit(alice, send(p, bob, 10)); r.Err != nil || r.Tx.Nonce != 6 || r.Seq != 6 {
		t.Fatalf("after reopen: nonce %d seq %d %v", r.Tx.Nonce, r.Seq, r.Err)
	}
	mustAudit(t, l)
	l.Close()
	other := fundedParams(5, bob)
	if _, err := Open(dir, other, Options{}); !errors.Is(err, ErrNetwork) {
		t.Fatalf("opened with another network's rules: %v", err)
	}
}

func TestLoadParams(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := dir + "/net.json"
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := LoadParams(write(`{"genesis": {"0x541911a23d0f09d20be2a6840479b1f9c6592237": 1000000}, "price_per_token": 0.001, "rewards": {"round": 2}}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ParseAddress("0x541911a23d0f09d20be2a6840479b1f9c6592237")
	if p.Genesis[a] != 1_000_000*neuro.Micro || p.PricePerToken != 1000 || p.Rewards[ProofRound] != 2*neuro.Micro || p.CooldownDays != 7 {
		t.Fatalf("%+v", p)
	}
	if p.ID() == DefaultParams().ID() {
		t.Fatal("different rules, same network ID")
	}
	for _, bad := range []string{`{"fee_basis_points": -1}`, `{"genesis": {"0x12": 5}}`, `{"unknown": 1}`, `{"rewards": {"mining": 1}}`, `{"price_per_token": 0.0000001}`, `[`} {
		if _, err := LoadParams(write(bad)); err == nil {
			t.Errorf("LoadParams(%s) accepted", bad)
		}
	}
}

func TestCloseAnswersEverySubmission(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(1000, alice)
	l, err := Open(t.TempDir(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 200)
	for range 200 {
		go func() { results <- l.Submit(alice, send(p, bob, 1)).Err }()
	}
	time.Sleep(time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for range 200 {
		select {
		case err := <-results:
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("a submission racing Close never returned")
		}
	}
}

// Two wallets that countersign each other's round proofs as fast as they like mint one round
// reward per RoundRewardMillis of proof time, however many rounds they invent; a proof claimed
// long after its countersignature earns nothing. The supply is what was minted.
func TestRoundRewardsAreSpacedPerWorker(t *testing.T) {
	worker, consumer, witness := wallet(t, "round-worker"), wallet(t, "round-consumer"), wallet(t, "round-witness")
	p := DefaultParams()
	l := openLedger(t, t.TempDir(), p)
	now := time.Now()
	claim := func(at time.Time, work byte) error {
		pr := &Proof{Kind: ProofRound, Units: 1, Work: [16]byte{work}, Worker: worker.Address(), Time: at.UnixMilli()}
		pr.Countersign(consumer)
		pr.Join(signedBy(pr, witness, at))
		return l.Submit(worker, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}).Err
	}
	paid := 0
	for i := range 20 { // twenty "rounds" within two seconds
		switch err := claim(now.Add(time.Duration(i)*100*time.Millisecond), byte(i)); {
		case err == nil:
			paid++
		case !errors.Is(err, ErrProof):
			t.Fatal(err)
		}
	}
	if paid != 1 {
		t.Fatalf("%d of 20 round rewards within 2 s minted, want 1", paid)
	}
	if err := claim(now.Add(time.Duration(p.RoundRewardMillis)*time.Millisecond+time.Second), 50); err != nil {
		t.Fatalf("a round reward after the spacing: %v", err)
	}
	if err := claim(now.Add(-2*time.Hour), 51); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "claims within") {
		t.Fatalf("a proof claimed two hours after its countersignature: %v", err)
	}
	if minted, _, _ := l.Supply(); minted != 2*p.Rewards[ProofRound] {
		t.Fatalf("minted %s, want two round rewards", minted)
	}
	mustAudit(t, l)
}

// A transaction replayed by catch-up may be old, never from the future: dated an hour ahead
// it is refused (and changes nothing), and applies once its time has come.
func TestCatchUpRefusesTransactionsFromTheFuture(t *testing.T) {
	alice, bob := wallet(t, "alice"), wallet(t, "bob")
	p := fundedParams(10, alice)
	l := openLedger(t, t.TempDir(), p)
	ahead := signed(alice, 1, time.Now().Add(time.Hour), send(p, bob, 1))
	if r := l.Apply(ahead, false); !errors.Is(r.Err, ErrClock) {
		t.Fatalf("a transaction an hour ahead through catch-up: %v", r.Err)
	}
	if a, _ := l.Account(alice.Address()); a.Nonce != 0 {
		t.Fatalf("a refused transaction moved the account: %+v", a)
	}
	old := signed(alice, 1, time.Now().Add(-48*time.Hour), send(p, bob, 1))
	if r := l.Apply(old, false); r.Err != nil {
		t.Fatalf("an old transaction through catch-up: %v", r.Err)
	}
	if r := l.Apply(signed(alice, 2, time.Now().Add(-time.Hour), send(p, bob, 1)), true); !errors.Is(r.Err, ErrClock) {
		t.Fatalf("an hour-old transaction gossiped fresh: %v", r.Err)
	}
}

// On a network that asks round-reward workers for stake, a worker without it earns nothing
// for any proof, countersigned or not; once it has staked that much, its claims mint. The
// default network asks nothing (its ID is unchanged: the rule is left out of its JSON).
func TestRoundRewardsNeedTheWorkersStakeWhereTheNetworkAsks(t *testing.T) {
	worker, partner := wallet(t, "worker"), wallet(t, "partner")
	p := fundedParams(10, worker)
	p.RoundRewardStake = 5 * neuro.Micro
	l := openLedger(t, t.TempDir(), p)
	pr := proofFor(worker, partner, ProofRound, 1, 1)
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}); !errors.Is(r.Err, ErrProof) {
		t.Fatalf("a claim without stake: %v", r.Err)
	}
	if r := l.Submit(worker, Tx{Type: TxStake, Amount: 5 * neuro.Micro, Days: 30}); r.Err != nil {
		t.Fatal(r.Err)
	}
	supply := func() neuro.Amount {
		minted, _, _ := l.Supply()
		return minted
	}
	before := supply()
	if r := l.Submit(worker, Tx{Type: TxReward, Amount: pr.Reward(p), Proof: pr}); r.Err != nil {
		t.Fatalf("a claim with the stake: %v", r.Err)
	}
	if got := supply() - before; got != p.Rewards[ProofRound] {
		t.Fatalf("minted %s, want %s", got, p.Rewards[ProofRound])
	}
	if b, _ := json.Marshal(DefaultParams()); bytes.Contains(b, []byte("round_reward_stake")) {
		t.Fatalf("the default network's rules name round_reward_stake (its ID would move): %s", b)
	}
	bad := DefaultParams()
	bad.RoundRewardStake = -1
	if err := bad.Validate(); !errors.Is(err, ErrParams) {
		t.Fatalf("negative round_reward_stake: %v", err)
	}
}
