package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// TestEndToEndLedgerSurvivesKill9 sends a burst of 1,000 transfers to a node process, kills it
// with SIGKILL part-way, restarts it on the same data dir and checks that every acknowledged
// transfer is there, none twice, and that the balances add up to minted minus burned.
func TestEndToEndLedgerSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const token = "nst_e2e-crash-wallet"
	w, _ := ledger.WalletFromToken(token)
	to, _ := ledger.WalletFromToken("nst_e2e-recipient")
	params := ledger.DefaultParams()
	params.Genesis[w.Address()] = 1_000_000 * neuro.Micro
	netFile := filepath.Join(t.TempDir(), "network.json")
	raw, _ := json.Marshal(params)
	if err := os.WriteFile(netFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--token", token, "--network-config", netFile, "--rate-limit", "wallet=0", "--model", "neuroshard-tiny", "--layers", "0-3", "--log-level", "info"}
	p := startNode(t, dir, freeAPIPort(t), args...)
	api := client.New(p.api, token)
	ctx := context.Background()

	const burst, killAfter = 1000, 300
	var mu sync.Mutex
	acked := map[string]neuro.Amount{}
	var ackCount atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				amt := neuro.Amount(1_000 + i)
				r, err := api.Send(ctx, apitypes.SendRequest{To: to.Address().String(), Amount: amt})
				if err != nil {
					continue // the node is gone; the rest fail the same way
				}
				mu.Lock()
				acked[r.TransactionID] = amt
				mu.Unlock()
				if ackCount.Add(1) == killAfter {
					p.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
				}
			}
		}()
	}
	for i := range burst {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	<-p.done
	if n := ackCount.Load(); n < killAfter || n == burst {
		t.Fatalf("%d of %d sends acknowledged: the kill did not land mid-burst", n, burst)
	}

	p = startNode(t, dir, freeAPIPort(t), args...)
	api = client.New(p.api, token)
	seen := map[string]bool{}
	nonces := map[uint64]bool{}
	var sent, fees neuro.Amount
	total := -1
	for off := 0; total < 0 || off < total; off += 100 {
		page, err := api.Transactions(ctx, 100, off)
		if err != nil {
			t.Fatal(err)
		}
		total = page.Total
		for _, tx := range page.Transactions {
			if seen[tx.ID] || nonces[tx.Nonce] {
				t.Fatalf("transaction %s (nonce %d) listed twice", tx.ID, tx.Nonce)
			}
			seen[tx.ID], nonces[tx.Nonce] = true, true
			sent += -tx.Amount
			fees += tx.Fee
		}
	}
	for id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged transaction %s was lost in the crash", id)
		}
	}
	for n := uint64(1); n <= uint64(total); n++ {
		if !nonces[n] {
			t.Fatalf("nonce %d missing: the log has a gap", n)
		}
	}
	bal, err := api.Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := api.Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := nw.Ledger
	if l.Minted != 1_000_000*neuro.Micro || l.Burned != fees || l.Transactions != uint64(total) {
		t.Fatalf("ledger after restart: %+v (fees in history %s, %d transactions)", l, fees, total)
	}
	if bal.Balances.Total+sent != l.Minted-l.Burned {
		t.Fatalf("balances do not add up: sender %s + recipient %s != minted %s - burned %s", bal.Balances.Total, sent, l.Minted, l.Burned)
	}
	r, err := api.Send(ctx, apitypes.SendRequest{To: to.Address().String(), Amount: neuro.Micro})
	if err != nil || r.Nonce != uint64(total)+1 {
		t.Fatalf("send after restart: %+v %v", r, err)
	}
	t.Logf("%d acknowledged before SIGKILL, %d durable after restart", len(acked), total)

	out := runCLI(t, "wallet", "balance", "--api", p.api, "--token", token)
	if !strings.Contains(out, w.Address().String()) || !strings.Contains(out, "Available") {
		t.Fatalf("wallet balance: %s", out)
	}
	out = runCLI(t, "wallet", "history", "--api", p.api, "--token", token, "--limit", "3")
	if !strings.Contains(out, fmt.Sprintf("(3 of %d)", total+1)) {
		t.Fatalf("wallet history: %s", out)
	}
}
