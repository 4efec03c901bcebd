package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/ledgersync"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// ledgerConfigs makes configs for n nodes of one ledger network whose genesis funds each
// node's wallet with fund NEURO.
func ledgerConfigs(t testing.TB, n int, fund neuro.Amount) []Config {
	params := ledger.DefaultParams()
	cfgs := make([]Config, n)
	for i := range cfgs {
		cfgs[i] = testConfig(t)
		cfgs[i].Token = fmt.Sprintf("nst_ledger-test-%d", i)
		cfgs[i].Model = "neuroshard-tiny"
		cfgs[i].Layers = "0-3"
		cfgs[i].LedgerSyncInterval = 500 * time.Millisecond
		w, err := ledger.WalletFromToken(cfgs[i].Token)
		if err != nil {
			t.Fatal(err)
		}
		params.Genesis[w.Address()] = fund * neuro.Micro
	}
	for i := range cfgs {
		cfgs[i].Network = &params
	}
	return cfgs
}

func startLedgerNodes(t testing.TB, cfgs []Config) []*Node {
	var nodes []*Node
	for i, cfg := range cfgs {
		if i > 0 {
			cfg.Bootstrap = nodes[0].Multiaddrs()
		}
		nodes = append(nodes, startNode(t, cfg, unlimited))
	}
	return nodes
}

func accountOf(t testing.TB, n *Node, a ledger.Address) ledger.Account {
	t.Helper()
	acct, err := n.Ledger().Account(a)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

func sameAccounts(t testing.TB, nodes []*Node, addrs ...ledger.Address) bool {
	for _, a := range addrs {
		want := fmt.Sprint(accountOf(t, nodes[0], a))
		for _, n := range nodes[1:] {
			if fmt.Sprint(accountOf(t, n, a)) != want {
				return false
			}
		}
	}
	return true
}

func TestSendReachesEveryNodeAndReplaysAndForgeriesDoNot(t *testing.T) {
	t.Parallel()
	nodes := startLedgerNodes(t, ledgerConfigs(t, 2, 1000))
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	eventually(t, 10*time.Second, "the nodes to share the ledger topic", func() bool { return len(a.lsync.Topic().Peers()) > 0 })
	res, err := apiClient(a).Send(ctx, apitypes.SendRequest{To: b.WalletAddress().String(), Amount: 25 * neuro.Micro, Memo: "for layers"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "confirmed" || res.Fee != 25_000 || res.From != a.WalletAddress().String() {
		t.Fatalf("send answer %+v", res)
	}
	eventually(t, 10*time.Second, "the send to reach the second node", func() bool {
		bal, err := apiClient(b).Balance(ctx)
		return err == nil && bal.Balances.Available == 1025*neuro.Micro
	})
	if !sameAccounts(t, nodes, a.WalletAddress(), b.WalletAddress()) {
		t.Fatal("the nodes disagree on the balances")
	}
	entry, ok, err := a.Ledger().Lookup(res.TransactionID)
	if err != nil || !ok {
		t.Fatal("the send is not in the sender's log", err)
	}
	forged := *entry.Tx
	forged.Memo = "rewritten"
	forged.Nonce = 2
	for _, n := range nodes {
		if r := n.Ledger().Apply(entry.Tx, true); !errors.Is(r.Err, ledger.ErrDuplicate) {
			t.Fatalf("replay on %s: %v", n.ID(), r.Err)
		}
		if r := n.Ledger().Apply(&forged, true); !errors.Is(r.Err, ledger.ErrSignature) {
			t.Fatalf("forgery on %s: %v", n.ID(), r.Err)
		}
	}
	// Gossip is validated too: a forged transaction is not even published.
	if err := a.lsync.Topic().Publish(ctx, forged.Encode()); err == nil {
		t.Fatal("gossip accepted a forged transaction")
	}
	a.lsync.Topic().Publish(ctx, entry.Tx.Encode()) // a replay passes the stateless check, and is a no-op
	time.Sleep(300 * time.Millisecond)
	for _, n := range nodes {
		if _, _, seq := n.Ledger().Supply(); seq != 1 {
			t.Fatalf("%s applied %d transactions, want 1", n.ID(), seq)
		}
		if _, err := n.Ledger().Audit(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := apiClient(b).Transactions(ctx, 10, 0)
	if err != nil || list.Total != 1 || list.Transactions[0].Amount != 25*neuro.Micro || list.Transactions[0].From != a.WalletAddress().String() {
		t.Fatalf("receiver's history: %+v %v", list, err)
	}
	list, err = apiClient(a).Transactions(ctx, 10, 0)
	if err != nil || list.Total != 1 || list.Transactions[0].Amount != -25*neuro.Micro || list.Transactions[0].Fee != 25_000 {
		t.Fatalf("sender's history: %+v %v", list, err)
	}
}

func TestNodesCatchUpOnTransactionsTheyMissed(t *testing.T) {
	t.Parallel()
	cfgs := ledgerConfigs(t, 3, 1000)
	nodes := startLedgerNodes(t, cfgs[:2])
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	if _, err := apiClient(b).Send(ctx, apitypes.SendRequest{To: a.WalletAddress().String(), Amount: neuro.Micro}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the first send to reach the first node", func() bool {
		_, _, seq := a.Ledger().Supply()
		return seq == 1
	})
	if err := b.Close(); err != nil { // b is away while a keeps sending
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := apiClient(a).Send(ctx, apitypes.SendRequest{To: b.WalletAddress().String(), Amount: neuro.Amount(i+1) * neuro.Micro}); err != nil {
			t.Fatal(err)
		}
	}
	back := cfgs[1]
	back.Bootstrap = a.Multiaddrs()
	b = startNode(t, back)
	late := cfgs[2]
	late.Bootstrap = a.Multiaddrs()
	c := startNode(t, late) // joins with an empty ledger
	all := []*Node{a, b, c}
	eventually(t, 20*time.Second, "the returning and the new node to catch up", func() bool {
		for _, n := range all[1:] {
			if _, _, seq := n.Ledger().Supply(); seq < 31 {
				return false
			}
		}
		return true
	})
	if !sameAccounts(t, all, a.WalletAddress(), b.WalletAddress(), c.WalletAddress()) {
		t.Fatal("the nodes disagree after catch-up")
	}
	bal, err := apiClient(b).Balance(ctx)
	// b sent 1 NEURO (fee 0.001) and received 1+2+...+30 = 465 NEURO while it was away.
	if want := neuro.Amount(1000*neuro.Micro - neuro.Micro - 1000 + 465*neuro.Micro); err != nil || bal.Balances.Available != want {
		t.Fatalf("returning node's balance %+v %v", bal, err)
	}
	for _, n := range all {
		if _, err := n.Ledger().Audit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWalletEndpointsRefuseBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	nodes := startLedgerNodes(t, ledgerConfigs(t, 1, 100))
	n := nodes[0]
	c := apiClient(n)
	ctx := context.Background()
	other, _ := ledger.WalletFromToken("someone else")
	to := other.Address().String()
	before, err := c.Balance(ctx)
	if err != nil || before.Balances.Available != 100*neuro.Micro || before.Staking != nil {
		t.Fatalf("balance %+v %v", before, err)
	}
	raw := func(method, path, body string) error {
		if body == "" {
			return c.Do(ctx, method, path, nil, nil)
		}
		return c.Do(ctx, method, path, strings.NewReader(body), nil)
	}
	cases := []struct {
		name, path, body, code string
	}{
		{"malformed JSON", "/api/v1/wallet/send", `{"to":`, apitypes.CodeInvalidRequest},
		{"amount as a string", "/api/v1/wallet/send", `{"to":"` + to + `","amount":"5"}`, apitypes.CodeInvalidRequest},
		{"negative amount", "/api/v1/wallet/send", `{"to":"` + to + `","amount":-5}`, apitypes.CodeInvalidRequest},
		{"seven decimals", "/api/v1/wallet/send", `{"to":"` + to + `","amount":0.0000001}`, apitypes.CodeInvalidRequest},
		{"zero", "/api/v1/wallet/send", `{"to":"` + to + `","amount":0}`, apitypes.CodeInvalidRequest},
		{"bad address", "/api/v1/wallet/send", `{"to":"0x1234","amount":1}`, apitypes.CodeInvalidRequest},
		{"unknown field", "/api/v1/wallet/send", `{"to":"` + to + `","amount":1,"fee":0}`, apitypes.CodeInvalidRequest},
		{"to itself", "/api/v1/wallet/send", `{"to":"` + n.WalletAddress().String() + `","amount":1}`, apitypes.CodeInvalidRequest},
		{"overdraft", "/api/v1/wallet/send", `{"to":"` + to + `","amount":100}`, apitypes.CodeInsufficientBalance},
		{"stake zero days", "/api/v1/wallet/stake", `{"amount":1,"duration_days":0}`, apitypes.CodeInvalidRequest},
		{"stake too much", "/api/v1/wallet/stake", `{"amount":101,"duration_days":30}`, apitypes.CodeInsufficientBalance},
		{"unstake nothing staked", "/api/v1/wallet/unstake", `{"amount":1}`, apitypes.CodeInsufficientBalance},
		{"huge amount", "/api/v1/wallet/send", `{"to":"` + to + `","amount":1e30}`, apitypes.CodeInvalidRequest},
	}
	for _, tc := range cases {
		err := raw("POST", tc.path, tc.body)
		if !client.IsCode(err, tc.code) {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	var apiErr *client.APIError
	err = raw("POST", "/api/v1/wallet/send", `{"to":"`+to+`","amount":100}`)
	if !errors.As(err, &apiErr) || apiErr.Status != 402 || fmt.Sprint(apiErr.Details["required"]) != "100.1" || fmt.Sprint(apiErr.Details["available"]) != "100" {
		t.Fatalf("402 details: %v", err)
	}
	for _, q := range []string{"limit=0", "limit=101", "offset=-1", "limit=x"} {
		if err := raw("GET", "/api/v1/wallet/transactions?"+q, ""); !client.IsCode(err, apitypes.CodeInvalidRequest) {
			t.Errorf("transactions?%s: %v", q, err)
		}
	}
	after, _ := c.Balance(ctx)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("refused requests changed the balance: %+v -> %+v", before, after)
	}
	if _, _, seq := n.Ledger().Supply(); seq != 0 {
		t.Fatalf("refused requests entered the log: %d", seq)
	}

	st, err := c.Stake(ctx, apitypes.StakeRequest{Amount: 40 * neuro.Micro, DurationDays: 30})
	if err != nil || !st.Success || st.Stake.Multiplier != 1.5 || st.NewBalance.Available != 60*neuro.Micro || st.NewBalance.Staked != 40*neuro.Micro {
		t.Fatalf("stake %+v %v", st, err)
	}
	if _, err := c.Unstake(ctx, apitypes.UnstakeRequest{Amount: 10 * neuro.Micro}); !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("unstake of a locked stake: %v", err)
	}
	bal, _ := c.Balance(ctx)
	if bal.Staking == nil || bal.Staking.Amount != 40*neuro.Micro || bal.Staking.DurationDays != 30 || bal.Balances.Total != 100*neuro.Micro {
		t.Fatalf("balance after stake %+v", bal)
	}
}

// A round reward is claimed once two members of the round besides its worker have vouched
// for its part (the default network's quorum): one member's receipt is kept, not claimed; the
// second's claims; another copy is refused, as is a self-signed one; every ledger mints it once.
func TestRoundReceiptsMintARewardOnceAtTheQuorum(t *testing.T) {
	t.Parallel()
	nodes := startLedgerNodes(t, ledgerConfigs(t, 3, 10))
	consumer, witness, worker := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	ans, err := consumer.host.WalletOf(ctx, worker.host.ID())
	if err != nil || ans.Address != worker.WalletAddress().String() {
		t.Fatalf("wallet of the worker: %+v %v", ans, err)
	}
	work := ledgersync.RoundWork("neuroshard-tiny", 0, 3, 7, "hash-of-round-7")
	receipt := func(from *Node, at time.Time) *ledger.Proof {
		pr := &ledger.Proof{Kind: ledger.ProofRound, Layer: 0, Units: 1, Work: work, Worker: worker.WalletAddress(), Time: at.UnixMilli()}
		pr.Countersign(from.wallet)
		return pr
	}
	now := time.Now()
	// The first receipt comes before the worker finished the round: it waits.
	got, err := consumer.host.SendReceipt(ctx, worker.host.ID(), receipt(consumer, now).Encode())
	if err != nil || !got.Accepted || got.TxID != "" {
		t.Fatalf("first member's receipt: %+v %v", got, err)
	}
	worker.lsync.ExpectRound(0, work)
	if minted, _, _ := worker.Ledger().Supply(); minted != 30*neuro.Micro {
		t.Fatalf("one member's word minted: supply %s", minted)
	}
	got, err = witness.host.SendReceipt(ctx, worker.host.ID(), receipt(witness, now.Add(time.Millisecond)).Encode())
	if err != nil || !got.Accepted || got.TxID == "" {
		t.Fatalf("second member's receipt: %+v %v", got, err)
	}
	if _, err := witness.host.SendReceipt(ctx, worker.host.ID(), receipt(witness, now.Add(2*time.Millisecond)).Encode()); err == nil {
		t.Fatal("a round's reward was claimed twice")
	}
	self := &ledger.Proof{Kind: ledger.ProofRound, Units: 1, Work: work, Worker: worker.WalletAddress(), Time: now.UnixMilli()}
	self.Countersign(worker.wallet)
	if _, err := consumer.host.SendReceipt(ctx, worker.host.ID(), self.Encode()); err == nil {
		t.Fatal("a self-signed receipt was taken")
	}
	reward := ledger.DefaultParams().Rewards[ledger.ProofRound]
	eventually(t, 10*time.Second, "the reward to reach every ledger", func() bool {
		for _, n := range nodes {
			if accountOf(t, n, worker.WalletAddress()).Available != 10*neuro.Micro+reward {
				return false
			}
		}
		return true
	})
	proofs, err := apiClient(worker).Proofs(ctx, 10, 0)
	if err != nil || len(proofs.Proofs) != 1 || proofs.Proofs[0].Type != "round" || proofs.Stats.TotalReward != reward || proofs.Stats.TotalVerified != 1 {
		t.Fatalf("proofs %+v %v", proofs, err)
	}
}

func TestInferencePaysTheServingStagesAndMintsNothing(t *testing.T) {
	t.Parallel()
	cfgs := ledgerConfigs(t, 2, 100)
	cfgs[0].Network.PricePerToken = 1_000 // 0.001 NEURO a token
	cfgs[0].Layers, cfgs[1].Layers = "0-1", "2-3"
	nodes := startLedgerNodes(t, cfgs)
	requester, stage := nodes[0], nodes[1]
	waitCoverage(t, requester)
	ctx := context.Background()
	got, err := apiClient(requester).Inference(ctx, greedy("ROMEO:", 8))
	if err != nil {
		t.Fatal(err)
	}
	tokens := neuro.Amount(got.Usage.TotalTokens)
	share := 1_000 * tokens * 2 / 4 // the stage ran 2 of the 4 layers
	fee := ledger.DefaultParams().Fee(share)
	if got.Cost.Amount != share+fee || len(got.Cost.Transactions) != 1 {
		t.Fatalf("cost %+v, want %s + fee %s", got.Cost, share, fee)
	}
	mintedBefore, _, _ := stage.Ledger().Supply()
	eventually(t, 10*time.Second, "the payment to reach both ledgers", func() bool {
		for _, n := range nodes {
			if accountOf(t, n, stage.WalletAddress()).Available != 100*neuro.Micro+share ||
				accountOf(t, n, requester.WalletAddress()).Available != 100*neuro.Micro-share-fee {
				return false
			}
		}
		return true
	})
	// Serving is paid by its requester alone: no receipt mints NEURO for it.
	proofs, err := apiClient(stage).Proofs(ctx, 10, 0)
	if minted, _, _ := stage.Ledger().Supply(); err != nil || len(proofs.Proofs) != 0 || minted != mintedBefore {
		t.Fatalf("the stage's proofs: %+v %v; minted %s -> %s", proofs, err, mintedBefore, minted)
	}

	// A request the wallet could not pay for at its longest is refused before any work: leave
	// the requester 0.001 NEURO, less than 57 tokens cost.
	avail := accountOf(t, requester, requester.WalletAddress()).Available
	x := (avail - 1000) * 1000 / 1001
	for x+ledger.DefaultParams().Fee(x) > avail-1000 {
		x--
	}
	if _, err := apiClient(requester).Send(ctx, apitypes.SendRequest{To: stage.WalletAddress().String(), Amount: x}); err != nil {
		t.Fatal(err)
	}
	_, _, before := requester.Ledger().Supply()
	if _, err := apiClient(requester).Inference(ctx, greedy("ROMEO:", 50)); !client.IsCode(err, apitypes.CodeInsufficientBalance) {
		t.Fatalf("unaffordable inference: %v", err)
	}
	if _, _, after := requester.Ledger().Supply(); after != before {
		t.Fatal("a refused inference moved NEURO")
	}
}

// A stake through the node binds its wallet to the node's peer ID (once): the ledger ties the
// stake to the peer, on every node, and the stake weighs that peer's reports (StakeOf).
func TestStakeBacksTheNodesPeerID(t *testing.T) {
	t.Parallel()
	nodes := startLedgerNodes(t, ledgerConfigs(t, 2, 100))
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	if got := b.api.StakeOf(a.ID()); got != 0 {
		t.Fatalf("stake of a node that never staked: %v", got)
	}
	for i, amount := range []neuro.Amount{30, 10} {
		res, err := apiClient(a).Stake(ctx, apitypes.StakeRequest{Amount: amount * neuro.Micro, DurationDays: 30})
		if err != nil || res.PeerID != a.ID() {
			t.Fatalf("stake %d: %+v %v", i, res, err)
		}
	}
	eventually(t, 30*time.Second, "the stake bound to a's peer on both nodes", func() bool {
		return a.api.StakeOf(a.ID()) == 40 && b.api.StakeOf(a.ID()) == 40
	})
	if got := b.api.StakeOf(b.ID()); got != 0 {
		t.Fatalf("b never staked, its peer has %v", got)
	}
	peers, err := apiClient(b).Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(peers.Peers, func(p apitypes.Peer) bool { return p.ID == a.ID() }); i < 0 || peers.Peers[i].Stake != 40*neuro.Micro {
		t.Fatalf("b's /api/v1/peers does not show a's stake: %+v", peers.Peers)
	}
	list, err := apiClient(a).Transactions(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	binds := 0
	for _, tx := range list.Transactions {
		if tx.Type == "bind" {
			binds++
			if tx.Details["peer_id"] != a.ID() {
				t.Fatalf("bind names %v, want %s", tx.Details["peer_id"], a.ID())
			}
		}
	}
	if binds != 1 {
		t.Fatalf("%d binds after two stakes (want one: the second found it bound): %+v", binds, list.Transactions)
	}
}
